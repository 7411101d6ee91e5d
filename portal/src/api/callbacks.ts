/**
 * Typed calls of the REST API for callbacks (with their types): a group's
 * callbacks, the editor's live preview, "send test", and the delivery log
 * with replay. The shapes follow the OpenAPI document (`Callback`,
 * `CallbackCreate`, `CallbackUpdate`, `Preview`, `TestResult`, `Delivery`,
 * `DeliveryLog`, `Attempt`); names carry "Callback" or "Delivery" because
 * `api/index.ts` re-exports every area's module into one namespace.
 */

import type { ApiClient, Page } from "./client";
import { MESSAGE_TYPES, type Message, type MessageType, type Paging } from "./types";

export const CALLBACK_METHODS = ["POST", "GET", "PUT", "PATCH"] as const;
export type CallbackMethod = (typeof CALLBACK_METHODS)[number];

export const CALLBACK_CONTENT_TYPES = [
  "application/json",
  "application/x-www-form-urlencoded",
  "application/octet-stream",
] as const;
export type CallbackContentType = (typeof CALLBACK_CONTENT_TYPES)[number];

/** Every message type may fire a callback. */
export const CALLBACK_TRIGGERS = MESSAGE_TYPES;
export type CallbackTrigger = MessageType;

/** The API's default `retry_delays` (seconds), as HARDWARIO v2 had them. */
export const DEFAULT_RETRY_DELAYS: readonly number[] = [10, 30, 60, 600, 1800, 3600, 10800, 21600, 43200];

/** A query parameter or header; values may hold `{{path}}` templates. */
export interface CallbackPair {
  name: string;
  value: string;
}

export type CallbackHealthState = "healthy" | "failing" | "paused";

/** A callback as the API shows it: never its secret, only `has_secret`. */
export interface Callback {
  id: string;
  organization_id: string;
  group_id: string;
  name: string;
  enabled: boolean;
  note: string | null;
  method: string;
  url: string;
  query_params: CallbackPair[];
  headers: CallbackPair[];
  content_type: string;
  payload: string;
  triggers: string[];
  timeout: number;
  retry_delays: number[];
  has_secret: boolean;
  version: number;
  created_at: string;
  updated_at: string;
  last_success_at: string | null;
  last_failure_at: string | null;
  failure_streak: number;
  paused_until: string | null;
  state: CallbackHealthState;
}

/** The body of a new callback (`CallbackCreate`). */
export interface CallbackCreate {
  name: string;
  url: string;
  enabled?: boolean;
  note?: string | null;
  method?: CallbackMethod;
  query_params?: CallbackPair[];
  headers?: CallbackPair[];
  content_type?: CallbackContentType;
  payload?: string;
  triggers?: CallbackTrigger[];
  timeout?: number;
  retry_delays?: number[];
  secret?: string | null;
}

/** The fields to change (`CallbackUpdate`); `note: ""` removes the note, `secret: ""` the secret. */
export type CallbackChanges = Partial<Omit<CallbackCreate, "secret" | "note">> & {
  note?: string;
  secret?: string;
};

/** Why a payload does not compile or evaluate; `position` is where the parser stopped. */
export interface TransformProblem {
  message: string;
  position: number | null;
  code: string | null;
}

export interface CallbackPreview {
  /** The document the callback sees; null when the group has no message yet. */
  original: Record<string, unknown> | null;
  transformed: unknown;
  skipped: boolean;
  error: TransformProblem | null;
}

export interface CallbackTestResponse {
  status: number;
  headers: [string, string][];
  body: string;
}

export interface CallbackTestResult {
  ok: boolean;
  skipped: boolean;
  request: Record<string, unknown> | null;
  response: CallbackTestResponse | null;
  error: string | null;
  duration_ms: number;
}

export const DELIVERY_STATES = ["pending", "delivering", "succeeded", "failed", "skipped", "cancelled"] as const;
export type DeliveryState = (typeof DELIVERY_STATES)[number];

