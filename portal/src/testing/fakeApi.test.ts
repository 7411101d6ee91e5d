import { describe, expect, it } from "vitest";
import { apiError, fakeApi, json, page, TOKEN } from "./fakeApi";

describe("fakeApi", () => {
  it("routes by method and path, and records the query, body, headers and URL", async () => {
    const api = fakeApi({ "GET /v1/devices": page([{ id: "d1" }], 9), "POST /v1/devices": json({ id: "d2" }, 201) });
    const listed = await api.client.list("/v1/devices", { q: "a b", limit: 5 });
    const created = await api.client.post("/v1/devices", { serial: 7 });
    expect(listed).toMatchObject({ items: [{ id: "d1" }], total: 9 });
    expect(created).toEqual({ id: "d2" });
    expect(api.calls[0]).toMatchObject({ method: "GET", path: "/v1/devices", url: "/v1/devices?q=a+b&limit=5", body: undefined });
    expect(api.calls[0]?.query.get("q")).toBe("a b");
    expect(api.calls[1]).toMatchObject({ method: "POST", body: { serial: 7 } });
    expect(api.calls[1]?.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(api.callsTo("POST /v1/devices")).toHaveLength(1);
    expect(api.urls()).toEqual(["/v1/devices?q=a+b&limit=5", "/v1/devices"]);
  });

  it("answers with a function of the call, a replaced route, or a ready Response each time", async () => {
    const api = fakeApi({
      "PATCH /v1/groups/g1": ({ body }) => json({ ...(body as object), id: "g1" }),
      "GET /v1/export": new Response("a,b\n"),
    });
    expect(await api.client.patch("/v1/groups/g1", { name: "yard" })).toEqual({ name: "yard", id: "g1" });
    for (let i = 0; i < 2; i += 1) {
      expect(await (await api.client.send("GET", "/v1/export", {})).text()).toBe("a,b\n");
    }
    api.on("PATCH /v1/groups/g1", apiError(409, "conflict", "taken"));
    await expect(api.client.patch("/v1/groups/g1", {})).rejects.toMatchObject({ status: 409, code: "conflict", message: "taken" });
  });

  it("tells onUnauthorized of a 401", async () => {
    const api = fakeApi({ "GET /v1/auth/me": apiError(401, "unauthorized", "expired") });
    await expect(api.client.get("/v1/auth/me")).rejects.toMatchObject({ status: 401 });
    expect(api.onUnauthorized).toHaveBeenCalledOnce();
  });

  it("refuses a route with a query", () => {
    expect(() => fakeApi({ "GET /v1/devices?q=1": json([]) })).toThrow(/without a query/);
  });

  // The request fails, and so does the test that made it, once it finishes.
  it.fails("fails a test that makes a request nobody answered", async () => {
    const api = fakeApi({});
    await expect(api.client.get("/v1/groups")).rejects.toMatchObject({
      code: "network_error",
      details: "the fake API has no answer for GET /v1/groups",
    });
  });
});
