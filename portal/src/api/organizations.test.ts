import { describe, expect, it } from "vitest";
import { fakeApi, page } from "@/testing/fakeApi";
import {
  addMember,
  changeMemberRole,
  createApiKey,
  createGroup,
  createOrganization,
  deleteGroup,
  listApiKeys,
  listAudit,
  listMembers,
  removeMember,
  renameGroup,
  renameOrganization,
  revokeApiKey,
} from "./organizations";

describe("organization calls", () => {
  it("create and rename organizations", async () => {
    const api = fakeApi({ "POST /v1/organizations": { status: 201, body: { id: "o2" } }, "PATCH /v1/organizations/o1": { body: {} } });
    await createOrganization(api.client, "acme");
    await renameOrganization(api.client, "o1", "acme 2");
    expect(api.calls.map((c) => c.body)).toEqual([{ name: "acme" }, { name: "acme 2" }]);
  });

  it("create, rename and delete groups of an organization", async () => {
    const api = fakeApi({
      "POST /v1/groups": { status: 201, body: {} },
      "PATCH /v1/groups/g1": { body: {} },
      "DELETE /v1/groups/g1": { status: 204 },
    });
    await createGroup(api.client, "o1", "field");
    await renameGroup(api.client, "g1", "yard");
    await deleteGroup(api.client, "g1");
    expect(api.calls.map((c) => [c.method, c.body])).toEqual([
      ["POST", { organization_id: "o1", name: "field" }],
      ["PATCH", { name: "yard" }],
      ["DELETE", undefined],
    ]);
  });

  it("send a member's password only when one is given", async () => {
    const api = fakeApi({ "POST /v1/organizations/o1/members": { status: 201, body: {} } });
    await addMember(api.client, "o1", { email: "a@b.c", role: "viewer", password: "" });
    await addMember(api.client, "o1", { email: "d@b.c", role: "member", password: "long secret" });
    expect(api.calls[0]?.body).toEqual({ email: "a@b.c", role: "viewer" });
    expect(api.calls[1]?.body).toEqual({ email: "d@b.c", role: "member", password: "long secret" });
  });

  it("list, re-role and remove members", async () => {
    const api = fakeApi({
      "GET /v1/organizations/o1/members": page([{ id: "u1" }], 7),
      "PATCH /v1/organizations/o1/members/u1": { body: {} },
      "DELETE /v1/organizations/o1/members/u1": { status: 204 },
    });
    const members = await listMembers(api.client, "o1", { offset: 0, limit: 5 });
    await changeMemberRole(api.client, "o1", "u1", "admin");
    await removeMember(api.client, "o1", "u1");
    expect(members.total).toBe(7);
    expect(api.calls[0]?.query.get("sort_field")).toBe("email");
    expect(api.calls[1]?.body).toEqual({ role: "admin" });
    expect(api.calls[2]?.method).toBe("DELETE");
  });

  it("list keys newest first, create one with its scope, revoke by id", async () => {
    const api = fakeApi({
      "GET /v1/organizations/o1/api-keys": page([]),
      "POST /v1/organizations/o1/api-keys": { status: 201, body: { id: "k1", key: "nbk_secret" } },
      "DELETE /v1/api-keys/k1": { status: 204 },
    });
    await listApiKeys(api.client, "o1");
    const created = await createApiKey(api.client, "o1", { name: "ci", scope: "write" });
    await revokeApiKey(api.client, "k1");
    expect(api.calls[0]?.query.get("sort_order")).toBe("desc");
    expect(api.calls[1]?.body).toEqual({ name: "ci", scope: "write" });
    expect(created.key).toBe("nbk_secret");
    expect(api.calls[2]?.path).toBe("/v1/api-keys/k1");
  });

  it("read the audit log newest first, filtered by an action family", async () => {
    const api = fakeApi({ "GET /v1/organizations/o1/audit": page([]) });
    await listAudit(api.client, "o1", { offset: 25, limit: 25, action: "member" });
    await listAudit(api.client, "o1");
    expect(api.calls[0]?.query.toString()).toBe("sort_order=desc&offset=25&limit=25&action=member");
    expect(api.calls[1]?.query.has("action")).toBe(false);
  });
});
