import { describe, expect, it } from "vitest";
import { lineAndColumn, markTokens, problemIndex, tokenize, type TokenKind } from "./highlight";

function kinds(source: string): [TokenKind, string][] {
  return tokenize(source)
    .filter((token) => token.kind !== "space")
    .map((token) => [token.kind, token.text]);
}

describe("tokenize", () => {
  it("gives every character back, in order", () => {
    const source = '{"t": data.thermometer.temperature /* °C */, "n": $count(x) ?? 0, "u": "unfinished';
    expect(tokenize(source).map((token) => token.text).join("")).toBe(source);
  });

  it("tells strings, names, numbers, operators and brackets apart", () => {
    expect(kinds('{"t": data.x * 1.5e2}')).toEqual([
      ["bracket", "{"],
      ["string", '"t"'],
      ["punctuation", ":"],
      ["name", "data"],
      ["operator", "."],
      ["name", "x"],
      ["operator", "*"],
      ["number", "1.5e2"],
      ["bracket", "}"],
    ]);
  });

  it("tells variables from function calls and keywords", () => {
    expect(kinds("$x := $string(a) and true")).toEqual([
      ["variable", "$x"],
      ["operator", ":="],
      ["function", "$string"],
      ["bracket", "("],
      ["name", "a"],
      ["bracket", ")"],
      ["keyword", "and"],
      ["keyword", "true"],
    ]);
  });

  it("keeps escaped quotes inside strings and comments whole", () => {
    expect(kinds('"a\\"b" /* c */')).toEqual([
      ["string", '"a\\"b"'],
      ["comment", "/* c */"],
    ]);
  });

  it("reads back-quoted names as names", () => {
    expect(kinds("`odd name`.x")[0]).toEqual(["name", "`odd name`"]);
  });

  it("records where each token starts", () => {
    const tokens = tokenize("a + 12");
    expect(tokens.map((token) => token.start)).toEqual([0, 1, 2, 3, 4]);
  });
});

describe("problem positions", () => {
  it("mark the character before the reported offset, kept inside the text", () => {
    expect(problemIndex('{"a": 1 +}', 10)).toBe(9);
    expect(problemIndex('{"t": data.x', 12)).toBe(11);
    expect(problemIndex("abc", 0)).toBe(0);
    expect(problemIndex("abc", 99)).toBe(2);
    expect(problemIndex("abc", null)).toBeNull();
    expect(problemIndex("", 3)).toBeNull();
  });

  it("read as line and column", () => {
    expect(lineAndColumn("ab\ncd", 4)).toEqual({ line: 2, column: 2 });
    expect(lineAndColumn("ab", 0)).toEqual({ line: 1, column: 1 });
  });
});

describe("markTokens", () => {
  it("splits out the marked character and keeps the text", () => {
    const segments = markTokens(tokenize("abc + 1"), 1);
    expect(segments.map((s) => [s.text, s.marked])).toEqual([
      ["a", false],
      ["b", true],
      ["c", false],
      [" ", false],
      ["+", false],
      [" ", false],
      ["1", false],
    ]);
  });

  it("marks nothing without a position", () => {
    expect(markTokens(tokenize("a"), null).some((s) => s.marked)).toBe(false);
  });
});
