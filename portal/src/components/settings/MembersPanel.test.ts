import { afterEach, describe, expect, it } from "vitest";
import { apiError, fakeApi, page, settle } from "@/testing/fakeApi";
import { mountWithApi } from "@/testing/mountWithApi";
import MembersPanel from "./MembersPanel.vue";

const member = (id: string, email: string, role: string) => ({ id, email, role, created_at: "2026-11-27T12:00:00Z" });
const members = page([member("u1", "boss@example.com", "owner"), member("u2", "ada@example.com", "member")]);

afterEach(() => {
  document.body.innerHTML = "";
});

describe("MembersPanel", () => {
  it("shows roles read-only to members", async () => {
    const api = fakeApi({ "GET /v1/organizations/o1/members": members });
    const wrapper = mountWithApi(MembersPanel, api, { orgId: "o1", myRole: "member" });
    await settle();
    expect(wrapper.findAll("tbody tr").map((r) => r.text())).toEqual([
      expect.stringContaining("owner"),
      expect.stringContaining("member"),
    ]);
    expect(wrapper.find("select").exists()).toBe(false);
    expect(wrapper.find("form[aria-label='Add a member']").exists()).toBe(false);
  });

  it("lets an admin change others but neither touch nor make owners", async () => {
    const api = fakeApi({
      "GET /v1/organizations/o1/members": members,
      "PATCH /v1/organizations/o1/members/u2": { body: member("u2", "ada@example.com", "viewer") },
    });
    const wrapper = mountWithApi(MembersPanel, api, { orgId: "o1", myRole: "admin" });
    await settle();
    expect(wrapper.find("#role-u1").exists()).toBe(false);
    const select = wrapper.find("#role-u2");
    expect(select.findAll("option").map((o) => o.text())).toEqual(["viewer", "member", "admin"]);
    await select.setValue("viewer");
    expect(wrapper.findAll("button").some((b) => b.text() === "Save role")).toBe(true);
    await wrapper.find("form.role").trigger("submit");
    await settle();
    expect(api.callsTo("PATCH /v1/organizations/o1/members/u2").map((c) => c.body)).toEqual([{ role: "viewer" }]);
  });

  it("shows the API's 409 when the last owner would go", async () => {
    const api = fakeApi({
      "GET /v1/organizations/o1/members": members,
      "DELETE /v1/organizations/o1/members/u1": apiError(409, "conflict", "the organization keeps at least one owner"),
    });
    const wrapper = mountWithApi(MembersPanel, api, { orgId: "o1", myRole: "owner" });
    await settle();
    await wrapper.find("button[aria-label='Remove boss@example.com']").trigger("click");
    await wrapper.findAll("dialog button").find((b) => b.text() === "Remove")?.trigger("click");
    await settle();
    expect(wrapper.find("[role=alert]").text()).toBe("the organization keeps at least one owner");
  });

  it("adds a new account with a password and puts 422 details by their fields", async () => {
    const details = [{ loc: ["body", "password"], msg: "String should have at least 8 characters" }];
    const api = fakeApi({
      "GET /v1/organizations/o1/members": members,
      "POST /v1/organizations/o1/members": apiError(422, "validation_error", "invalid", details),
    });
    const wrapper = mountWithApi(MembersPanel, api, { orgId: "o1", myRole: "owner" });
    await settle();
    expect(wrapper.findAll("select[name=member-role] option").map((o) => o.text())).toContain("owner");
    await wrapper.find("input[name=member-email]").setValue("new@example.com");
    await wrapper.find("input[name=member-password]").setValue("short");
    await wrapper.find("form[aria-label='Add a member']").trigger("submit");
    await settle();
    expect(api.callsTo("POST /v1/organizations/o1/members")[0]?.body).toEqual({
      email: "new@example.com",
      role: "member",
      password: "short",
    });
    expect(wrapper.find(".field-error").text()).toContain("at least 8");
  });
});
