import { describe, expect, it } from "vitest";
import { fakeApi, json } from "@/testing/fakeApi";
import {
  createCallback,
  deleteCallback,
  getCallback,
  getDelivery,
  listCallbackMessageChoices,
  listCallbacks,
  listDeliveries,
  previewCallbackPayload,
  replayDeliveries,
  sendCallbackTest,
  updateCallback,
} from "./callbacks";

describe("callbacks API calls", () => {
  it("use the API's paths, queries and bodies", async () => {
    const ok = json({ replayed: 2 });
    const api = fakeApi({
      "GET /v1/groups/g%2F1/callbacks": json([], 200, { "x-total": "0" }),
      "GET /v1/callbacks/c1": ok,
      "POST /v1/groups/g1/callbacks": ok,
      "PATCH /v1/callbacks/c1": ok,
      "DELETE /v1/callbacks/c1": { status: 204 },
      "POST /v1/groups/g1/callbacks/preview": ok,
      "POST /v1/callbacks/c1/test": ok,
      "GET /v1/callbacks/c1/deliveries": json([]),
      "GET /v1/deliveries/d1": ok,
      "POST /v1/callbacks/c1/replay": ok,
      "GET /v1/messages": json([]),
    });
    await listCallbacks(api.client, "g/1", { offset: 50, limit: 50 });
    await getCallback(api.client, "c1");
    await createCallback(api.client, "g1", { name: "n", url: "https://x" });
    await updateCallback(api.client, "c1", { enabled: false });
    await deleteCallback(api.client, "c1");
    await previewCallbackPayload(api.client, "g1", "data", null);
    await sendCallbackTest(api.client, "c1", "m1");
    await listDeliveries(api.client, "c1", "failed", { offset: 0, limit: 20 });
    await getDelivery(api.client, "d1");
    expect(await replayDeliveries(api.client, "c1", null)).toBe(2);
    await listCallbackMessageChoices(api.client, "g1");
    expect(api.calls.map((call) => ({ route: `${call.method} ${call.url}`, body: call.body }))).toEqual([
      { route: "GET /v1/groups/g%2F1/callbacks?sort_field=name&offset=50&limit=50", body: undefined },
      { route: "GET /v1/callbacks/c1", body: undefined },
      { route: "POST /v1/groups/g1/callbacks", body: { name: "n", url: "https://x" } },
      { route: "PATCH /v1/callbacks/c1", body: { enabled: false } },
      { route: "DELETE /v1/callbacks/c1", body: undefined },
      { route: "POST /v1/groups/g1/callbacks/preview", body: { payload: "data", message_id: null } },
      { route: "POST /v1/callbacks/c1/test", body: { message_id: "m1" } },
      {
        route: "GET /v1/callbacks/c1/deliveries?state=failed&sort_field=created_at&sort_order=desc&offset=0&limit=20",
        body: undefined,
      },
      { route: "GET /v1/deliveries/d1", body: undefined },
      { route: "POST /v1/callbacks/c1/replay", body: { delivery_id: null } },
      { route: "GET /v1/messages?group_id=g1&sort_order=desc&limit=20", body: undefined },
    ]);
  });

  it("leave out the state filter when there is none", async () => {
    const api = fakeApi({ "GET /v1/callbacks/c1/deliveries": json([]) });
    await listDeliveries(api.client, "c1", null);
    expect(api.calls[0]?.url).toBe("/v1/callbacks/c1/deliveries?sort_field=created_at&sort_order=desc");
  });
});
