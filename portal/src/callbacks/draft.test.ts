import { describe, expect, it } from "vitest";
import { ApiError } from "@/api";
import {
  changesOf,
  checkDraft,
  createBody,
  draftOf,
  fieldErrorsOf,
  isDirty,
  parseDelays,
  payloadProblemOf,
  type CallbackDraft,
} from "./draft";
import { storedCallback } from "@/testing/samples";


function valid(): CallbackDraft {
  return { ...draftOf(null), name: "farm", url: "https://farm.example.com/in" };
}

describe("checkDraft", () => {
  it("accepts the defaults with a name and a URL", () => {
    expect(checkDraft(valid())).toEqual({});
  });

  it("asks for a name, a proper URL and a trigger", () => {
    const errors = checkDraft({ ...draftOf(null), url: "ftp://x", triggers: [] });
    expect(Object.keys(errors).sort()).toEqual(["name", "triggers", "url"]);
  });

  it("refuses reserved and malformed headers at their row", () => {
    const headers = [
      { name: "X-Nubes-Delivery", value: "1" },
      { name: "bad name", value: "ok" },
      { name: "X-Ok", value: "é" },
    ];
    const errors = checkDraft({ ...valid(), headers });
    expect(errors["headers[0].name"]).toMatch(/set by Nubes/);
    expect(errors["headers[1].name"]).toBeDefined();
    expect(errors["headers[2].value"]).toBeDefined();
    expect(errors["headers[2].name"]).toBeUndefined();
  });

  it("checks timeout and retry delays against the API's limits", () => {
    expect(checkDraft({ ...valid(), timeout: "61" }).timeout).toBeDefined();
    expect(checkDraft({ ...valid(), retryDelays: "10, x" }).retry_delays).toBeDefined();
    expect(checkDraft({ ...valid(), retryDelays: "0" }).retry_delays).toBeDefined();
    expect(checkDraft({ ...valid(), retryDelays: "" }).retry_delays).toBeUndefined();
  });

  it("asks for the new secret when replacing it", () => {
    expect(checkDraft({ ...valid(), secret: { kind: "replace", value: "" } }).secret).toBeDefined();
  });
});

describe("parseDelays", () => {
  it("reads commas and spaces", () => {
    expect(parseDelays("10, 30 60,")).toEqual([10, 30, 60]);
    expect(parseDelays("")).toEqual([]);
    expect(parseDelays("1, a")).toBeNull();
  });
});

describe("saving", () => {
  it("creates with every field, no empty note, and the secret when one was typed", () => {
    const body = createBody({ ...valid(), secret: { kind: "replace", value: "s3cret" } });
    expect(body).toMatchObject({ name: "farm", note: null, secret: "s3cret", retry_delays: [10, 30, 60, 600, 1800, 3600, 10800, 21600, 43200] });
  });

  it("changes only what changed", () => {
    const original = draftOf(storedCallback);
    const edited = { ...original, payload: "data.x", enabled: false };
    expect(changesOf(original, edited)).toEqual({ payload: "data.x", enabled: false });
    expect(isDirty(original, draftOf(storedCallback))).toBe(false);
  });

  it("sends the secret only when replaced or cleared", () => {
    const original = draftOf(storedCallback);
    expect(changesOf(original, { ...original, secret: { kind: "clear" } })).toEqual({ secret: "" });
    expect(changesOf(original, { ...original, secret: { kind: "replace", value: "n" } })).toEqual({ secret: "n" });
  });
});

describe("the API's 422", () => {
  it("puts a callback check at its field, with the position of a payload", () => {
    const error = new ApiError(422, {
      code: "validation_error",
      message: 'payload: Expected "}" before end of expression',
      details: { field: "payload", position: 12, code: "S0203" },
    });
    expect(fieldErrorsOf(error)).toEqual({ payload: 'Expected "}" before end of expression' });
    expect(payloadProblemOf(error)).toEqual({
      message: 'Expected "}" before end of expression',
      position: 12,
      code: "S0203",
    });
  });

  it("reads the request validation's locations", () => {
    const error = new ApiError(422, {
      code: "validation_error",
      message: "body.headers.0.name: too short",
      details: [{ loc: ["body", "headers", 0, "name"], msg: "too short" }, { loc: ["body", "timeout"], msg: "too big" }],
    });
    expect(fieldErrorsOf(error)).toEqual({ "headers[0].name": "too short", timeout: "too big" });
  });

  it("gives nothing for other errors", () => {
    const error = new ApiError(403, { code: "forbidden", message: "no", details: null });
    expect(fieldErrorsOf(error)).toEqual({});
    expect(payloadProblemOf(error)).toBeNull();
  });
});
