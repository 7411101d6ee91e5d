/**
 * How traffic reads in the sessions and the communication log: byte sizes,
 * times to the millisecond (a FLAP exchange takes a few), and which
 * outcomes are trouble (docs/devices.md and docs/dtls.md list them).
 */

/** "512 B", "1.5 kB", "2.0 MB" (decimal units, like network counters). */
export function byteSize(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  if (bytes < 1_000_000) return `${(bytes / 1000).toFixed(1)} kB`;
  return `${(bytes / 1_000_000).toFixed(1)} MB`;
}

function pad(value: number, size = 2): string {
  return String(value).padStart(size, "0");
}

/** "2026-11-27 12:00:05.123" in the reader's zone. */
export function timeWithMs(iso: string): string {
  const t = new Date(iso);
  const day = `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())}`;
  return `${day} ${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}.${pad(t.getMilliseconds(), 3)}`;
}

/** Outcomes the log filter offers, in the order a reader meets them. */
export const OUTCOMES = [
  "accepted",
  "ack",
  "answer",
  "duplicate",
  "stale",
  "reset",
  "bad_mac",
  "invalid",
  "rejected",
  "dtls_start",
  "dtls_established",
  "dtls_failed",
  "dtls_closed",
] as const;

const TROUBLE = new Set(["stale", "reset", "bad_mac", "invalid", "rejected", "dtls_failed"]);

/** Whether an outcome means something went wrong (shown in red). */
export function isTrouble(outcome: string): boolean {
  return TROUBLE.has(outcome);
}
