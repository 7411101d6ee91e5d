import { flushPromises, RouterLinkStub } from "@vue/test-utils";
import { afterEach, describe, expect, it } from "vitest";
import { forgetMe } from "@/composables/useRole";
import { apiError, fakeApi, meWithRole, page, settle } from "@/testing/fakeApi";
import { mountWithApi } from "@/testing/mountWithApi";
import GroupsPage from "./GroupsPage.vue";

const group = (id: string, name: string, device_count = 0) => ({
  id,
  organization_id: "o1",
  name,
  created_at: "2026-11-27T12:00:00Z",
  updated_at: null,
  device_count,
});

function setup(role: string) {
  return fakeApi({
    "GET /v1/auth/me": meWithRole("o1", role),
    "GET /v1/groups": page([group("g1", "default", 2), group("g2", "empty")]),
  });
}

afterEach(() => {
  forgetMe();
  document.body.innerHTML = "";
});

describe("GroupsPage", () => {
  it("lists groups with device counts and links, without forms for viewers", async () => {
    const wrapper = mountWithApi(GroupsPage, setup("viewer"), { orgId: "o1" });
    await settle();
    expect(wrapper.text()).toContain("default");
    expect(wrapper.findAll("td.num").map((td) => td.text())).toEqual(["2", "0"]);
    const link = wrapper.findAllComponents(RouterLinkStub).find((l) => l.text() === "empty");
    expect(link?.props("to")).toEqual({ name: "devices", params: { orgId: "o1", groupId: "g2" } });
    expect(wrapper.find("form[aria-label='New group']").exists()).toBe(false);
    expect(wrapper.text()).not.toContain("Organization settings");
    expect(wrapper.text()).not.toContain("Rename");
  });

  it("creates a group and reloads the list", async () => {
    const api = setup("member");
    api.on("POST /v1/groups", { status: 201, body: group("g3", "yard") });
    const wrapper = mountWithApi(GroupsPage, api, { orgId: "o1" });
    await settle();
    await wrapper.find("input[name=group-name]").setValue(" yard ");
    await wrapper.find("form[aria-label='New group']").trigger("submit");
    await settle();
    expect(api.callsTo("POST /v1/groups")[0]?.body).toEqual({ organization_id: "o1", name: "yard" });
    expect(api.callsTo("GET /v1/groups")).toHaveLength(2);
  });

  it("shows a 422 next to the name and a 403 as the role's limit", async () => {
    const api = setup("member");
    const details = [{ loc: ["body", "name"], msg: "String should have at most 200 characters" }];
    api.on("POST /v1/groups", apiError(422, "validation_error", "invalid", details));
    const wrapper = mountWithApi(GroupsPage, api, { orgId: "o1" });
    await settle();
    await wrapper.find("input[name=group-name]").setValue("x");
    await wrapper.find("form[aria-label='New group']").trigger("submit");
    await settle();
    expect(wrapper.find(".field-error").text()).toContain("at most 200");
    api.on("POST /v1/groups", apiError(403, "forbidden", "nope"));
    await wrapper.find("form[aria-label='New group']").trigger("submit");
    await settle();
    expect(wrapper.find("[role=alert]").text()).toBe("Your role may not create groups.");
  });

  it("renames in place", async () => {
    const api = setup("member");
    api.on("PATCH /v1/groups/g2", { body: group("g2", "yard") });
    const wrapper = mountWithApi(GroupsPage, api, { orgId: "o1" });
    await settle();
    await wrapper.find("button[aria-label='Rename group empty']").trigger("click");
    await wrapper.find("#group-name-g2").setValue("yard");
    await wrapper.find("form[aria-label='Rename group empty']").trigger("submit");
    await settle();
    expect(api.callsTo("PATCH /v1/groups/g2")[0]?.body).toEqual({ name: "yard" });
    expect(wrapper.find("#group-name-g2").exists()).toBe(false);
  });

  it("deletes only after confirming and shows the API's 409 message", async () => {
    const api = setup("admin");
    api.on("DELETE /v1/groups/g1", apiError(409, "conflict", "the group has 2 devices"));
    const wrapper = mountWithApi(GroupsPage, api, { orgId: "o1" });
    await settle();
    expect(wrapper.text()).toContain("Organization settings");
    await wrapper.find("button[aria-label='Delete group default']").trigger("click");
    await flushPromises();
    expect(api.callsTo("DELETE /v1/groups/g1")).toHaveLength(0);
    const dialog = wrapper.findAll("dialog").find((d) => d.attributes("aria-label") === "Delete group default?");
    await dialog?.findAll("button").find((b) => b.text() === "Delete")?.trigger("click");
    await settle();
    expect(api.callsTo("DELETE /v1/groups/g1")).toHaveLength(1);
    expect(wrapper.find("[role=alert]").text()).toBe("the group has 2 devices");
  });
});