export interface Delivery {
  id: string;
  organization_id: string;
  callback_id: string;
  callback_name: string;
  message_id: string;
  state: DeliveryState;
  attempts: number;
  next_attempt_at: string | null;
  last_status: number | null;
  last_error: string | null;
  created_at: string;
  updated_at: string;
}

/** A logged request or response body: text when UTF-8, else base64. */
export interface LoggedExchange {
  method?: string;
  url?: string;
  status?: number;
  headers?: [string, string][] | Record<string, string>;
  body?: string | null;
  body_encoding?: "utf-8" | "base64";
  body_truncated?: boolean;
}

export interface DeliveryAttempt {
  id: number;
  at: string;
  duration_ms: number | null;
  outcome: string;
  request: LoggedExchange | null;
  response: LoggedExchange | null;
  error: string | null;
}

export interface DeliveryLog extends Delivery {
  attempt_log: DeliveryAttempt[];
}

function callbackPath(id: string): string {
  return `/v1/callbacks/${encodeURIComponent(id)}`;
}

function groupCallbacksPath(groupId: string): string {
  return `/v1/groups/${encodeURIComponent(groupId)}/callbacks`;
}

export function listCallbacks(client: ApiClient, groupId: string, paging: Paging = {}): Promise<Page<Callback>> {
  return client.list<Callback>(groupCallbacksPath(groupId), { sort_field: "name", ...paging });
}

export function getCallback(client: ApiClient, id: string): Promise<Callback> {
  return client.get<Callback>(callbackPath(id));
}

export function createCallback(client: ApiClient, groupId: string, body: CallbackCreate): Promise<Callback> {
  return client.post<Callback>(groupCallbacksPath(groupId), body);
}

/** Changes only the fields named; the API bumps `version` on every change. */
export function updateCallback(client: ApiClient, id: string, changes: CallbackChanges): Promise<Callback> {
  return client.patch<Callback>(callbackPath(id), changes);
}

export function deleteCallback(client: ApiClient, id: string): Promise<void> {
  return client.delete(callbackPath(id));
}

/** Transforms a message of the group (its latest without `messageId`); a bad payload answers `error`, not 422. */
export function previewCallbackPayload(
  client: ApiClient,
  groupId: string,
  payload: string,
  messageId: string | null,
  signal?: AbortSignal,
): Promise<CallbackPreview> {
  const body = { payload, message_id: messageId };
  return client.post<CallbackPreview>(`${groupCallbacksPath(groupId)}/preview`, body, { signal });
}

/** Sends one real request to the endpoint now; no delivery is recorded. 409 when the group has no message. */
export function sendCallbackTest(client: ApiClient, id: string, messageId: string | null): Promise<CallbackTestResult> {
  return client.post<CallbackTestResult>(`${callbackPath(id)}/test`, { message_id: messageId });
}

export function listDeliveries(
  client: ApiClient,
  callbackId: string,
  state: DeliveryState | null,
  paging: Paging = {},
): Promise<Page<Delivery>> {
  const query = { state, sort_field: "created_at", sort_order: "desc", ...paging };
  return client.list<Delivery>(`${callbackPath(callbackId)}/deliveries`, query);
}

export function getDelivery(client: ApiClient, id: string): Promise<DeliveryLog> {
  return client.get<DeliveryLog>(`/v1/deliveries/${encodeURIComponent(id)}`);
}

/** Sets one failed delivery (or, without an id, all the callback's failed ones) pending again. */
export async function replayDeliveries(client: ApiClient, callbackId: string, deliveryId: string | null): Promise<number> {
  const answer = await client.post<{ replayed: number }>(`${callbackPath(callbackId)}/replay`, {
    delivery_id: deliveryId,
  });
  return answer.replayed;
}

/** The group's recent messages, newest first: what the preview and the test may run on. */
export function listCallbackMessageChoices(client: ApiClient, groupId: string, limit = 20): Promise<Page<Message>> {
  return client.list<Message>("/v1/messages", { group_id: groupId, sort_order: "desc", limit });
}
