import { describe, expect, it } from "vitest";
import {
  describeFilter,
  filterFromQuery,
  isFiltered,
  isoFromLocalInput,
  localInputValue,
  matchesFilter,
  queryFromFilter,
} from "./filterQuery";

describe("the filter in the URL", () => {
  it("round-trips", () => {
    const filter = { since: "2026-11-27T10:00:00.000Z", types: ["data" as const, "stats" as const], direction: "up" as const };
    expect(filterFromQuery(queryFromFilter(filter) as never)).toEqual(filter);
  });

  it("drops values the API would refuse", () => {
    expect(filterFromQuery({ since: "yesterday", type: ["data", "bogus"], direction: "sideways" })).toEqual({
      types: ["data"],
    });
    expect(isFiltered(filterFromQuery({}))).toBe(false);
  });

  it("normalizes times to ISO UTC", () => {
    expect(filterFromQuery({ before: "2026-11-27T12:00:00+01:00" }).before).toBe("2026-11-27T11:00:00.000Z");
  });
});

describe("datetime-local", () => {
  it("converts the reader's local time to UTC and back", () => {
    const iso = isoFromLocalInput("2026-11-27T08:30:15");
    expect(iso).toBe(new Date(2026, 10, 27, 8, 30, 15).toISOString());
    expect(localInputValue(iso)).toBe("2026-11-27T08:30:15");
    expect(isoFromLocalInput("")).toBeUndefined();
    expect(localInputValue(undefined)).toBe("");
  });
});

describe("matchesFilter", () => {
  const message = { created_at: "2026-11-27T12:00:00Z", type: "data", direction: "up" };
  it("applies since (inclusive), before (exclusive), type and direction", () => {
    expect(matchesFilter(message, {})).toBe(true);
    expect(matchesFilter(message, { since: "2026-11-27T12:00:00Z" })).toBe(true);
    expect(matchesFilter(message, { since: "2026-11-27T12:00:01Z" })).toBe(false);
    expect(matchesFilter(message, { before: "2026-11-27T12:00:00Z" })).toBe(false);
    expect(matchesFilter(message, { types: ["stats"] })).toBe(false);
    expect(matchesFilter(message, { types: ["stats", "data"] })).toBe(true);
    expect(matchesFilter(message, { direction: "down" })).toBe(false);
  });
});

describe("describeFilter", () => {
  it("says what is selected", () => {
    expect(describeFilter({ types: ["data"], direction: "down" })).toBe("of type data, downlinks only");
    expect(describeFilter({})).toBe("");
  });
});
