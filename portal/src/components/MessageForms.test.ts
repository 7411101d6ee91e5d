import { mount } from "@vue/test-utils";
import { describe, expect, it, vi } from "vitest";
import { isoFromLocalInput } from "@/messages/filterQuery";
import { apiError, fakeApi } from "@/testing/fakeApi";
import { apiProvide } from "@/testing/mountWithApi";
import MessageConfirm from "./MessageConfirm.vue";
import MessageExport from "./MessageExport.vue";
import MessageFilters from "./MessageFilters.vue";

describe("MessageFilters", () => {
  it("emits the filter with local times as UTC", async () => {
    const wrapper = mount(MessageFilters, { props: { filter: {} } });
    await wrapper.get("input[name=since]").setValue("2026-11-27T08:00:00");
    await wrapper.get("select[name=type]").setValue("data");
    await wrapper.get("select[name=direction]").setValue("up");
    await wrapper.get("form").trigger("submit");
    expect(wrapper.emitted("apply")?.[0]).toEqual([
      { since: isoFromLocalInput("2026-11-27T08:00:00"), types: ["data"], direction: "up" },
    ]);
  });

  it("refuses a range that ends before it starts, next to the field", async () => {
    const wrapper = mount(MessageFilters, { props: { filter: {} } });
    await wrapper.get("input[name=since]").setValue("2026-11-27T08:00:00");
    await wrapper.get("input[name=before]").setValue("2026-11-27T07:00:00");
    await wrapper.get("form").trigger("submit");
    expect(wrapper.emitted("apply")).toBeUndefined();
    expect(wrapper.get("#before-error").text()).toContain("later");
  });

  it("shows the current filter and clears it", async () => {
    const wrapper = mount(MessageFilters, { props: { filter: { direction: "down" } } });
    expect((wrapper.get("select[name=direction]").element as HTMLSelectElement).value).toBe("down");
    await wrapper.findAll("button").find((b) => b.text() === "Clear filter")?.trigger("click");
    expect(wrapper.emitted("apply")?.[0]).toEqual([{}]);
  });
});

describe("MessageConfirm", () => {
  const props = { title: "Delete?", text: "All 3 messages", confirmLabel: "Delete messages", busy: false, error: "" };

  it("closes with Escape and confirms with its button", async () => {
    const wrapper = mount(MessageConfirm, { props, attachTo: document.body });
    await wrapper.get("[role=alertdialog]").trigger("keydown", { key: "Escape" });
    expect(wrapper.emitted("cancel")).toHaveLength(1);
    await wrapper.findAll("button").find((b) => b.text() === "Delete messages")?.trigger("click");
    expect(wrapper.emitted("confirm")).toHaveLength(1);
    wrapper.unmount();
  });

  it("shows the error and waits while busy", () => {
    const wrapper = mount(MessageConfirm, { props: { ...props, busy: true, error: "Your role may not delete" } });
    expect(wrapper.get("[role=alert]").text()).toContain("Your role may not delete");
    expect(wrapper.findAll("button").every((b) => b.attributes("disabled") !== undefined)).toBe(true);
  });
});

describe("MessageExport", () => {
  it("downloads the export under a good name", async () => {
    const api = fakeApi({ "GET /v1/messages/export": new Response("a,b\n") });
    URL.createObjectURL = vi.fn(() => "blob:x");
    URL.revokeObjectURL = vi.fn();
    const names: string[] = [];
    vi.spyOn(HTMLAnchorElement.prototype, "click").mockImplementation(function (this: HTMLAnchorElement) {
      names.push(this.download);
    });
    const wrapper = mount(MessageExport, {
      props: { scope: { deviceId: "d1" }, filter: {}, what: "greenhouse" },
      global: { provide: apiProvide(api) },
    });
    await wrapper.findAll("button").find((b) => b.text() === "Export CSV")?.trigger("click");
    await vi.waitFor(() => expect(names).toHaveLength(1));
    expect(names[0]).toMatch(/^messages-greenhouse-\d{8}-\d{6}\.csv$/);
  });

  it("says when the role may not export", async () => {
    const api = fakeApi({ "GET /v1/messages/export": apiError(403, "forbidden", "x") });
    const wrapper = mount(MessageExport, {
      props: { scope: { deviceId: "d1" }, filter: {}, what: "d" },
      global: { provide: apiProvide(api) },
    });
    await wrapper.findAll("button").find((b) => b.text() === "Export NDJSON")?.trigger("click");
    await vi.waitFor(() => expect(wrapper.find("[role=alert]").exists()).toBe(true));
    expect(wrapper.get("[role=alert]").text()).toContain("Your role may not export messages");
  });
});
