import { describe, expect, it } from "vitest";
import { flatten, renderBody } from "./body";

const post = { method: "POST" as const, contentType: "application/json" as const, payload: "x", headers: [] };

describe("renderBody", () => {
  it("shows JSON pretty with the callback's content type", () => {
    expect(renderBody({ t: 21.5 }, post)).toEqual({
      contentType: "application/json",
      text: '{\n  "t": 21.5\n}',
      kind: "json",
    });
  });

  it("puts GET's object into the query string, with no content type", () => {
    const body = renderBody({ a: { b: 1 }, s: "x y" }, { ...post, method: "GET" });
    expect(body).toEqual({ contentType: null, text: "a%5Bb%5D=1&s=x%20y", kind: "query" });
  });

  it("sends a value that is not an object as payload=<JSON>", () => {
    const form = { ...post, contentType: "application/x-www-form-urlencoded" as const };
    expect(renderBody([1, 2], form).text).toBe("payload=%5B1%2C2%5D");
    expect(renderBody({ s: "a b" }, form).text).toBe("s=a+b");
  });

  it("sends strings as they are in octet-stream, and the raw bytes without a payload", () => {
    const octet = { ...post, contentType: "application/octet-stream" as const };
    expect(renderBody("line 1", octet)).toMatchObject({ text: "line 1", kind: "text" });
    expect(renderBody({ a: 1 }, { ...octet, payload: " " }).kind).toBe("raw");
  });

  it("lets a Content-Type header win", () => {
    const headers = [{ name: "content-type", value: "application/vnd.x+json" }];
    expect(renderBody({}, { ...post, headers }).contentType).toBe("application/vnd.x+json");
  });
});

describe("flatten", () => {
  it("names nested keys and list items like the dispatcher", () => {
    expect(flatten({ a: { b: 1 }, l: [2, null], s: "t" })).toEqual([
      ["a[b]", "1"],
      ["l[0]", "2"],
      ["l[1]", ""],
      ["s", "t"],
    ]);
  });
});
