/**
 * The callback form's state as the reader edits it, and the way back to the
 * API: the checks the API makes (so most mistakes show before saving), the
 * body of a new callback, the changes of an existing one (only the fields
 * that changed, so two people editing different fields do not undo each
 * other), and the API's 422 answer turned into messages per field.
 *
 * Field keys are the API's own (`url`, `headers[2].value`), so a message
 * from either side lands next to the same input.
 */

import {
  ApiError,
  CALLBACK_CONTENT_TYPES,
  CALLBACK_METHODS,
  CALLBACK_TRIGGERS,
  DEFAULT_RETRY_DELAYS,
  type Callback,
  type CallbackChanges,
  type CallbackContentType,
  type CallbackCreate,
  type CallbackMethod,
  type CallbackPair,
  type CallbackTrigger,
  type TransformProblem,
} from "@/api";

/** What to do with the write-only secret on save. */
export type SecretAction = { kind: "keep" } | { kind: "replace"; value: string } | { kind: "clear" };

export interface CallbackDraft {
  name: string;
  enabled: boolean;
  note: string;
  method: CallbackMethod;
  url: string;
  queryParams: CallbackPair[];
  headers: CallbackPair[];
  contentType: CallbackContentType;
  payload: string;
  triggers: CallbackTrigger[];
  /** Seconds, as typed. */
  timeout: string;
  /** Seconds separated by commas or spaces, as typed. */
  retryDelays: string;
  secret: SecretAction;
}

export type FieldErrors = Record<string, string>;

function oneOf<T extends string>(options: readonly T[], value: string, fallback: T): T {
  return (options as readonly string[]).includes(value) ? (value as T) : fallback;
}

/** The form of a new callback (the API's defaults) or of an existing one. */
export function draftOf(callback: Callback | null): CallbackDraft {
  if (callback === null) {
    return {
      name: "",
      enabled: true,
      note: "",
      method: "POST",
      url: "",
      queryParams: [],
      headers: [],
      contentType: "application/json",
      payload: "",
      triggers: ["data"],
      timeout: "10",
      retryDelays: DEFAULT_RETRY_DELAYS.join(", "),
      secret: { kind: "keep" },
    };
  }
  return {
    name: callback.name,
    enabled: callback.enabled,
    note: callback.note ?? "",
    method: oneOf(CALLBACK_METHODS, callback.method, "POST"),
    url: callback.url,
    queryParams: callback.query_params.map((pair) => ({ ...pair })),
    headers: callback.headers.map((pair) => ({ ...pair })),
    contentType: oneOf(CALLBACK_CONTENT_TYPES, callback.content_type, "application/json"),
    payload: callback.payload,
    triggers: callback.triggers.filter((t): t is CallbackTrigger => (CALLBACK_TRIGGERS as readonly string[]).includes(t)),
    timeout: String(callback.timeout),
    retryDelays: callback.retry_delays.join(", "),
    secret: { kind: "keep" },
  };
}

/** The typed retry delays, or null when one is not a number. */
export function parseDelays(text: string): number[] | null {
  const parts = text.split(/[\s,]+/).filter((part) => part !== "");
  const delays = parts.map(Number);
  return delays.every((delay) => Number.isFinite(delay)) ? delays : null;
}

const MAX_DELAY = 604_800;
const RESERVED_HEADERS = new Set([
  "user-agent",
  "idempotency-key",
  "content-length",
  "transfer-encoding",
  "connection",
  "host",
]);
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e]*$/;

