import { afterEach, describe, expect, it, vi } from "vitest";
import { ApiClient, memoryTokenStore } from "@/api";
import { atLeast, forgetMe, loadMe, useRole } from "./useRole";

function clientAnswering(role: string): { client: ApiClient; calls: () => number } {
  const fetch = vi.fn(async () =>
    new Response(
      JSON.stringify({
        kind: "user",
        id: "u1",
        email: "a@example.com",
        label: "a",
        totp_enabled: false,
        organizations: [{ organization_id: "o1", organization_name: "one", role }],
      }),
      { status: 200, headers: { "content-type": "application/json" } },
    ),
  );
  const tokens = memoryTokenStore();
  tokens.set("t");
  return { client: new ApiClient({ tokens, fetch }), calls: () => fetch.mock.calls.length };
}

afterEach(forgetMe);

describe("useRole", () => {
  it("ranks the roles", () => {
    expect(atLeast("owner", "admin")).toBe(true);
    expect(atLeast("member", "admin")).toBe(false);
    expect(atLeast("viewer", "viewer")).toBe(true);
    expect(atLeast(null, "viewer")).toBe(false);
  });

  it("asks /v1/auth/me once and tells what the role allows", async () => {
    const { client, calls } = clientAnswering("member");
    const view = useRole(client, () => "o1");
    await loadMe(client);
    useRole(client, () => "o1");
    expect(calls()).toBe(1);
    expect(view.role.value).toBe("member");
    expect(view.canWrite.value).toBe(true);
    expect(view.isAdmin.value).toBe(false);
  });

  it("knows no role in another organization", async () => {
    const { client } = clientAnswering("owner");
    const view = useRole(client, () => "other");
    await loadMe(client);
    expect(view.role.value).toBeNull();
    expect(view.canWrite.value).toBe(false);
  });
});
