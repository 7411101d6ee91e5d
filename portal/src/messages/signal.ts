/**
 * Signal quality of a CHESTER message, when its decoded body tells it.
 *
 * Where it is: the CHESTER application codecs put the LTE parameters under
 * `network.parameter` (`ecl`, `rsrp`, `rsrq`, `snr`, …); `stats` messages
 * carry them at the top level (`rsrp`, `ecl`); some codecs may put them
 * straight under `network`. We look in those three places, in that order.
 *
 * RSRP arrives in dBm (negative, e.g. -95). A value from 0 to 97 is read as
 * the 3GPP report index (TS 36.133: index n means n − 141 dBm, so 97 is
 * −44 dBm); 255 and anything else is "unknown" and shows nothing.
 *
 * Bars from RSRP, the thresholds operators and modems commonly use:
 *
 *     ≥ −80 dBm  4 bars  excellent
 *     ≥ −90 dBm  3 bars  good
 *     ≥ −100 dBm 2 bars  fair
 *     ≥ −110 dBm 1 bar   poor
 *     below      0 bars  at the edge of coverage
 *
 * ECL (coverage enhancement level, NB-IoT/LTE-M) is 0 (normal coverage),
 * 1 (robust) or 2 (extreme); shown as 3, 2 or 1 bars of 3. Other values show
 * nothing.
 */

export interface SignalQuality {
  /** RSRP in dBm and its bars (0–4), or null when the body has none. */
  rsrp: { dbm: number; bars: number } | null;
  /** ECL 0–2 and its bars (3–1 of 3), or null. */
  ecl: { level: number; bars: number } | null;
}

export const RSRP_BAR_THRESHOLDS_DBM = [-110, -100, -90, -80] as const;
export const RSRP_MAX_BARS = 4;
export const ECL_MAX_BARS = 3;

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function numberAt(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

/** The object holding `rsrp`/`ecl` in a decoded body, if any. */
function signalHolder(data: unknown): Json | null {
  if (!isObject(data)) return null;
  const network = data.network;
  const candidates = [isObject(network) ? network.parameter : null, network, data];
  for (const candidate of candidates) {
    if (isObject(candidate) && ("rsrp" in candidate || "ecl" in candidate)) return candidate;
  }
  return null;
}

/** RSRP in dBm from what the device reported; null when unknown. */
export function rsrpDbm(reported: number): number | null {
  if (reported < 0 && reported >= -160) return reported;
  if (Number.isInteger(reported) && reported >= 0 && reported <= 97) return reported - 141;
  return null;
}

export function rsrpBars(dbm: number): number {
  return RSRP_BAR_THRESHOLDS_DBM.filter((threshold) => dbm >= threshold).length;
}

function eclOf(reported: number | null): SignalQuality["ecl"] {
  if (reported === null || !Number.isInteger(reported) || reported < 0 || reported > 2) return null;
  return { level: reported, bars: ECL_MAX_BARS - reported };
}

function rsrpOf(reported: number | null): SignalQuality["rsrp"] {
  const dbm = reported === null ? null : rsrpDbm(reported);
  return dbm === null ? null : { dbm, bars: rsrpBars(dbm) };
}

/** The signal quality a decoded body tells; null when it tells none. */
export function signalQuality(data: unknown): SignalQuality | null {
  const holder = signalHolder(data);
  if (holder === null) return null;
  const quality = { rsrp: rsrpOf(numberAt(holder.rsrp)), ecl: eclOf(numberAt(holder.ecl)) };
  return quality.rsrp === null && quality.ecl === null ? null : quality;
}
