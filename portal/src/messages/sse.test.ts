import { describe, expect, it } from "vitest";
import { SseParser } from "./sse";

describe("SseParser", () => {
  it("parses events split across chunks, with ids and names", () => {
    const parser = new SseParser();
    expect(parser.feed("retry: 2000\n\nid: m1\nevent: mess")).toEqual([]);
    expect(parser.feed('age\ndata: {"a":1}\n\n')).toEqual([{ event: "message", data: '{"a":1}', id: "m1" }]);
    expect(parser.lastEventId).toBe("m1");
  });

  it("skips comments (heartbeats) and joins data lines", () => {
    const parser = new SseParser();
    expect(parser.feed(": ping\n\ndata: a\ndata: b\n\n")).toEqual([{ event: "message", data: "a\nb", id: null }]);
  });

  it("reads CRLF line ends, also split between chunks", () => {
    const parser = new SseParser();
    expect(parser.feed('event: resync\r\ndata: {"reason":"overflow"}\r')).toEqual([]);
    expect(parser.feed("\n\r\n")).toEqual([{ event: "resync", data: '{"reason":"overflow"}', id: null }]);
  });

  it("keeps the last id for events without one", () => {
    const parser = new SseParser();
    parser.feed("id: m1\ndata: x\n\n");
    expect(parser.feed("data: y\n\n")[0]?.id).toBe("m1");
  });
});
