/**
 * The filter of a messages page lives in the URL query (`since`, `before`,
 * `type`, `direction`), so a reload or a shared link shows the same set.
 * Times are ISO 8601 UTC in the URL and in the API; the form shows them as
 * `datetime-local` in the reader's zone. Unknown values are dropped rather
 * than sent to the API to fail.
 */

import type { LocationQuery, LocationQueryRaw } from "vue-router";
import { MESSAGE_TYPES, type MessageDirection, type MessageFilter, type MessageType } from "@/api";

type QueryValue = LocationQuery[string] | undefined;

function first(value: QueryValue): string | undefined {
  const item = Array.isArray(value) ? value[0] : value;
  return typeof item === "string" && item !== "" ? item : undefined;
}

function all(value: QueryValue): string[] {
  const items = Array.isArray(value) ? value : [value];
  return items.filter((item): item is string => typeof item === "string");
}

function isoOrNothing(text: string | undefined): string | undefined {
  return text !== undefined && !Number.isNaN(Date.parse(text)) ? new Date(text).toISOString() : undefined;
}

function isType(text: string): text is MessageType {
  return (MESSAGE_TYPES as readonly string[]).includes(text);
}

export function filterFromQuery(query: LocationQuery): MessageFilter {
  const filter: MessageFilter = {};
  const since = isoOrNothing(first(query.since));
  const before = isoOrNothing(first(query.before));
  const types = all(query.type).filter(isType);
  const direction = first(query.direction);
  if (since) filter.since = since;
  if (before) filter.before = before;
  if (types.length > 0) filter.types = types;
  if (direction === "up" || direction === "down") filter.direction = direction as MessageDirection;
  return filter;
}

export function queryFromFilter(filter: MessageFilter): LocationQueryRaw {
  const query: LocationQueryRaw = {};
  if (filter.since) query.since = filter.since;
  if (filter.before) query.before = filter.before;
  if (filter.types && filter.types.length > 0) query.type = [...filter.types];
  if (filter.direction) query.direction = filter.direction;
  return query;
}

export function isFiltered(filter: MessageFilter): boolean {
  return Boolean(filter.since || filter.before || filter.direction || filter.types?.length);
}

/** ISO UTC → the `datetime-local` value in the reader's zone ("" for none). */
export function localInputValue(iso: string | undefined): string {
  if (!iso) return "";
  const date = new Date(iso);
  const pad = (n: number, width = 2): string => String(n).padStart(width, "0");
  const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
  const time = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  return `${day}T${time}`;
}

/** A `datetime-local` value (the reader's zone) → ISO UTC; undefined for "". */
export function isoFromLocalInput(value: string): string | undefined {
  if (!value) return undefined;
  const date = new Date(value); // no offset: read as local time
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

/** Whether a message (from the live stream) belongs to the filtered set. */
export function matchesFilter(
  message: { created_at: string; type: string; direction: string },
  filter: MessageFilter,
): boolean {
  const at = Date.parse(message.created_at);
  if (filter.since && at < Date.parse(filter.since)) return false;
  if (filter.before && at >= Date.parse(filter.before)) return false;
  if (filter.types?.length && !filter.types.includes(message.type as MessageType)) return false;
  return !filter.direction || filter.direction === message.direction;
}

/** Words for what the filter selects, for confirmations and file names. */
export function describeFilter(filter: MessageFilter): string {
  const parts: string[] = [];
  if (filter.types?.length) parts.push(`of type ${filter.types.join(" or ")}`);
  if (filter.direction) parts.push(filter.direction === "up" ? "uplinks only" : "downlinks only");
  if (filter.since) parts.push(`from ${new Date(filter.since).toLocaleString()}`);
  if (filter.before) parts.push(`before ${new Date(filter.before).toLocaleString()}`);
  return parts.join(", ");
}
