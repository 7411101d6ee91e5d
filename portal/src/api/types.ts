/** The shapes the REST API answers (see /docs of a running Nubes). Times are ISO 8601 UTC. */

export interface LoginResponse {
  access_token: string;
  token_type: "bearer";
  expires_in: number;
}

export interface Membership {
  organization_id: string;
  organization_name: string;
  role: string;
}

export interface Me {
  kind: "user" | "api_key";
  id: string;
  email: string | null;
  label: string;
  totp_enabled: boolean;
  organizations: Membership[];
}

export interface Organization {
  id: string;
  name: string;
  created_at: string;
  /** Days messages are kept (shown by `GET /v1/organizations/{id}`, not by the list). */
  message_retention_days?: number;
}

export interface Group {
  id: string;
  organization_id: string;
  name: string;
  created_at: string;
  updated_at: string | null;
  device_count: number;
}

export interface Device {
  id: string;
  organization_id: string;
  group_id: string | null;
  serial: number;
  name: string;
  label: string | null;
  enabled: boolean;
  created_at: string;
  last_seen_at: string | null;
  session_id: number | null;
  vendor: string | null;
  product: string | null;
  fw_name: string | null;
  fw_version: string | null;
}

/** The message types of FLAP (cloud.md), in the order devices send them. */
export const MESSAGE_TYPES = [
  "session",
  "data",
  "config",
  "decoder",
  "encoder",
  "stats",
  "shell",
  "firmware",
  "timestamp",
] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

export interface Message {
  id: string;
  created_at: string;
  organization_id: string;
  group_id: string | null;
  device_id: string;
  label: string | null;
  session_id: number | null;
  type: string;
  direction: "up" | "down";
  data: unknown;
  raw: string;
  codec_hash: string | null;
  decode_state: "decoded" | "undecoded" | "failed" | null;
  decode_error: string | null;
  downlink_id: string | null;
}

export interface Paging {
  offset?: number;
  limit?: number;
}
