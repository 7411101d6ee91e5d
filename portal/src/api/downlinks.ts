/**
 * Typed calls of the REST API for a device's downlinks (docs/api.md,
 * "Downlinks"): queue config lines, shell commands or data for the device's
 * encoder, list them with their states, cancel one not delivered yet.
 *
 * Not re-exported by `api/index.ts`: import from `@/api/downlinks`.
 */

import type { ApiClient, Page } from "./client";
import type { Paging } from "./types";

export type DownlinkKind = "config" | "shell" | "data";
export type DownlinkState = "pending" | "sent" | "delivered" | "cancelled" | "expired";

/** The states a downlink may still leave: it can be cancelled, and its list is worth refreshing. */
export const ACTIVE_STATES: readonly DownlinkState[] = ["pending", "sent"];

export type NewDownlink =
  | { kind: "config"; lines: string[] }
  | { kind: "shell"; commands: string[] }
  | { kind: "data"; data: Record<string, unknown> };

export interface Downlink {
  id: string;
  organization_id: string;
  device_id: string;
  kind: DownlinkKind;
  /** The config lines, shell commands or data asked for. */
  request: unknown;
  state: DownlinkState;
  /** How often sending was started. */
  attempts: number;
  created_at: string;
  updated_at: string;
  sent_at: string | null;
  delivered_at: string | null;
  expires_at: string;
  reply_message_id: string | null;
  /** The decoded body of the device's answer (shell), once it came. */
  reply?: unknown;
}

/** One command's outcome in a shell answer, as the gateway decodes UPLOAD_SHELL. */
export interface ShellResult {
  command: string;
  rc: number;
  output: string[];
}

export function isActive(downlink: Downlink): boolean {
  return ACTIVE_STATES.includes(downlink.state);
}

/** A shell answer's results, or null when the reply is absent or not of that shape. */
export function shellResults(reply: unknown): ShellResult[] | null {
  if (typeof reply !== "object" || reply === null) return null;
  const results = (reply as { results?: unknown }).results;
  if (!Array.isArray(results)) return null;
  return results.map((entry: unknown) => {
    const item = (typeof entry === "object" && entry !== null ? entry : {}) as Record<string, unknown>;
    const output = Array.isArray(item.output) ? item.output.map(String) : [];
    return { command: String(item.command ?? ""), rc: typeof item.rc === "number" ? item.rc : 0, output };
  });
}

export function queueDownlink(client: ApiClient, deviceId: string, downlink: NewDownlink): Promise<Downlink> {
  return client.post<Downlink>(`/v1/devices/${encodeURIComponent(deviceId)}/downlinks`, downlink);
}

/** The device's downlinks, newest first. */
export function listDownlinks(
  client: ApiClient,
  deviceId: string,
  paging: Paging & { state?: DownlinkState } = {},
): Promise<Page<Downlink>> {
  return client.list<Downlink>(`/v1/devices/${encodeURIComponent(deviceId)}/downlinks`, {
    sort_order: "desc",
    ...paging,
  });
}

/** Cancels a pending or sent downlink; 409 when it is final already. */
export function cancelDownlink(client: ApiClient, id: string): Promise<Downlink> {
  return client.post<Downlink>(`/v1/downlinks/${encodeURIComponent(id)}/cancel`);
}
