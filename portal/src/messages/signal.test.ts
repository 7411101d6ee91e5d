import { describe, expect, it } from "vitest";
import { rsrpBars, rsrpDbm, signalQuality } from "./signal";

describe("signalQuality", () => {
  it("reads CHESTER's network.parameter", () => {
    expect(signalQuality({ network: { parameter: { rsrp: -95, ecl: 1 } } })).toEqual({
      rsrp: { dbm: -95, bars: 2 },
      ecl: { level: 1, bars: 2 },
    });
  });

  it("reads a stats message's top-level keys and a bare network object", () => {
    expect(signalQuality({ uptime: 5, rsrp: -79 })?.rsrp).toEqual({ dbm: -79, bars: 4 });
    expect(signalQuality({ network: { ecl: 2 } })).toEqual({ rsrp: null, ecl: { level: 2, bars: 1 } });
  });

  it("shows nothing when the body tells nothing", () => {
    expect(signalQuality(null)).toBeNull();
    expect(signalQuality([1, 2])).toBeNull();
    expect(signalQuality({ thermometer: { temperature: 20 } })).toBeNull();
    expect(signalQuality({ network: { parameter: { rsrp: 255, ecl: 7 } } })).toBeNull();
    expect(signalQuality({ rsrp: "bad" })).toBeNull();
  });
});

describe("RSRP", () => {
  it("reads a 3GPP report index as dBm", () => {
    expect(rsrpDbm(97)).toBe(-44);
    expect(rsrpDbm(0)).toBe(-141);
    expect(rsrpDbm(-100)).toBe(-100);
    expect(rsrpDbm(98)).toBeNull();
    expect(rsrpDbm(-200)).toBeNull();
  });

  it("maps dBm to bars at the documented thresholds", () => {
    expect([-80, -81, -90, -91, -100, -101, -110, -111].map(rsrpBars)).toEqual([4, 3, 3, 2, 2, 1, 1, 0]);
  });
});
