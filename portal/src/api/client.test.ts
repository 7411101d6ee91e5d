import { describe, expect, it, vi } from "vitest";
import { ApiClient, ApiError, listDevices, memoryTokenStore, queryString, signIn, signOut } from ".";

type Call = [string, RequestInit];

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

function setup(answer: Response | (() => Promise<Response>), token: string | null = "t0k3n") {
  const fetch = vi.fn(typeof answer === "function" ? answer : async () => answer);
  const tokens = memoryTokenStore(token);
  const onUnauthorized = vi.fn();
  const client = new ApiClient({ tokens, fetch, onUnauthorized });
  const call = (n = 0): Call => fetch.mock.calls[n] as unknown as Call;
  return { client, fetch, tokens, onUnauthorized, call };
}

describe("requests", () => {
  it("go to the same origin with the bearer token", async () => {
    const { client, call } = setup(json({ id: "o1" }));
    await client.get("/v1/organizations/o1");
    const [url, init] = call();
    expect(url).toBe("/v1/organizations/o1");
    expect(init.method).toBe("GET");
    expect((init.headers as Record<string, string>).authorization).toBe("Bearer t0k3n");
  });

  it("send no authorization without a token", async () => {
    const { client, call } = setup(json([]), null);
    await client.get("/v1/organizations");
    expect(call()[1].headers).not.toHaveProperty("authorization");
  });

  it("send JSON bodies", async () => {
    const { client, call } = setup(json({ ok: true }));
    await client.post("/v1/groups", { name: "field" });
    const [, init] = call();
    expect(init.body).toBe('{"name":"field"}');
    expect((init.headers as Record<string, string>)["content-type"]).toBe("application/json");
  });

  it("build query strings, leaving out empty values and repeating lists", () => {
    expect(queryString({ a: 1, b: undefined, c: null, d: "", e: ["x", "y"], f: false })).toBe(
      "?a=1&e=x&e=y&f=false",
    );
    expect(queryString({})).toBe("");
  });

  it("prefix a base URL", async () => {
    const fetch = vi.fn(async () => json([]));
    const client = new ApiClient({ tokens: memoryTokenStore(), fetch, baseUrl: "http://h:1/" });
    await client.get("/v1/organizations", { limit: 5 });
    expect((fetch.mock.calls[0] as unknown as Call)[0]).toBe("http://h:1/v1/organizations?limit=5");
  });

  it("accept empty answers", async () => {
    const { client } = setup(new Response(null, { status: 204 }));
    await expect(client.post("/v1/auth/logout")).resolves.toBeUndefined();
  });
});

describe("lists", () => {
  it("read x-total and the cursor headers", async () => {
    const { client } = setup(
      json([{ id: "m1" }], 200, { "x-total": "250", "x-has-more": "true", "x-next-cursor": "c2" }),
    );
    const page = await client.list("/v1/messages");
    expect(page).toEqual({ items: [{ id: "m1" }], total: 250, hasMore: true, nextCursor: "c2" });
  });

  it("say when there is no count and no more", async () => {
    const { client } = setup(json([]));
    expect(await client.list("/v1/messages")).toEqual({
      items: [],
      total: null,
      hasMore: false,
      nextCursor: null,
    });
  });

  it("ask for a group's devices by name", async () => {
    const { client, call } = setup(json([], 200, { "x-total": "0" }));
    await listDevices(client, "g 1", { offset: 50, limit: 50 });
    expect(call()[0]).toBe("/v1/devices?group_id=g+1&sort_field=name&offset=50&limit=50");
  });
});

describe("errors", () => {
  it("become ApiError with the API's code, message and details", async () => {
    const body = { error: { code: "not_found", message: "device not found", details: null } };
    const { client } = setup(json(body, 404));
    const error = await client.get("/v1/devices/x").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect(error).toMatchObject({ status: 404, code: "not_found", message: "device not found" });
  });

  it("keep validation details", async () => {
    const details = [{ loc: ["body", "name"], msg: "too short", type: "string_too_short" }];
    const body = { error: { code: "validation_error", message: "invalid", details } };
    const { client } = setup(json(body, 422));
    await expect(client.post("/v1/groups", {})).rejects.toMatchObject({ details });
  });

  it("read Retry-After of 429", async () => {
    const body = { error: { code: "rate_limited", message: "slow down", details: null } };
    const { client } = setup(json(body, 429, { "retry-after": "42" }));
    await expect(client.get("/v1/organizations")).rejects.toMatchObject({ retryAfter: 42 });
  });

  it("describe answers that are not the API's", async () => {
    const { client } = setup(new Response("<html>Bad gateway</html>", { status: 502 }));
    await expect(client.get("/v1/organizations")).rejects.toMatchObject({
      status: 502,
      code: "bad_response",
    });
  });

  it("describe a failed connection", async () => {
    const { client } = setup(async () => {
      throw new TypeError("Failed to fetch");
    });
    await expect(client.get("/v1/organizations")).rejects.toMatchObject({
      status: 0,
      code: "network_error",
    });
  });
});

const expired = () =>
  json({ error: { code: "unauthorized", message: "expired", details: null } }, 401);

describe("an expired session", () => {
  it("forgets the token and calls onUnauthorized", async () => {
    const { client, tokens, onUnauthorized } = setup(expired());
    await expect(client.get("/v1/organizations")).rejects.toMatchObject({ code: "unauthorized" });
    expect(tokens.get()).toBeNull();
    expect(onUnauthorized).toHaveBeenCalledOnce();
  });

  it("is not a failed sign-in", async () => {
    const body = { error: { code: "bad_credentials", message: "wrong", details: null } };
    const { client, onUnauthorized } = setup(json(body, 401), null);
    await expect(signIn(client, { email: "a@b", password: "x" })).rejects.toMatchObject({
      code: "bad_credentials",
    });
    expect(onUnauthorized).not.toHaveBeenCalled();
  });
});

describe("sign-in", () => {
  it("keeps the token and sends no totp unless given", async () => {
    const { client, tokens, call } = setup(
      json({ access_token: "new", token_type: "bearer", expires_in: 60 }),
      null,
    );
    await signIn(client, { email: "a@b", password: "pw" });
    expect(tokens.get()).toBe("new");
    expect(JSON.parse(call()[1].body as string)).toEqual({ email: "a@b", password: "pw" });
  });

  it("reports totp_required for the second step", async () => {
    const body = { error: { code: "totp_required", message: "code needed", details: null } };
    const { client } = setup(json(body, 401), null);
    await expect(signIn(client, { email: "a@b", password: "pw" })).rejects.toMatchObject({
      code: "totp_required",
    });
  });

  it("sends the code the second time", async () => {
    const { client, call } = setup(json({ access_token: "t", token_type: "bearer", expires_in: 1 }), null);
    await signIn(client, { email: "a@b", password: "pw", totp: "123456" });
    expect(JSON.parse(call()[1].body as string)).toMatchObject({ totp: "123456" });
  });

  it("signs out even when the token is already gone on the server", async () => {
    const { client, tokens } = setup(expired());
    await signOut(client);
    expect(tokens.get()).toBeNull();
  });
});
