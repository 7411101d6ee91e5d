/** Typed calls of the REST API, one function per call the portal makes. */

import type { ApiClient, Page } from "./client";
import type {
  Device,
  Group,
  LoginResponse,
  Me,
  Message,
  Organization,
  Paging,
} from "./types";

export interface Credentials {
  email: string;
  password: string;
  /** The authenticator's code, when the first attempt answered `totp_required`. */
  totp?: string;
}

/** Signs in and keeps the token; `ApiError` code `totp_required` asks for the code. */
export async function signIn(client: ApiClient, credentials: Credentials): Promise<LoginResponse> {
  const body = credentials.totp ? credentials : { email: credentials.email, password: credentials.password };
  const answer = await client.post<LoginResponse>("/v1/auth/login", body, { auth: false });
  client.tokens.set(answer.access_token);
  return answer;
}

/** Revokes the token on the server (best effort) and forgets it here. */
export async function signOut(client: ApiClient): Promise<void> {
  try {
    if (client.tokens.get() !== null) await client.post("/v1/auth/logout");
  } catch {
    // An expired or revoked token is signed out already.
  } finally {
    client.tokens.clear();
  }
}

export function getMe(client: ApiClient): Promise<Me> {
  return client.get<Me>("/v1/auth/me");
}

export function listOrganizations(client: ApiClient, paging: Paging = {}): Promise<Page<Organization>> {
  return client.list<Organization>("/v1/organizations", { sort_field: "name", ...paging });
}

export function getOrganization(client: ApiClient, id: string): Promise<Organization> {
  return client.get<Organization>(`/v1/organizations/${encodeURIComponent(id)}`);
}

export function listGroups(
  client: ApiClient,
  organizationId: string,
  paging: Paging = {},
): Promise<Page<Group>> {
  const query = { organization_id: organizationId, sort_field: "name", ...paging };
  return client.list<Group>("/v1/groups", query);
}

export function getGroup(client: ApiClient, id: string): Promise<Group> {
  return client.get<Group>(`/v1/groups/${encodeURIComponent(id)}`);
}

export function listDevices(
  client: ApiClient,
  groupId: string,
  paging: Paging = {},
): Promise<Page<Device>> {
  return client.list<Device>("/v1/devices", { group_id: groupId, sort_field: "name", ...paging });
}

export function getDevice(client: ApiClient, id: string): Promise<Device> {
  return client.get<Device>(`/v1/devices/${encodeURIComponent(id)}`);
}

export function listMessages(
  client: ApiClient,
  deviceId: string,
  paging: Paging & { cursor?: string | null } = {},
): Promise<Page<Message>> {
  const query = { device_id: deviceId, sort_order: "desc", ...paging };
  return client.list<Message>("/v1/messages", query);
}
