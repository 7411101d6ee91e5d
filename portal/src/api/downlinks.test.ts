import { describe, expect, it } from "vitest";
import { fakeApi, page } from "@/testing/fakeApi";
import { cancelDownlink, isActive, listDownlinks, queueDownlink, shellResults, type Downlink } from "./downlinks";

describe("downlink calls", () => {
  it("queue each kind with its body", async () => {
    const api = fakeApi({ "POST /v1/devices/d1/downlinks": { status: 201, body: {} } });
    await queueDownlink(api.client, "d1", { kind: "shell", commands: ["app config show"] });
    await queueDownlink(api.client, "d1", { kind: "data", data: { led_r: 1 } });
    expect(api.calls.map((c) => c.body)).toEqual([
      { kind: "shell", commands: ["app config show"] },
      { kind: "data", data: { led_r: 1 } },
    ]);
  });

  it("list newest first, by state, and cancel by id", async () => {
    const api = fakeApi({
      "GET /v1/devices/d1/downlinks": page([], 3),
      "POST /v1/downlinks/x1/cancel": { body: { state: "cancelled" } },
    });
    const listed = await listDownlinks(api.client, "d1", { state: "pending", limit: 10 });
    const cancelled = await cancelDownlink(api.client, "x1");
    expect(listed.total).toBe(3);
    expect(api.calls[0]?.query.toString()).toBe("sort_order=desc&state=pending&limit=10");
    expect(cancelled.state).toBe("cancelled");
  });
});

describe("downlink helpers", () => {
  it("call pending and sent active, the rest final", () => {
    const of = (state: Downlink["state"]) => ({ state }) as Downlink;
    expect(["pending", "sent", "delivered", "cancelled", "expired"].map((s) => isActive(of(s as Downlink["state"])))).toEqual([
      true,
      true,
      false,
      false,
      false,
    ]);
  });

  it("read a shell answer's results and refuse other shapes", () => {
    const reply = { id: "ab", results: [{ command: "app config show", output: ["a", "b"] }, { command: "x", rc: -8, output: ["x: not found"] }] };
    expect(shellResults(reply)).toEqual([
      { command: "app config show", rc: 0, output: ["a", "b"] },
      { command: "x", rc: -8, output: ["x: not found"] },
    ]);
    expect(shellResults(null)).toBeNull();
    expect(shellResults({ temperature: 21 })).toBeNull();
  });
});
