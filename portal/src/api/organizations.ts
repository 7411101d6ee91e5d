/**
 * Typed calls of the REST API for what an organization holds besides its
 * devices: the organization itself, its groups, members, API keys and audit
 * log (docs/api.md, "Organizations and members" and "Groups").
 *
 * Lists go through `client.list` so the pages read `x-total`; secrets (a new
 * key) come back only in the answer of the call that made them.
 */

import type { ApiClient, Page } from "./client";
import type { Group, Organization, Paging } from "./types";

export type MemberRole = "owner" | "admin" | "member" | "viewer";
export type ApiKeyScope = "read" | "write" | "admin";

export const MEMBER_ROLES: readonly MemberRole[] = ["viewer", "member", "admin", "owner"];
export const API_KEY_SCOPES: readonly ApiKeyScope[] = ["read", "write", "admin"];

export interface Member {
  /** The user's id. */
  id: string;
  email: string;
  role: MemberRole;
  /** When the user joined the organization. */
  created_at: string;
}

export interface NewMember {
  email: string;
  role: MemberRole;
  /** Creates the account when no user has this email yet (8 characters at least). */
  password?: string;
}

export interface ApiKey {
  id: string;
  organization_id: string;
  name: string;
  /** The visible start of the key, to tell keys apart. */
  prefix: string;
  scope: ApiKeyScope;
  created_by: string | null;
  created_at: string;
  last_used_at: string | null;
  revoked_at: string | null;
}

/** The answer of creating a key: the only time `key` is ever seen. */
export interface NewApiKey extends ApiKey {
  key: string;
}

export interface AuditEntry {
  id: number;
  at: string;
  actor_type: "user" | "api_key" | "system";
  actor_id: string | null;
  actor_label: string;
  action: string;
  object_type: string;
  object_id: string | null;
  /** What changed; never a secret's value. */
  details: Record<string, unknown> | null;
}

function orgPath(organizationId: string, rest = ""): string {
  return `/v1/organizations/${encodeURIComponent(organizationId)}${rest}`;
}

// --- organizations -----------------------------------------------------------

/** A new organization (with group `default`); the signed-in user becomes its owner. */
export function createOrganization(client: ApiClient, name: string): Promise<Organization> {
  return client.post<Organization>("/v1/organizations", { name });
}

export function renameOrganization(client: ApiClient, id: string, name: string): Promise<Organization> {
  return client.patch<Organization>(orgPath(id), { name });
}

/** How many days the organization's messages (and logs) are kept: 1 to 3650. */
export function setMessageRetention(client: ApiClient, id: string, days: number): Promise<Organization> {
  return client.patch<Organization>(orgPath(id), { message_retention_days: days });
}

// --- groups --------------------------------------------------------------------

export function createGroup(client: ApiClient, organizationId: string, name: string): Promise<Group> {
  return client.post<Group>("/v1/groups", { organization_id: organizationId, name });
}

export function renameGroup(client: ApiClient, id: string, name: string): Promise<Group> {
  return client.patch<Group>(`/v1/groups/${encodeURIComponent(id)}`, { name });
}

/** Deletes an empty group; a group with devices answers 409. */
export function deleteGroup(client: ApiClient, id: string): Promise<void> {
  return client.delete(`/v1/groups/${encodeURIComponent(id)}`);
}

// --- members -------------------------------------------------------------------

export function listMembers(client: ApiClient, organizationId: string, paging: Paging = {}): Promise<Page<Member>> {
  return client.list<Member>(orgPath(organizationId, "/members"), { sort_field: "email", ...paging });
}

export function addMember(client: ApiClient, organizationId: string, member: NewMember): Promise<Member> {
  const body = member.password ? member : { email: member.email, role: member.role };
  return client.post<Member>(orgPath(organizationId, "/members"), body);
}

export function changeMemberRole(
  client: ApiClient,
  organizationId: string,
  userId: string,
  role: MemberRole,
): Promise<Member> {
  return client.patch<Member>(orgPath(organizationId, `/members/${encodeURIComponent(userId)}`), { role });
}

export function removeMember(client: ApiClient, organizationId: string, userId: string): Promise<void> {
  return client.delete(orgPath(organizationId, `/members/${encodeURIComponent(userId)}`));
}

// --- API keys ------------------------------------------------------------------

/** The organization's keys, newest first, never with their secret. */
export function listApiKeys(client: ApiClient, organizationId: string, paging: Paging = {}): Promise<Page<ApiKey>> {
  return client.list<ApiKey>(orgPath(organizationId, "/api-keys"), { sort_order: "desc", ...paging });
}

export function createApiKey(
  client: ApiClient,
  organizationId: string,
  key: { name: string; scope: ApiKeyScope },
): Promise<NewApiKey> {
  return client.post<NewApiKey>(orgPath(organizationId, "/api-keys"), key);
}

/** Revokes a key: it stops working at once. */
export function revokeApiKey(client: ApiClient, keyId: string): Promise<void> {
  return client.delete(`/v1/api-keys/${encodeURIComponent(keyId)}`);
}

// --- audit log -----------------------------------------------------------------

/** Who changed what, newest first; `action` is exact (`group.update`) or a family (`group`). */
export function listAudit(
  client: ApiClient,
  organizationId: string,
  paging: Paging & { action?: string } = {},
): Promise<Page<AuditEntry>> {
  return client.list<AuditEntry>(orgPath(organizationId, "/audit"), { sort_order: "desc", ...paging });
}
