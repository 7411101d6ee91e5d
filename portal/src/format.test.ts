import { describe, expect, it } from "vitest";
import { ago, hsn } from "./format";

describe("format", () => {
  it("writes serial numbers as hsn:", () => {
    expect(hsn(2159018247)).toBe("hsn:2159018247");
  });

  it("writes how long ago", () => {
    const now = Date.parse("2026-11-27T12:00:00Z");
    expect(ago(null, now)).toBe("never");
    expect(ago("2026-11-27T11:59:48Z", now)).toBe("12 s ago");
    expect(ago("2026-11-27T11:57:00Z", now)).toBe("3 min ago");
    expect(ago("2026-11-27T07:00:00Z", now)).toBe("5 h ago");
    expect(ago("2026-11-22T12:00:00Z", now)).toBe("5 d ago");
    expect(ago("2024-11-27T12:00:00Z", now)).toBe("2 y ago");
    expect(ago("2026-11-27T12:00:05Z", now)).toBe("0 s ago");
  });
});
