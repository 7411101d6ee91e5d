/**
 * The attributes a session start told (vendor, product, firmware, …; the
 * API names them as FLAP's SESSION_KEYS do) as labelled pairs, known ones
 * first in a fixed order with readable names, others after, as sent.
 */

import type { Attribute } from "./attribute";

const KNOWN: [string, string, boolean][] = [
  ["vendor", "Vendor", false],
  ["product", "Product", false],
  ["hw_variant", "Hardware variant", false],
  ["hw_revision", "Hardware revision", false],
  ["fw_bundle", "Firmware bundle", true],
  ["fw_name", "Firmware name", false],
  ["fw_version", "Firmware version", false],
  ["modem_fw", "Modem firmware", true],
  ["imei", "IMEI", true],
  ["imsi", "IMSI", true],
  ["iccid", "ICCID", true],
  ["serial", "Serial number", true],
  ["ble_passkey", "Bluetooth passkey", true],
  ["watchdog_timeout", "Watchdog timeout", false],
];

function text(value: unknown): string {
  return typeof value === "string" || typeof value === "number" ? String(value) : JSON.stringify(value);
}

export function sessionAttributes(attributes: unknown): Attribute[] {
  if (typeof attributes !== "object" || attributes === null || Array.isArray(attributes)) return [];
  const record = attributes as Record<string, unknown>;
  const items: Attribute[] = [];
  for (const [key, label, mono] of KNOWN) {
    if (key in record) items.push({ label, value: text(record[key]), mono });
  }
  const known = new Set(KNOWN.map(([key]) => key));
  for (const [key, value] of Object.entries(record)) {
    if (!known.has(key)) items.push({ label: key, value: text(value), mono: true });
  }
  return items;
}
