/** How values read in tables: serial numbers, times. */

export function hsn(serial: number): string {
  return `hsn:${serial}`;
}

const UNITS: [number, string][] = [
  [60, "s"],
  [60, "min"],
  [24, "h"],
  [365, "d"],
];

/** "12 s ago", "3 min ago", "5 d ago"; "never" for null. */
export function ago(iso: string | null, now: number): string {
  if (iso === null) return "never";
  let value = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  for (const [size, unit] of UNITS) {
    if (value < size) return `${value} ${unit} ago`;
    value = Math.floor(value / size);
  }
  return `${value} y ago`;
}

/** The exact time, in the reader's zone, for a title attribute. */
export function exact(iso: string | null): string {
  return iso === null ? "" : new Date(iso).toLocaleString();
}
