/**
 * How an audit entry reads in the log: who (a user's email, a key's label,
 * the system) and what changed, one "name: value" per detail, so nobody
 * has to read JSON to follow the log.
 */

import type { AuditEntry } from "@/api/organizations";

const ACTOR_KIND: Record<AuditEntry["actor_type"], string> = {
  user: "user",
  api_key: "API key",
  system: "system",
};

export function actorText(entry: AuditEntry): string {
  if (entry.actor_type === "system") return "system";
  return `${entry.actor_label} (${ACTOR_KIND[entry.actor_type]})`;
}

function valueText(value: unknown): string {
  if (value === null || value === undefined) return "—";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}

/** The details as [name, value] pairs, names with spaces for underscores. */
export function detailPairs(details: AuditEntry["details"]): [string, string][] {
  if (details === null) return [];
  return Object.entries(details).map(([name, value]) => [name.replaceAll("_", " "), valueText(value)]);
}

/** "group 5f0c…" : what the entry is about, with a short id. */
export function objectText(entry: AuditEntry): string {
  const type = entry.object_type.replaceAll("_", " ");
  return entry.object_id ? `${type} ${entry.object_id.slice(0, 8)}` : type;
}
