import { afterEach, describe, expect, it } from "vitest";
import { forgetMe } from "@/composables/useRole";
import { fakeApi, meWithRole, page, settle } from "@/testing/fakeApi";
import { mountWithApi } from "@/testing/mountWithApi";
import SettingsPage from "./SettingsPage.vue";

const entry = { id: 1, at: "2026-11-27T12:00:00Z", actor_type: "user", actor_id: "u", actor_label: "me@example.com", action: "organization.update", object_type: "organization", object_id: "o1", details: { name: "acme 2" } };

function setup(role: string) {
  return fakeApi({
    "GET /v1/auth/me": meWithRole("o1", role),
    "GET /v1/organizations/o1": { body: { id: "o1", name: "acme", created_at: "2026-11-27T12:00:00Z" } },
    "GET /v1/organizations/o1/members": page([]),
    "GET /v1/organizations/o1/api-keys": page([]),
    "GET /v1/organizations/o1/audit": page([entry]),
    "PATCH /v1/organizations/o1": { body: { id: "o1", name: "acme 2", created_at: "2026-11-27T12:00:00Z" } },
  });
}

afterEach(() => {
  forgetMe();
  document.body.innerHTML = "";
});

describe("SettingsPage", () => {
  it("shows a member the members only, and why", async () => {
    const api = setup("member");
    const wrapper = mountWithApi(SettingsPage, api, { orgId: "o1" });
    await settle();
    expect(wrapper.find("h1").text()).toBe("Settings of acme");
    expect(wrapper.text()).toContain("Your role is member");
    expect(wrapper.text()).toContain("Members");
    expect(wrapper.find("#keys-title").exists()).toBe(false);
    expect(wrapper.find("#audit-title").exists()).toBe(false);
    expect(api.callsTo("GET /v1/organizations/o1/audit")).toHaveLength(0);
  });

  it("lets an admin rename, and the audit log follows with readable details", async () => {
    const api = setup("admin");
    const wrapper = mountWithApi(SettingsPage, api, { orgId: "o1" });
    await settle();
    expect(wrapper.text()).toContain("API keys");
    expect(wrapper.find(".details").text()).toContain("name");
    expect(wrapper.find(".details").text()).toContain("acme 2");
    await wrapper.find("input[name=organization-name]").setValue("acme 2");
    await wrapper.find("form[aria-labelledby=rename-title]").trigger("submit");
    await settle();
    expect(api.callsTo("PATCH /v1/organizations/o1")[0]?.body).toEqual({ name: "acme 2" });
    expect(wrapper.find("h1").text()).toBe("Settings of acme 2");
    expect(api.callsTo("GET /v1/organizations/o1/audit")).toHaveLength(2);
  });
});
