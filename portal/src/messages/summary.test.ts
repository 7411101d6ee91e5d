import { describe, expect, it } from "vitest";
import { messageSummary, SUMMARY_LENGTH } from "./summary";
import { storedMessage } from "@/testing/samples";

describe("messageSummary", () => {
  it("flattens the body to dotted keys", () => {
    const text = messageSummary(storedMessage({ data: { a: { b: 1 }, c: "x", d: [1, 2, 3], e: null } }));
    expect(text).toBe('a.b: 1, c: "x", d: [3], e: null');
  });

  it("clips long bodies", () => {
    const data = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`key${i}`, i]));
    const text = messageSummary(storedMessage({ data }));
    expect(text.length).toBe(SUMMARY_LENGTH);
    expect(text.endsWith("…")).toBe(true);
  });

  it("says why there is no body", () => {
    expect(messageSummary(storedMessage({ data: null, decode_state: "failed", decode_error: "bad CBOR" }))).toBe(
      "not decoded: bad CBOR",
    );
    expect(messageSummary(storedMessage({ data: null, decode_state: "undecoded" }))).toBe("not decoded (no codec)");
  });
});
