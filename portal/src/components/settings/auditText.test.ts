import { describe, expect, it } from "vitest";
import type { AuditEntry } from "@/api/organizations";
import { actorText, detailPairs, objectText } from "./auditText";

const entry = (over: Partial<AuditEntry>): AuditEntry => ({
  id: 1,
  at: "2026-11-27T12:00:00Z",
  actor_type: "user",
  actor_id: "u1",
  actor_label: "ada@example.com",
  action: "member.update",
  object_type: "api_key",
  object_id: "0123456789abcdef",
  details: null,
  ...over,
});

describe("audit text", () => {
  it("names the actor and its kind", () => {
    expect(actorText(entry({}))).toBe("ada@example.com (user)");
    expect(actorText(entry({ actor_type: "api_key", actor_label: "ci" }))).toBe("ci (API key)");
    expect(actorText(entry({ actor_type: "system", actor_label: "" }))).toBe("system");
  });

  it("reads details as name/value pairs", () => {
    expect(detailPairs({ old_role: "member", role: "viewer", count: 2, tags: ["a"], gone: null })).toEqual([
      ["old role", "member"],
      ["role", "viewer"],
      ["count", "2"],
      ["tags", '["a"]'],
      ["gone", "—"],
    ]);
    expect(detailPairs(null)).toEqual([]);
  });

  it("shortens the object id", () => {
    expect(objectText(entry({}))).toBe("api key 01234567");
    expect(objectText(entry({ object_type: "organization", object_id: null }))).toBe("organization");
  });
});
