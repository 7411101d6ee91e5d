/**
 * Typed calls of the REST API for messages (with their types).
 *
 * Every call of a messages page takes the same two things: the scope (one
 * device or one group) and the filter (since, before, types, direction), so
 * that the table, the export, the bulk delete and the live tail always mean
 * the same set of messages. `messageQuery` is the one place that turns them
 * into query parameters.
 */

import type { ApiClient, Page, Query } from "./client";
import type { DeliveryLog } from "./callbacks";
import type { Message, MessageType } from "./types";
export { MESSAGE_TYPES } from "./types";

export type MessageDirection = "up" | "down";

/** Whose messages: exactly one device or one group. */
export type MessageScope = { deviceId: string } | { groupId: string };

/** Which of the scope's messages; times are ISO 8601 UTC. Empty means all. */
export interface MessageFilter {
  since?: string;
  before?: string;
  types?: MessageType[];
  direction?: MessageDirection;
}

export interface MessagePaging {
  offset?: number;
  limit?: number;
  cursor?: string | null;
}

export type MessageExportFormat = "csv" | "ndjson";

export function scopeQuery(scope: MessageScope): Query {
  return "deviceId" in scope ? { device_id: scope.deviceId } : { group_id: scope.groupId };
}

/** The query parameters of a scope and filter, shared by list, export and delete. */
export function messageQuery(scope: MessageScope, filter: MessageFilter): Query {
  return {
    ...scopeQuery(scope),
    since: filter.since,
    before: filter.before,
    type: filter.types ?? [],
    direction: filter.direction,
  };
}

/** One page of the scope's filtered messages, newest first. */
export function listScopedMessages(
  client: ApiClient,
  scope: MessageScope,
  filter: MessageFilter,
  paging: MessagePaging = {},
): Promise<Page<Message>> {
  const query = { ...messageQuery(scope, filter), sort_order: "desc", ...paging };
  return client.list<Message>("/v1/messages", query);
}

/** One message, e.g. the one a communication-log row links to. */
export function getMessage(client: ApiClient, id: string): Promise<Message> {
  return client.get<Message>(`/v1/messages/${encodeURIComponent(id)}`);
}

export function deleteMessage(client: ApiClient, id: string): Promise<void> {
  return client.delete(`/v1/messages/${encodeURIComponent(id)}`);
}

/** Deletes every message the scope and filter select; answers how many. */
export async function deleteFilteredMessages(
  client: ApiClient,
  scope: MessageScope,
  filter: MessageFilter,
): Promise<number> {
  const response = await client.send("DELETE", "/v1/messages", { query: messageQuery(scope, filter) });
  const body = (await response.json()) as { deleted: number };
  return body.deleted;
}

/** The filtered set as a file, newest first; fetched (not linked) as it needs the token. */
export async function exportMessages(
  client: ApiClient,
  scope: MessageScope,
  filter: MessageFilter,
  format: MessageExportFormat,
  signal?: AbortSignal,
): Promise<Blob> {
  const query = { ...messageQuery(scope, filter), format, sort_order: "desc" };
  const response = await client.send("GET", "/v1/messages/export", { query, signal });
  return response.blob();
}

/** A message's deliveries to its group's callbacks, oldest first, with every attempt. */
export function listMessageDeliveries(
  client: ApiClient,
  messageId: string,
  paging: MessagePaging = {},
): Promise<Page<DeliveryLog>> {
  return client.list<DeliveryLog>(`/v1/messages/${encodeURIComponent(messageId)}/deliveries`, { ...paging });
}

/**
 * Opens the live stream of the scope (Server-Sent Events) with the bearer
 * token in a header, not in the URL: `fetch`, not `EventSource`. A 401 goes
 * through the client's unauthorized path like any other call.
 */
export function openMessageStream(
  client: ApiClient,
  scope: MessageScope,
  lastEventId: string | null,
  signal: AbortSignal,
): Promise<Response> {
  const query = { ...scopeQuery(scope), last_event_id: lastEventId };
  return client.send("GET", "/v1/messages/stream", { query, signal });
}
