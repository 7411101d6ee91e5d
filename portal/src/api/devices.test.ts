import { describe, expect, it } from "vitest";
import { fakeApi, json } from "@/testing/fakeApi";
import {
  codecByHash,
  createDevice,
  listGroupDevices,
  listSessionLog,
  listSessions,
  messageCounts,
  revealDeviceSecrets,
  searchDevices,
  searchText,
  updateDevice,
} from "./devices";

describe("device calls", () => {
  it("search serial numbers with or without hsn:", () => {
    expect(searchText("  hsn:2159000001 ")).toBe("2159000001");
    expect(searchText("HSN: 42")).toBe("42");
    expect(searchText("greenhouse")).toBe("greenhouse");
    expect(searchText(null)).toBe("");
  });

  it("list a group's devices by name with the filter", async () => {
    const { client, calls } = fakeApi({ "GET /v1/devices": json([], 200, { "x-total": "0" }) });
    await listGroupDevices(client, "g1", { q: "hsn:215", enabled: false }, { offset: 50, limit: 50 });
    expect(calls[0]?.url).toBe("/v1/devices?group_id=g1&q=215&enabled=false&sort_field=name&offset=50&limit=50");
  });

  it("leave empty filters out", async () => {
    const { client, calls } = fakeApi({ "GET /v1/devices": json([]) });
    await listGroupDevices(client, "g1", { q: " ", enabled: null });
    expect(calls[0]?.url).toBe("/v1/devices?group_id=g1&sort_field=name");
  });

  it("search across organizations, and not at all for blank text", async () => {
    const { client, calls } = fakeApi({ "GET /v1/devices": json([{ id: "d1" }]) });
    expect(await searchDevices(client, "  ")).toEqual([]);
    expect(calls).toHaveLength(0);
    expect(await searchDevices(client, "hsn:2159", 5)).toEqual([{ id: "d1" }]);
    expect(calls[0]?.url).toBe("/v1/devices?q=2159&sort_field=last_seen_at&sort_order=desc&limit=5");
  });

  it("add, change and reveal with the right methods", async () => {
    const answer = json({ claim_token: "ab", psk: null });
    const { client, calls } = fakeApi({
      "POST /v1/devices": answer,
      "PATCH /v1/devices/d%2F1": answer,
      "POST /v1/devices/d1/reveal": answer,
    });
    await createDevice(client, { group_id: "g1", serial: 7, claim_token: "00".repeat(16) });
    await updateDevice(client, "d/1", { enabled: false });
    await revealDeviceSecrets(client, "d1");
    expect(calls.map((c) => `${c.method} ${c.url}`)).toEqual([
      "POST /v1/devices",
      "PATCH /v1/devices/d%2F1",
      "POST /v1/devices/d1/reveal",
    ]);
    expect(calls[0]?.body).toEqual({ group_id: "g1", serial: 7, claim_token: "00".repeat(16) });
    expect(calls[1]?.body).toEqual({ enabled: false });
  });

  it("ask message counts since a day, or the API's default year", async () => {
    const { client, calls } = fakeApi({ "GET /v1/devices/d1/message-counts": json([{ date: "2026-11-27", count: 3 }]) });
    expect(await messageCounts(client, "d1", new Date("2026-09-01T00:00:00Z"))).toEqual([
      { date: "2026-11-27", count: 3 },
    ]);
    await messageCounts(client, "d1");
    expect(calls[0]?.url).toBe("/v1/devices/d1/message-counts?since=2026-09-01T00%3A00%3A00.000Z");
    expect(calls[1]?.url).toBe("/v1/devices/d1/message-counts");
  });

  it("page sessions newest first and the log in time order with its filters", async () => {
    const answer = json([], 200, { "x-total": "12" });
    const { client, calls } = fakeApi({ "GET /v1/devices/d1/sessions": answer, "GET /v1/sessions/9/log": answer });
    const page = await listSessions(client, "d1", { limit: 50 });
    await listSessionLog(client, 9, { direction: "out", outcome: "bad_mac" }, { offset: 100, limit: 100 });
    await listSessionLog(client, 9, { direction: null });
    expect(page.total).toBe(12);
    expect(calls[0]?.url).toBe("/v1/devices/d1/sessions?sort_order=desc&limit=50");
    expect(calls[1]?.url).toBe("/v1/sessions/9/log?direction=out&outcome=bad_mac&sort_order=asc&offset=100&limit=100");
    expect(calls[2]?.url).toBe("/v1/sessions/9/log?sort_order=asc");
  });

  it("look a codec up by hash in the device's organization", async () => {
    const { client, calls } = fakeApi({ "GET /v1/codecs/by-hash/0123456789abcdef": json({ id: "c1", name: "demo" }) });
    expect((await codecByHash(client, "0123456789abcdef", "o1")).name).toBe("demo");
    expect(calls[0]?.url).toBe("/v1/codecs/by-hash/0123456789abcdef?organization_id=o1");
  });
});
