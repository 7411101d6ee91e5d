import { afterEach, describe, expect, it, vi } from "vitest";
import { apiError, fakeApi, page, settle } from "@/testing/fakeApi";
import { mountWithApi } from "@/testing/mountWithApi";
import ApiKeysPanel from "./ApiKeysPanel.vue";

const key = (id: string, name: string, revoked_at: string | null = null) => ({
  id,
  organization_id: "o1",
  name,
  prefix: `nbk_${id}`,
  scope: "read",
  created_by: null,
  created_at: "2026-11-27T12:00:00Z",
  last_used_at: null,
  revoked_at,
});

afterEach(() => {
  document.body.innerHTML = "";
});

describe("ApiKeysPanel", () => {
  it("lists keys by prefix, never a secret, and marks revoked ones", async () => {
    const api = fakeApi({ "GET /v1/organizations/o1/api-keys": page([key("k1", "ci"), key("k2", "old", "2026-11-27T13:00:00Z")]) });
    const wrapper = mountWithApi(ApiKeysPanel, api, { orgId: "o1" });
    await settle();
    const rows = wrapper.findAll("tbody tr");
    expect(rows[0]?.text()).toContain("nbk_k1…");
    expect(rows[0]?.text()).toContain("active");
    expect(rows[1]?.text()).toContain("revoked");
    expect(rows[1]?.find("button").exists()).toBe(false);
  });

  it("shows a new key once, copies it, and forgets it on close", async () => {
    const api = fakeApi({
      "GET /v1/organizations/o1/api-keys": page([]),
      "POST /v1/organizations/o1/api-keys": { status: 201, body: { ...key("k3", "grafana"), scope: "write", key: "nbk_the_secret" } },
    });
    const writeText = vi.fn(async () => undefined);
    Object.defineProperty(navigator, "clipboard", { value: { writeText }, configurable: true });
    const wrapper = mountWithApi(ApiKeysPanel, api, { orgId: "o1" });
    await settle();
    await wrapper.find("input[name=key-name]").setValue("grafana");
    await wrapper.find("select[name=key-scope]").setValue("write");
    await wrapper.find("form[aria-label='New API key']").trigger("submit");
    await settle();
    expect(api.callsTo("POST /v1/organizations/o1/api-keys")[0]?.body).toEqual({ name: "grafana", scope: "write" });
    const secret = wrapper.find("input[data-secret]");
    expect((secret.element as HTMLInputElement).value).toBe("nbk_the_secret");
    expect(wrapper.text()).toContain("you will not see it again");
    await wrapper.findAll("button").find((b) => b.text() === "Copy")?.trigger("click");
    await settle();
    expect(writeText).toHaveBeenCalledWith("nbk_the_secret");
    expect(wrapper.text()).toContain("Copied");
    await wrapper.findAll("button").find((b) => b.text() === "I have copied it")?.trigger("click");
    await settle();
    expect(wrapper.find("input[data-secret]").exists()).toBe(false);
    expect(wrapper.html()).not.toContain("nbk_the_secret");
  });

  it("revokes after confirming, and says when the role may not", async () => {
    const api = fakeApi({
      "GET /v1/organizations/o1/api-keys": page([key("k1", "ci")]),
      "DELETE /v1/api-keys/k1": apiError(403, "forbidden", "admin needed"),
    });
    const wrapper = mountWithApi(ApiKeysPanel, api, { orgId: "o1" });
    await settle();
    await wrapper.find("button[aria-label='Revoke key ci']").trigger("click");
    expect(api.callsTo("DELETE /v1/api-keys/k1")).toHaveLength(0);
    await wrapper.findAll("dialog button").find((b) => b.text() === "Revoke")?.trigger("click");
    await settle();
    expect(api.callsTo("DELETE /v1/api-keys/k1")).toHaveLength(1);
    expect(wrapper.find("[role=alert]").text()).toBe("Your role may not revoke API keys.");
  });
});
