/**
 * A small JSONata tokenizer for the payload editor's colours.
 *
 * It only has to colour text, not to parse it: every character of the
 * source lands in exactly one token (joining the tokens gives the source
 * back), unknown characters and unfinished strings or comments included, so
 * the highlighted layer always lines up with the textarea above it. Whether
 * the expression is valid is the API's answer (the preview), not ours.
 */

export type TokenKind =
  | "string"
  | "number"
  | "name"
  | "variable"
  | "function"
  | "keyword"
  | "operator"
  | "comment"
  | "bracket"
  | "punctuation"
  | "space"
  | "other";

export interface Token {
  kind: TokenKind;
  text: string;
  /** Offset of the first character in the source. */
  start: number;
}

const KEYWORDS = new Set(["and", "or", "in", "true", "false", "null", "function"]);
const OPERATORS = [":=", "!=", "<=", ">=", "..", "~>", "??", "?:", "**", "+", "-", "*", "/", "%", "=", "<", ">", "&", "?", "!", "^", "@", "#", ".", "|"];
const BRACKETS = "()[]{}";
const PUNCTUATION = ",;:";

type Scan = (source: string, at: number) => number;

/** End of a quoted string from its opening quote; an unfinished one runs to the end. */
const scanString: Scan = (source, at) => {
  const quote = source[at];
  let i = at + 1;
  while (i < source.length && source[i] !== quote) i += source[i] === "\\" ? 2 : 1;
  return Math.min(source.length, i + 1);
};

const scanComment: Scan = (source, at) => {
  const end = source.indexOf("*/", at + 2);
  return end === -1 ? source.length : end + 2;
};

const scanWhile = (pattern: RegExp): Scan => (source, at) => {
  let i = at;
  while (i < source.length && pattern.test(source[i] ?? "")) i += 1;
  return i;
};

const scanSpace = scanWhile(/\s/);
const scanWord = scanWhile(/[\p{L}\p{N}_$]/u);
const NUMBER = /^(?:\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/;

function nextNonSpace(source: string, at: number): string | undefined {
  return source[scanSpace(source, at)];
}

function wordKind(source: string, word: string, end: number): TokenKind {
  const called = nextNonSpace(source, end) === "(";
  if (word.startsWith("$")) return called ? "function" : "variable";
  if (KEYWORDS.has(word)) return "keyword";
  return called ? "function" : "name";
}

/** The token that starts at `at`: its kind and where it ends. */
function tokenAt(source: string, at: number): [TokenKind, number] {
  const char = source[at] ?? "";
  if (/\s/.test(char)) return ["space", scanSpace(source, at)];
  if (source.startsWith("/*", at)) return ["comment", scanComment(source, at)];
  if (char === '"' || char === "'") return ["string", scanString(source, at)];
  if (char === "`") return ["name", scanString(source, at)];
  const number = NUMBER.exec(source.slice(at));
  if (number) return ["number", at + number[0].length];
  if (/[\p{L}_$]/u.test(char)) {
    const end = scanWord(source, at + 1);
    return [wordKind(source, source.slice(at, end), end), end];
  }
  if (BRACKETS.includes(char)) return ["bracket", at + 1];
  const operator = OPERATORS.find((op) => source.startsWith(op, at));
  if (operator) return ["operator", at + operator.length];
  if (PUNCTUATION.includes(char)) return ["punctuation", at + 1];
  return ["other", at + 1];
}

export function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let at = 0;
  while (at < source.length) {
    const [kind, end] = tokenAt(source, at);
    tokens.push({ kind, text: source.slice(at, end), start: at });
    at = end;
  }
  return tokens;
}

/** One-based line and column of `offset` in `source`, for a message a reader can find. */
export function lineAndColumn(source: string, offset: number): { line: number; column: number } {
  const before = source.slice(0, Math.max(0, offset));
  const lines = before.split("\n");
  return { line: lines.length, column: (lines[lines.length - 1]?.length ?? 0) + 1 };
}

/**
 * The character a `TransformProblem.position` points at. The parser reports
 * the offset just after the token it stopped on (`{"a": 1 +}` → 10, the `}`
 * being at 9), so the mark goes one before, kept inside the text.
 */
export function problemIndex(source: string, position: number | null): number | null {
  if (position === null || source.length === 0) return null;
  return Math.min(source.length - 1, Math.max(0, position - 1));
}

export interface Segment extends Token {
  /** The character a problem points at. */
  marked: boolean;
}

/** The tokens with the character at `markAt` split into a segment of its own, marked. */
export function markTokens(tokens: Token[], markAt: number | null): Segment[] {
  return tokens.flatMap((token): Segment[] => {
    const offset = markAt === null ? -1 : markAt - token.start;
    if (offset < 0 || offset >= token.text.length) return [{ ...token, marked: false }];
    const parts: Segment[] = [
      { ...token, text: token.text.slice(0, offset), marked: false },
      { ...token, text: token.text.charAt(offset), start: markAt ?? 0, marked: true },
      { ...token, text: token.text.slice(offset + 1), start: (markAt ?? 0) + 1, marked: false },
    ];
    return parts.filter((part) => part.text !== "");
  });
}
