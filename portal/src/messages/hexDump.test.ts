import { describe, expect, it } from "vitest";
import { base64Bytes, hexLines } from "./hexDump";

describe("hex dump", () => {
  it("decodes base64", () => {
    expect(Array.from(base64Bytes("AAEC/w=="))).toEqual([0, 1, 2, 255]);
    expect(() => base64Bytes("not base64!")).toThrow();
  });

  it("writes 16 bytes a line with offsets and printable ASCII", () => {
    const bytes = new Uint8Array(20).map((_, i) => 0x41 + i);
    bytes[1] = 0x00;
    const lines = hexLines(bytes);
    expect(lines).toHaveLength(2);
    expect(lines[0]?.offset).toBe("00000000");
    expect(lines[0]?.hex.startsWith("41 00 43")).toBe(true);
    expect(lines[0]?.ascii.startsWith("A.C")).toBe(true);
    expect(lines[1]).toEqual({ offset: "00000010", hex: "51 52 53 54", ascii: "QRST" });
  });

  it("has no lines for no bytes", () => {
    expect(hexLines(new Uint8Array())).toEqual([]);
  });
});
