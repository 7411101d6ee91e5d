/**
 * One line that tells what a message says, for the table: the decoded body
 * as compact `key: value` pairs (nested keys joined with dots), or why there
 * is no body. The whole body is one click away in the row's details.
 */

import type { Message } from "@/api";

export const SUMMARY_LENGTH = 140;

function leaves(value: unknown, path: string, out: string[]): void {
  if (out.join(", ").length > SUMMARY_LENGTH) return;
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    for (const [key, child] of Object.entries(value)) leaves(child, path ? `${path}.${key}` : key, out);
    return;
  }
  const text = Array.isArray(value) ? `[${value.length}]` : JSON.stringify(value);
  out.push(path ? `${path}: ${text}` : text);
}

function clip(text: string): string {
  return text.length > SUMMARY_LENGTH ? `${text.slice(0, SUMMARY_LENGTH - 1)}…` : text;
}

export function messageSummary(message: Message): string {
  if (message.data === null || message.data === undefined) {
    if (message.decode_state === "failed") return `not decoded: ${message.decode_error ?? "failed"}`;
    return message.decode_state === "undecoded" ? "not decoded (no codec)" : "";
  }
  const out: string[] = [];
  leaves(message.data, "", out);
  return clip(out.join(", "));
}
