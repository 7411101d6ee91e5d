import { describe, expect, it } from "vitest";
import { ApiError } from "@/api";
import { explainFailure, useApiAction } from "./useApiAction";

const error = (status: number, code: string, message: string, details: unknown = null) =>
  new ApiError(status, { code, message, details });

describe("explainFailure", () => {
  it("puts 422 details next to their fields and the rest above", () => {
    const details = [
      { loc: ["body", "email"], msg: "not an email" },
      { loc: ["body", "password"], msg: "too short" },
      { loc: ["body", "other"], msg: "odd" },
    ];
    const failure = explainFailure(error(422, "validation_error", "invalid body", details), "add members", ["email", "password"]);
    expect(failure.fields).toEqual({ email: "not an email", password: "too short" });
    expect(failure.message).toBe("invalid body: odd");
  });

  it("says what the role may not do on 403", () => {
    expect(explainFailure(error(403, "forbidden", "admin needed"), "revoke API keys").message).toBe(
      "Your role may not revoke API keys.",
    );
  });

  it("shows the API's message on 409 and other codes", () => {
    expect(explainFailure(error(409, "conflict", "the last owner stays"), "x").message).toBe("the last owner stays");
    expect(explainFailure(error(422, "downlink_error", "no encoder"), "x", ["data"]).message).toBe("no encoder");
  });

  it("does not hide errors that are not the API's", () => {
    expect(explainFailure(new TypeError("boom"), "x").message).toBe("boom");
  });
});

describe("useApiAction", () => {
  it("is busy while running and keeps the failure", async () => {
    let fail: (reason: unknown) => void = () => undefined;
    const action = useApiAction(() => new Promise<number>((_, reject) => (fail = reject)), { what: "do it" });
    const running = action.run();
    expect(action.busy.value).toBe(true);
    fail(error(409, "conflict", "taken"));
    expect(await running).toBeUndefined();
    expect(action.busy.value).toBe(false);
    expect(action.failure.value?.message).toBe("taken");
    action.reset();
    expect(action.failure.value).toBeNull();
  });

  it("answers the result and clears an old failure", async () => {
    let calls = 0;
    const action = useApiAction(async () => {
      calls += 1;
      if (calls === 1) throw error(500, "bad_response", "down");
      return 42;
    }, { what: "do it" });
    await action.run();
    expect(await action.run()).toBe(42);
    expect(action.failure.value).toBeNull();
  });
});
