import { afterEach, describe, expect, it } from "vitest";
import { fakeApi, meWithRole } from "@/testing/fakeApi";
import { atLeast, forgetMe, loadMe, useRole } from "./useRole";

function clientAnswering(role: string) {
  const api = fakeApi({ "GET /v1/auth/me": meWithRole("o1", role, "one") });
  return { client: api.client, calls: () => api.calls.length };
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
