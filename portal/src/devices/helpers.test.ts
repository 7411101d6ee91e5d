import { describe, expect, it } from "vitest";
import { ApiError } from "@/api";
import { buildCalendar, calendarStart } from "./calendar";
import { configLines } from "./config";
import { createLimiter } from "./limiter";
import { describeProblem, fieldProblems } from "./problems";
import { deviceLocation, groupParam, NO_GROUP } from "./routes";
import { sessionAttributes } from "./sessionAttributes";
import { byteSize, isTrouble, timeWithMs } from "./traffic";
import { checkDeviceForm, parseSerial } from "./validation";

const valid = { serial: "2159000001", name: "", label: "", claimToken: "0123456789abcdef0123456789ABCDEF", psk: "" };

describe("the add-device checks", () => {
  it("read serial numbers with or without hsn:", () => {
    expect(parseSerial("hsn:2159000001")).toBe(2159000001);
    expect(parseSerial(" 7 ")).toBe(7);
    expect(parseSerial("0")).toBeNull();
    expect(parseSerial("4294967296")).toBeNull();
    expect(parseSerial("12a")).toBeNull();
  });

  it("accept what the API accepts", () => {
    expect(checkDeviceForm(valid)).toEqual({});
    expect(checkDeviceForm({ ...valid, psk: "00".repeat(16) })).toEqual({});
    expect(checkDeviceForm({ ...valid, psk: "00".repeat(32) })).toEqual({});
  });

  it("refuse what the API refuses, per field", () => {
    const errors = checkDeviceForm({ serial: "x", name: "n".repeat(101), label: "", claimToken: "abc", psk: "00".repeat(15) });
    expect(Object.keys(errors).sort()).toEqual(["claimToken", "name", "psk", "serial"]);
    expect(checkDeviceForm({ ...valid, psk: "00".repeat(33) }).psk).toBeDefined();
    expect(checkDeviceForm({ ...valid, psk: "0".repeat(33) }).psk).toBeDefined();
  });
});

describe("API problems", () => {
  const validation = new ApiError(422, {
    code: "validation_error",
    message: "body.serial: bad",
    details: [
      { loc: ["body", "serial"], msg: "too large", type: "x" },
      { loc: ["body", "serial"], msg: "second", type: "x" },
      { loc: ["query", "q"], msg: "elsewhere", type: "x" },
    ],
  });

  it("put 422 details at their body fields", () => {
    expect(fieldProblems(validation)).toEqual({ serial: "too large" });
    expect(fieldProblems(new Error("x"))).toEqual({});
  });

  it("say what the role may not do on 403, and the API's message otherwise", () => {
    const forbidden = new ApiError(403, { code: "forbidden", message: "no", details: null });
    const conflict = new ApiError(409, { code: "conflict", message: "serial number taken", details: null });
    expect(describeProblem(forbidden, "add devices")).toBe("Your role may not add devices in this organization.");
    expect(describeProblem(conflict, "add devices")).toBe("serial number taken");
  });
});

describe("the heat map's calendar", () => {
  const now = Date.parse("2026-11-27T15:00:00Z"); // a Friday

  it("starts on a Monday, weeks back", () => {
    expect(calendarStart(now, 1).toISOString()).toBe("2026-11-23T00:00:00.000Z");
    expect(calendarStart(now, 2).toISOString()).toBe("2026-11-16T00:00:00.000Z");
  });

  it("places counts, levels them by the busiest day and leaves the future empty", () => {
    const calendar = buildCalendar(
      [
        { date: "2026-11-23", count: 1 },
        { date: "2026-11-27", count: 8 },
        { date: "2026-10-01", count: 99 },
      ],
      now,
      1,
    );
    const week = calendar.weeks[0] ?? [];
    expect(week.map((day) => day.date)).toEqual([
      "2026-11-23", "2026-11-24", "2026-11-25", "2026-11-26", "2026-11-27", "2026-11-28", "2026-11-29",
    ]);
    expect(week.map((day) => day.level)).toEqual([1, 0, 0, 0, 4, 0, 0]);
    expect(week.map((day) => day.future)).toEqual([false, false, false, false, false, true, true]);
    expect(calendar.total).toBe(9);
    expect(calendar.busiest).toBe(8);
  });
});

describe("the limiter", () => {
  it("runs at most max tasks at once, all of them in the end", async () => {
    const limiter = createLimiter(2);
    let running = 0;
    let most = 0;
    const task = (value: number) => async () => {
      running += 1;
      most = Math.max(most, running);
      await new Promise((resolve) => setTimeout(resolve, 5));
      running -= 1;
      return value;
    };
    const results = await Promise.all([1, 2, 3, 4, 5].map((n) => limiter.run(task(n))));
    expect(results).toEqual([1, 2, 3, 4, 5]);
    expect(most).toBe(2);
  });

  it("goes on after a failed task", async () => {
    const limiter = createLimiter(1);
    await expect(limiter.run(async () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    await expect(limiter.run(async () => "next")).resolves.toBe("next");
  });
});

describe("routes of devices", () => {
  it("give devices in no group the placeholder group", () => {
    expect(groupParam(null)).toBe(NO_GROUP);
    expect(deviceLocation({ id: "d1", organization_id: "o1", group_id: null })).toEqual({
      name: "device",
      params: { orgId: "o1", groupId: "-", deviceId: "d1" },
    });
  });
});

describe("traffic and attributes", () => {
  it("write sizes and times to the millisecond", () => {
    expect(byteSize(999)).toBe("999 B");
    expect(byteSize(2048)).toBe("2.0 kB");
    expect(timeWithMs("2026-11-27T12:00:05.123Z")).toMatch(/:05\.123$/);
  });

  it("mark trouble outcomes", () => {
    expect(isTrouble("bad_mac")).toBe(true);
    expect(isTrouble("accepted")).toBe(false);
  });

  it("read config lines of any shape", () => {
    expect(configLines(["a 1", "b 2"])).toEqual(["a 1", "b 2"]);
    expect(configLines("a\nb\n")).toEqual(["a", "b"]);
    expect(configLines(null)).toEqual([]);
    expect(configLines({ x: 1 })).toEqual(['{\n  "x": 1\n}']);
  });

  it("label known session attributes first, then the rest", () => {
    const items = sessionAttributes({ extra: 5, product: "CHESTER-M", vendor: "HARDWARIO" });
    expect(items.map((item) => item.label)).toEqual(["Vendor", "Product", "extra"]);
    expect(sessionAttributes([1, 2])).toEqual([]);
  });
});
