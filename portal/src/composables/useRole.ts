/**
 * Who is signed in and their role in an organization, asked once per page
 * load and shared: pages hide what the role may not do (the API still
 * refuses it with 403; hiding is only courtesy).
 */

import { computed, shallowRef, type ComputedRef } from "vue";
import { getMe, type ApiClient, type Me } from "@/api";

export type Role = "owner" | "admin" | "member" | "viewer";

const RANK: Record<Role, number> = { viewer: 0, member: 1, admin: 2, owner: 3 };

const me = shallowRef<Me | null>(null);
let pending: Promise<Me> | null = null;

/** Asks `/v1/auth/me` once; later calls share the answer. */
export function loadMe(client: ApiClient): Promise<Me> {
  pending ??= getMe(client).then(
    (answer) => (me.value = answer),
    (error: unknown) => {
      pending = null;
      throw error;
    },
  );
  return pending;
}

/** Forgets the cached answer (on sign-out and in tests). */
export function forgetMe(): void {
  me.value = null;
  pending = null;
}

function roleIn(who: Me | null, orgId: string): Role | null {
  const membership = who?.organizations.find((m) => m.organization_id === orgId);
  return membership && membership.role in RANK ? (membership.role as Role) : null;
}

/** True when `role` is at least `needed`. */
export function atLeast(role: Role | null, needed: Role): boolean {
  return role !== null && RANK[role] >= RANK[needed];
}

export interface RoleView {
  role: ComputedRef<Role | null>;
  canWrite: ComputedRef<boolean>;
  isAdmin: ComputedRef<boolean>;
}

/** The signed-in role in `orgId` (null until known), and what it allows. */
export function useRole(client: ApiClient, orgId: () => string): RoleView {
  void loadMe(client).catch(() => undefined); // the client handles an expired session
  const role = computed(() => roleIn(me.value, orgId()));
  return {
    role,
    canWrite: computed(() => atLeast(role.value, "member")),
    isAdmin: computed(() => atLeast(role.value, "admin")),
  };
}
