import { RouterLinkStub } from "@vue/test-utils";
import { afterEach, describe, expect, it, vi } from "vitest";
import { forgetMe } from "@/composables/useRole";
import { fakeApi, page, settle } from "@/testing/fakeApi";
import { mountWithApi } from "@/testing/mountWithApi";
import OrganizationsPage from "./OrganizationsPage.vue";

const push = vi.fn(async () => undefined);
vi.mock("vue-router", async (original) => ({ ...(await original<typeof import("vue-router")>()), useRouter: () => ({ push }) }));

const org = (id: string, name: string) => ({ id, name, created_at: "2026-11-27T12:00:00Z" });
const me = {
  kind: "user",
  id: "u",
  email: "me@example.com",
  label: "me",
  totp_enabled: false,
  organizations: [
    { organization_id: "o1", organization_name: "acme", role: "admin" },
    { organization_id: "o2", organization_name: "beta", role: "viewer" },
  ],
};

afterEach(() => {
  forgetMe();
  document.body.innerHTML = "";
});

describe("OrganizationsPage", () => {
  it("links settings only where the user is an admin", async () => {
    const api = fakeApi({ "GET /v1/auth/me": { body: me }, "GET /v1/organizations": page([org("o1", "acme"), org("o2", "beta")]) });
    const wrapper = mountWithApi(OrganizationsPage, api);
    await settle();
    const settings = wrapper.findAllComponents(RouterLinkStub).filter((link) => link.text() === "Settings");
    expect(settings.map((link) => link.props("to"))).toEqual([{ name: "settings", params: { orgId: "o1" } }]);
  });

  it("creates an organization, asks who I am again and opens it", async () => {
    const api = fakeApi({
      "GET /v1/auth/me": { body: me },
      "GET /v1/organizations": page([]),
      "POST /v1/organizations": { status: 201, body: org("o3", "gamma") },
    });
    const wrapper = mountWithApi(OrganizationsPage, api);
    await settle();
    await wrapper.find("input[name=organization-name]").setValue("gamma");
    await wrapper.find("form[aria-label='New organization']").trigger("submit");
    await settle();
    expect(api.callsTo("POST /v1/organizations")[0]?.body).toEqual({ name: "gamma" });
    expect(api.callsTo("GET /v1/auth/me")).toHaveLength(2);
    expect(push).toHaveBeenCalledWith({ name: "groups", params: { orgId: "o3" } });
  });
});
