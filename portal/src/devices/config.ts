/**
 * The config lines a device reported, as text lines. The API passes them on
 * as the device sent them (`config_lines`: usually a list of strings); any
 * other shape is shown as JSON rather than hidden.
 */

export function configLines(value: unknown): string[] {
  if (value === null || value === undefined) return [];
  if (Array.isArray(value)) return value.map((line) => (typeof line === "string" ? line : JSON.stringify(line)));
  if (typeof value === "string") return value.split("\n").filter((line) => line !== "");
  return [JSON.stringify(value, null, 2)];
}
