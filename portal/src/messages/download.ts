/**
 * Saving a fetched file: the export needs the Authorization header, so it
 * cannot be a plain link; it is fetched, then handed to the browser as a
 * Blob URL with a name that says what and when (`messages-greenhouse-
 * 20261127-130501.ndjson`).
 */

import type { MessageExportFormat } from "@/api";

/** A name safe on every file system: letters, digits, dot, dash, underscore. */
export function fileSafe(text: string): string {
  return text.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^-+|-+$/g, "") || "messages";
}

export function exportFileName(what: string, format: MessageExportFormat, at: Date): string {
  const pad = (n: number): string => String(n).padStart(2, "0");
  const day = `${at.getFullYear()}${pad(at.getMonth() + 1)}${pad(at.getDate())}`;
  const time = `${pad(at.getHours())}${pad(at.getMinutes())}${pad(at.getSeconds())}`;
  return `messages-${fileSafe(what)}-${day}-${time}.${format}`;
}

export function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  link.rel = "noopener";
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
