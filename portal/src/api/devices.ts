/**
 * Typed calls of the REST API for devices, their sessions and their
 * communication log, with the shapes the API answers (docs/api.md,
 * "Devices" and "Sessions"). The common `Device` of types.ts carries only
 * what lists need; `DeviceDetails` is everything `GET /v1/devices/{id}` shows.
 */

import type { ApiClient, Page } from "./client";
import type { Device, Paging } from "./types";

/** A device as its own page shows it: what its last session told, codecs, config. */
export interface DeviceDetails extends Device {
  hw_variant: string | null;
  hw_revision: string | null;
  fw_bundle: string | null;
  modem_fw: string | null;
  imei: string | null;
  imsi: string | null;
  iccid: string | null;
  /** Shown to admins only; null for other roles. */
  ble_passkey: string | null;
  decoder_hash: string | null;
  encoder_hash: string | null;
  config_hash: string | null;
  /** The configuration the device last reported; a list of lines when it reported one. */
  config_lines: unknown;
  has_psk: boolean;
  psk_previous_until: string | null;
}

export interface NewDevice {
  serial: number;
  claim_token: string;
  psk?: string;
  name?: string;
  label?: string;
  group_id: string;
}

export interface DeviceChanges {
  name?: string;
  label?: string;
  enabled?: boolean;
}

export interface DeviceSecrets {
  claim_token: string;
  psk: string | null;
}

/** Messages of one UTC day (`date` is `YYYY-MM-DD`); only days with messages are listed. */
export interface DayCount {
  date: string;
  count: number;
}

export interface DeviceSession {
  id: number;
  device_id: string;
  organization_id: string;
  envelope: string;
  remote_address: string;
  remote_port: number;
  started_at: string;
  last_activity_at: string;
  ended_at: string | null;
  end_reason: string | null;
  packets_in: number;
  packets_out: number;
  bytes_in: number;
  bytes_out: number;
  messages_in: number;
  messages_out: number;
  /** What the device told at the session start, keyed by name (vendor, product, …). */
  attributes: unknown;
}

export type LogDirection = "in" | "out";

export interface LogEntry {
  id: number;
  at: string;
  session_id: number | null;
  device_id: string;
  direction: LogDirection;
  envelope: string;
  remote: string;
  flags: number | null;
  flags_text: string | null;
  seq: number | null;
  size: number;
  outcome: string;
  detail: string | null;
  message_id: string | null;
}

export interface LogFilter {
  direction?: LogDirection | null;
  outcome?: string | null;
}

export interface DeviceFilter {
  /** Name, label or serial number; a leading `hsn:` is left out. */
  q?: string | null;
  enabled?: boolean | null;
}

export interface CodecSummary {
  id: string;
  organization_id: string;
  name: string;
  hash: string | null;
  source: "device" | "user";
}

const path = (id: string | number): string => encodeURIComponent(String(id));

/** The API searches serial numbers as digits: `hsn:2159…` and `2159…` mean the same. */
export function searchText(q: string | null | undefined): string {
  return (q ?? "").trim().replace(/^hsn:\s*/i, "");
}

/** Devices of one group, filtered, by name. */
export function listGroupDevices(
  client: ApiClient,
  groupId: string,
  filter: DeviceFilter = {},
  paging: Paging = {},
): Promise<Page<Device>> {
  return client.list<Device>("/v1/devices", {
    group_id: groupId,
    q: searchText(filter.q),
    enabled: filter.enabled ?? undefined,
    sort_field: "name",
    ...paging,
  });
}

/** Devices of all the signed-in user's organizations matching `q` (the header's search). */
export async function searchDevices(client: ApiClient, q: string, limit = 8): Promise<Device[]> {
  const text = searchText(q);
  if (text === "") return [];
  const page = await client.list<Device>("/v1/devices", {
    q: text,
    sort_field: "last_seen_at",
    sort_order: "desc",
    limit,
  });
  return page.items;
}

export function createDevice(client: ApiClient, device: NewDevice): Promise<DeviceDetails> {
  return client.post<DeviceDetails>("/v1/devices", device);
}

export function getDeviceDetails(client: ApiClient, id: string): Promise<DeviceDetails> {
  return client.get<DeviceDetails>(`/v1/devices/${path(id)}`);
}

export function updateDevice(client: ApiClient, id: string, changes: DeviceChanges): Promise<DeviceDetails> {
  return client.patch<DeviceDetails>(`/v1/devices/${path(id)}`, changes);
}

export function deleteDevice(client: ApiClient, id: string): Promise<void> {
  return client.delete(`/v1/devices/${path(id)}`);
}

/** The claim token and PSK (admins only; the API audits every call). */
export function revealDeviceSecrets(client: ApiClient, id: string): Promise<DeviceSecrets> {
  return client.post<DeviceSecrets>(`/v1/devices/${path(id)}/reveal`);
}

/** Messages per UTC day since `since` (default: the API's last 365 days). */
export function messageCounts(client: ApiClient, id: string, since?: Date): Promise<DayCount[]> {
  const query = since ? { since: since.toISOString() } : undefined;
  return client.get<DayCount[]>(`/v1/devices/${path(id)}/message-counts`, query);
}

export function listSessions(client: ApiClient, deviceId: string, paging: Paging = {}): Promise<Page<DeviceSession>> {
  return client.list<DeviceSession>(`/v1/devices/${path(deviceId)}/sessions`, {
    sort_order: "desc",
    ...paging,
  });
}

export function getSession(client: ApiClient, sessionId: string | number): Promise<DeviceSession> {
  return client.get<DeviceSession>(`/v1/sessions/${path(sessionId)}`);
}

/** A session's datagrams in time order. */
export function listSessionLog(
  client: ApiClient,
  sessionId: string | number,
  filter: LogFilter = {},
  paging: Paging = {},
): Promise<Page<LogEntry>> {
  return client.list<LogEntry>(`/v1/sessions/${path(sessionId)}/log`, {
    direction: filter.direction ?? undefined,
    outcome: filter.outcome ?? undefined,
    sort_order: "asc",
    ...paging,
  });
}

/** The codec a device's decoder or encoder hash names, in the device's organization. */
export function codecByHash(client: ApiClient, hash: string, organizationId: string): Promise<CodecSummary> {
  return client.get<CodecSummary>(`/v1/codecs/by-hash/${path(hash)}`, { organization_id: organizationId });
}
