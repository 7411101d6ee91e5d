import { describe, expect, it } from "vitest";
import {
  deleteFilteredMessages,
  deleteMessage,
  exportMessages,
  listMessageDeliveries,
  listScopedMessages,
  messageQuery,
  openMessageStream,
} from ".";
import { apiError, fakeApi, json } from "@/testing/fakeApi";

function params(url: string): URLSearchParams {
  return new URL(url, "http://portal").searchParams;
}

describe("messageQuery", () => {
  it("puts scope and filter into the API's parameters", () => {
    expect(messageQuery({ groupId: "g1" }, { types: ["data", "stats"], direction: "up", since: "S" })).toEqual({
      group_id: "g1",
      since: "S",
      before: undefined,
      type: ["data", "stats"],
      direction: "up",
    });
  });
});

describe("message calls", () => {
  it("list a device's filtered page newest first, with paging headers", async () => {
    const api = fakeApi({ "GET /v1/messages": json([], 200, { "x-total": "7" }) });
    const page = await listScopedMessages(api.client, { deviceId: "d1" }, { types: ["data"] }, { offset: 50, limit: 50 });
    const query = params(api.urls()[0] ?? "");
    expect(query.get("device_id")).toBe("d1");
    expect(query.getAll("type")).toEqual(["data"]);
    expect(query.get("sort_order")).toBe("desc");
    expect(query.get("offset")).toBe("50");
    expect(page.total).toBe(7);
  });

  it("delete one and a filtered set, answering the count", async () => {
    const api = fakeApi({
      "DELETE /v1/messages/m1": { status: 204 },
      "DELETE /v1/messages": json({ deleted: 12 }),
    });
    await deleteMessage(api.client, "m1");
    const count = await deleteFilteredMessages(api.client, { groupId: "g1" }, { direction: "down" });
    expect(count).toBe(12);
    expect(api.calls.map((call) => call.method)).toEqual(["DELETE", "DELETE"]);
    expect(params(api.urls()[1] ?? "").get("direction")).toBe("down");
    expect(params(api.urls()[1] ?? "").get("group_id")).toBe("g1");
  });

  it("export the filtered set as a Blob, with the token in a header", async () => {
    const api = fakeApi({ "GET /v1/messages/export": new Response('{"id":"a"}\n{"id":"b"}\n') });
    const blob = await exportMessages(api.client, { deviceId: "d1" }, { since: "S" }, "ndjson");
    expect((await blob.text()).split("\n").filter(Boolean)).toHaveLength(2);
    expect(params(api.urls()[0] ?? "").get("format")).toBe("ndjson");
    expect(api.calls[0]?.headers.authorization).toBe("Bearer t0k3n");
  });

  it("turn a refused export into an ApiError", async () => {
    const api = fakeApi({ "GET /v1/messages/export": apiError(403, "forbidden", "no") });
    await expect(exportMessages(api.client, { deviceId: "d1" }, {}, "csv")).rejects.toMatchObject({ status: 403 });
  });

  it("list a message's deliveries", async () => {
    const api = fakeApi({ "GET /v1/messages/m1/deliveries": json([{ id: "x" }], 200, { "x-total": "1" }) });
    const page = await listMessageDeliveries(api.client, "m1", { limit: 20 });
    expect(page.items).toHaveLength(1);
    expect(api.urls()[0]).toBe("/v1/messages/m1/deliveries?limit=20");
  });

  it("open the stream with the token in the header, never in the URL", async () => {
    const api = fakeApi({ "GET /v1/messages/stream": new Response("") });
    await openMessageStream(api.client, { groupId: "g1" }, "m9", new AbortController().signal);
    const url = api.urls()[0] ?? "";
    expect(url).toBe("/v1/messages/stream?group_id=g1&last_event_id=m9");
    expect(url).not.toContain("t0k3n");
    expect(api.calls[0]?.headers.authorization).toBe("Bearer t0k3n");
  });

  it("send an expired stream through the unauthorized path", async () => {
    const api = fakeApi({ "GET /v1/messages/stream": apiError(401, "unauthorized", "expired") });
    await expect(openMessageStream(api.client, { deviceId: "d1" }, null, new AbortController().signal)).rejects.toMatchObject({
      status: 401,
    });
    expect(api.onUnauthorized).toHaveBeenCalledOnce();
  });
});