function checkUrl(url: string): string | null {
  if (url.trim() === "") return "Enter the endpoint's URL.";
  if (/[\s\x00-\x1f\x7f]/.test(url)) return "A URL may not contain spaces or control characters.";
  if (!/^https?:\/\/[^/?#:]/i.test(url)) return "The URL must start with http:// or https:// and a host.";
  if (url.length > 2048) return "At most 2048 characters.";
  return null;
}

function checkHeader(pair: CallbackPair): [string | null, string | null] {
  let name: string | null = null;
  if (pair.name === "") name = "Name the header.";
  else if (!HEADER_NAME.test(pair.name)) name = "Letters, digits and !#$%&'*+-.^_`|~ only.";
  else if (RESERVED_HEADERS.has(pair.name.toLowerCase()) || /^x-nubes-/i.test(pair.name)) {
    name = `${pair.name} is set by Nubes and cannot be configured.`;
  }
  const value = HEADER_VALUE.test(pair.value) ? null : "Visible ASCII, spaces and tabs only.";
  return [name, value];
}

function checkPairs(errors: FieldErrors, field: string, pairs: CallbackPair[], header: boolean): void {
  pairs.forEach((pair, i) => {
    const [name, value] = header ? checkHeader(pair) : [pair.name === "" ? "Name the parameter." : null, null];
    if (name) errors[`${field}[${i}].name`] = name;
    if (value) errors[`${field}[${i}].value`] = value;
  });
}

function checkNumbers(errors: FieldErrors, draft: CallbackDraft): void {
  const timeout = Number(draft.timeout);
  if (draft.timeout.trim() === "" || !(timeout >= 0.1 && timeout <= 60)) {
    errors.timeout = "Between 0.1 and 60 seconds.";
  }
  const delays = parseDelays(draft.retryDelays);
  if (delays === null) errors.retry_delays = "Seconds separated by commas, e.g. 10, 30, 60.";
  else if (delays.length > 20) errors.retry_delays = "At most 20 retries.";
  else if (delays.some((delay) => delay <= 0 || delay > MAX_DELAY)) {
    errors.retry_delays = "Each delay above 0 and at most 604800 seconds (7 days).";
  }
}

/** The problems the API would answer with, found before asking it. */
export function checkDraft(draft: CallbackDraft): FieldErrors {
  const errors: FieldErrors = {};
  if (draft.name.trim() === "") errors.name = "Name the callback.";
  else if (draft.name.length > 200) errors.name = "At most 200 characters.";
  if (draft.note.length > 2000) errors.note = "At most 2000 characters.";
  const url = checkUrl(draft.url);
  if (url) errors.url = url;
  checkPairs(errors, "query_params", draft.queryParams, false);
  checkPairs(errors, "headers", draft.headers, true);
  if (draft.triggers.length === 0) errors.triggers = "Choose at least one message type.";
  if (draft.payload.length > 20000) errors.payload = "At most 20000 characters.";
  checkNumbers(errors, draft);
  if (draft.secret.kind === "replace" && draft.secret.value === "") errors.secret = "Enter the new secret.";
  return errors;
}

/** The fields as the API names them (everything but the secret). */
function apiFields(draft: CallbackDraft): Required<Omit<CallbackCreate, "secret">> {
  return {
    name: draft.name.trim(),
    enabled: draft.enabled,
    note: draft.note,
    method: draft.method,
    url: draft.url,
    query_params: draft.queryParams,
    headers: draft.headers,
    content_type: draft.contentType,
    payload: draft.payload,
    triggers: draft.triggers,
    timeout: Number(draft.timeout),
    retry_delays: parseDelays(draft.retryDelays) ?? [],
  };
}

/** The body of a new callback (call after `checkDraft` found nothing). */
export function createBody(draft: CallbackDraft): CallbackCreate {
  const fields = apiFields(draft);
  const secret = draft.secret.kind === "replace" ? draft.secret.value : null;
  return { ...fields, note: fields.note === "" ? null : fields.note, secret };
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Only what differs from `original`; an empty object when nothing does. */
export function changesOf(original: CallbackDraft, draft: CallbackDraft): CallbackChanges {
  const before: Record<string, unknown> = apiFields(original);
  const after: Record<string, unknown> = apiFields(draft);
  const changes: Record<string, unknown> = {};
  for (const key of Object.keys(after)) {
    if (!same(before[key], after[key])) changes[key] = after[key];
  }
  if (draft.secret.kind === "replace") changes.secret = draft.secret.value;
  if (draft.secret.kind === "clear") changes.secret = "";
  return changes as CallbackChanges;
}

export function isDirty(original: CallbackDraft, draft: CallbackDraft): boolean {
  return Object.keys(changesOf(original, draft)).length > 0;
}

interface PydanticError {
  loc?: unknown[];
  msg?: string;
}

/** `["body", "headers", 0, "name"]` → `headers[0].name`. */
function fieldOfLocation(loc: unknown[]): string {
  return loc
    .slice(loc[0] === "body" ? 1 : 0)
    .map((part, i) => (typeof part === "number" ? `[${part}]` : i === 0 ? String(part) : `.${String(part)}`))
    .join("");
}

/**
 * The messages of a 422 per field: the callback checks' `{field, position,
 * code}` (the message is the error's) or the request validation's list of
 * `{loc, msg}`. Other errors give none: the caller shows them whole.
 */
export function fieldErrorsOf(error: unknown): FieldErrors {
  if (!(error instanceof ApiError) || error.status !== 422) return {};
  const details = error.details;
  if (Array.isArray(details)) {
    const errors: FieldErrors = {};
    for (const item of details as PydanticError[]) {
      const field = fieldOfLocation(item.loc ?? []);
      if (field && !(field in errors)) errors[field] = item.msg ?? error.message;
    }
    return errors;
  }
  if (typeof details === "object" && details !== null && "field" in details) {
    const field = String((details as { field: unknown }).field);
    const prefix = `${field}: `;
    return { [field]: error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message };
  }
  return {};
}

/** A refused payload as a `TransformProblem`, so the editor marks it like the preview's. */
export function payloadProblemOf(error: unknown): TransformProblem | null {
  if (!(error instanceof ApiError) || error.status !== 422) return null;
  const details = error.details as { field?: unknown; position?: unknown; code?: unknown } | null;
  if (details === null || typeof details !== "object" || details.field !== "payload") return null;
  return {
    message: fieldErrorsOf(error).payload ?? error.message,
    position: typeof details.position === "number" ? details.position : null,
    code: typeof details.code === "string" ? details.code : null,
  };
}
