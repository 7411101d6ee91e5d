/**
 * What the endpoint will receive for a transformed payload, shown beside the
 * editor: the body in the callback's content type (or, for GET, the query
 * string it becomes) and the `Content-Type` header. Mirrors the
 * dispatcher's rules (docs/callbacks.md, "The request"): objects flatten to
 * `a[b]=1` fields, anything else to `payload=<JSON>`; JSON is shown pretty
 * here (the wire has it compact, which is the same document).
 */

import type { CallbackContentType, CallbackMethod, CallbackPair } from "@/api";

export interface RenderedBody {
  /** `Content-Type` as sent; null for GET (no body). */
  contentType: string | null;
  /** The body, or for GET the query string added to the URL. */
  text: string;
  /** How to read `text`: "json" pretty-printed, "query" for GET, "text" otherwise. */
  kind: "json" | "query" | "form" | "text" | "raw";
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A scalar as templates read it: strings as they are, null as nothing, others as JSON. */
function scalarText(value: unknown): string {
  if (value === null || value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** `{"a": {"b": 1}, "l": [2]}` → `[["a[b]", "1"], ["l[0]", "2"]]`. */
export function flatten(value: unknown, prefix = ""): [string, string][] {
  let entries: [string, unknown][];
  if (isObject(value)) entries = Object.entries(value);
  else if (Array.isArray(value)) entries = value.map((item, i) => [String(i), item]);
  else return [[prefix, scalarText(value)]];
  return entries.flatMap(([key, item]) => flatten(item, prefix ? `${prefix}[${key}]` : key));
}

function fields(value: unknown): [string, string][] {
  return isObject(value) ? flatten(value) : [["payload", JSON.stringify(value as Json)]];
}

function encoded(pairs: [string, string][], spaceAsPlus: boolean): string {
  const encode = (text: string): string => {
    const once = encodeURIComponent(text);
    return spaceAsPlus ? once.replace(/%20/g, "+") : once;
  };
  return pairs.map(([name, value]) => `${encode(name)}=${encode(value)}`).join("&");
}

/** The header the user set, which wins over the callback's content type. */
function ownContentType(headers: CallbackPair[]): string | null {
  return headers.find((header) => header.name.toLowerCase() === "content-type")?.value ?? null;
}

export function renderBody(
  transformed: unknown,
  options: { method: CallbackMethod; contentType: CallbackContentType; payload: string; headers: CallbackPair[] },
): RenderedBody {
  if (options.method === "GET") return { contentType: null, text: encoded(fields(transformed), false), kind: "query" };
  const contentType = ownContentType(options.headers) ?? options.contentType;
  if (options.contentType === "application/x-www-form-urlencoded") {
    return { contentType, text: encoded(fields(transformed), true), kind: "form" };
  }
  if (options.contentType === "application/octet-stream") {
    if (options.payload.trim() === "") return { contentType, text: "(the device's raw bytes)", kind: "raw" };
    if (typeof transformed === "string") return { contentType, text: transformed, kind: "text" };
  }
  return { contentType, text: JSON.stringify(transformed, null, 2), kind: "json" };
}
