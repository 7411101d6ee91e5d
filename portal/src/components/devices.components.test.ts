import { flushPromises, mount } from "@vue/test-utils";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createMemoryHistory } from "vue-router";
import { memoryTokenStore } from "@/api";
import { forgetMe } from "@/composables/useRole";
import { makeRouter } from "@/router";
import { apiError, fakeApi, json, meWithRole, type Answer, type Routes } from "@/testing/fakeApi";
import { apiProvide } from "@/testing/mountWithApi";
import { aDevice } from "@/testing/samples";
import AddDeviceForm from "./AddDeviceForm.vue";
import BreadCrumbs from "./BreadCrumbs.vue";
import CodecName from "./CodecName.vue";
import DeleteDevice from "./DeleteDevice.vue";
import DeviceHeatMap from "./DeviceHeatMap.vue";
import DeviceSecrets from "./DeviceSecrets.vue";
import GlobalSearch from "./GlobalSearch.vue";
import HeatMap from "./HeatMap.vue";

afterEach(() => {
  forgetMe();
  vi.useRealTimers();
});

function withClient(routes: Routes) {
  const api = fakeApi(routes);
  return { api, calls: api.calls, global: { provide: apiProvide(api) } };
}

const me = meWithRole("o1", "admin", "one");

describe("HeatMap", () => {
  it("draws every past day and tells the total", () => {
    const now = Date.parse("2026-11-27T12:00:00Z");
    const wrapper = mount(HeatMap, { props: { counts: [{ date: "2026-11-27", count: 3 }], weeks: 2, now } });
    expect(wrapper.findAll("rect")).toHaveLength(12); // 14 days, Saturday and Sunday still to come
    expect(wrapper.find("svg").attributes("data-total")).toBe("3");
    expect(wrapper.find("svg").attributes("aria-label")).toBe("3 messages from 2026-11-16 to 2026-11-27");
    expect(wrapper.find("rect.level-4 title").text()).toBe("2026-11-27: 3 messages");
  });

  it("keeps its size while the counts load", () => {
    const wrapper = mount(HeatMap, { props: { counts: null, weeks: 13, cell: 6 } });
    expect(wrapper.find("svg").attributes("width")).toBe("102");
    expect(wrapper.find("svg").attributes("data-total")).toBeUndefined();
    expect(wrapper.find("svg").classes()).toContain("pending");
  });
});

describe("DeviceHeatMap", () => {
  /** An IntersectionObserver the test scrolls: `show()` brings every observed row into view. */
  function fakeViewport() {
    const observers: { callback: IntersectionObserverCallback; targets: Element[] }[] = [];
    vi.stubGlobal(
      "IntersectionObserver",
      class {
        private readonly entry: { callback: IntersectionObserverCallback; targets: Element[] };
        constructor(callback: IntersectionObserverCallback) {
          this.entry = { callback, targets: [] };
          observers.push(this.entry);
        }
        observe(target: Element) {
          this.entry.targets.push(target);
        }
        disconnect() {
          this.entry.targets = [];
        }
      },
    );
    return () => {
      for (const { callback, targets } of observers) {
        const entries = targets.map((target) => ({ isIntersecting: true, target }) as IntersectionObserverEntry);
        if (entries.length > 0) callback(entries, {} as IntersectionObserver);
      }
    };
  }

  afterEach(() => vi.unstubAllGlobals());

  it("asks the device's counts only once its row is in view, and again when it talks", async () => {
    const show = fakeViewport();
    const { calls, global } = withClient({
      "GET /v1/devices/d1/message-counts": json([{ date: new Date().toISOString().slice(0, 10), count: 5 }]),
    });
    const wrapper = mount(DeviceHeatMap, { props: { deviceId: "d1", version: null }, global });
    await flushPromises();
    expect(calls).toHaveLength(0);
    show();
    await flushPromises();
    expect(calls[0]?.url).toMatch(/^\/v1\/devices\/d1\/message-counts\?since=/);
    expect(wrapper.find("svg").attributes("data-total")).toBe("5");
    await wrapper.setProps({ version: "2026-11-27T12:00:00Z" });
    await flushPromises();
    expect(calls).toHaveLength(2);
  });

  it("shows a dash with the reason when the counts fail", async () => {
    const show = fakeViewport();
    const { global } = withClient({ "GET /v1/devices/d1/message-counts": apiError(403, "forbidden", "no") });
    const wrapper = mount(DeviceHeatMap, { props: { deviceId: "d1" }, global });
    show();
    await flushPromises();
    expect(wrapper.find("svg").exists()).toBe(false);
    expect(wrapper.text()).toContain("Your role may not read this device's messages");
  });
});

describe("AddDeviceForm", () => {
  async function fill(wrapper: ReturnType<typeof mount>, values: Record<string, string>) {
    for (const [name, value] of Object.entries(values)) await wrapper.find(`input[name=${name}]`).setValue(value);
  }

  it("checks the fields before sending", async () => {
    const { calls, global } = withClient({ "POST /v1/devices": json({}) });
    const wrapper = mount(AddDeviceForm, { props: { groupId: "g1" }, global });
    await fill(wrapper, { serial: "abc", claim_token: "short" });
    await wrapper.find("form").trigger("submit");
    expect(calls).toHaveLength(0);
    expect(wrapper.text()).toContain("32 hexadecimal digits.");
    expect(wrapper.find("input[name=serial]").attributes("aria-invalid")).toBe("true");
  });

  it("sends the device and tells it was added", async () => {
    const { calls, global } = withClient({ "POST /v1/devices": json({ ...aDevice }, 201) });
    const wrapper = mount(AddDeviceForm, { props: { groupId: "g1" }, global });
    await fill(wrapper, { serial: "hsn:2159000001", name: " greenhouse ", claim_token: "AB".repeat(16), psk: "" });
    await wrapper.find("form").trigger("submit");
    await flushPromises();
    expect(calls[0]?.body).toEqual({ group_id: "g1", serial: 2159000001, claim_token: "ab".repeat(16), name: "greenhouse" });
    expect(wrapper.emitted("added")?.[0]).toEqual([aDevice]);
    expect((wrapper.find("input[name=serial]").element as HTMLInputElement).value).toBe("");
  });

  it("shows the API's 422 details at their fields and a 409 above the buttons", async () => {
    const { api, global } = withClient({
      "POST /v1/devices": apiError(422, "validation_error", "invalid", [{ loc: ["body", "psk"], msg: "PSK refused", type: "x" }]),
    });
    const wrapper = mount(AddDeviceForm, { props: { groupId: "g1" }, global });
    await fill(wrapper, { serial: "7", claim_token: "00".repeat(16) });
    await wrapper.find("form").trigger("submit");
    await flushPromises();
    expect(wrapper.find("#add-psk-error").text()).toBe("PSK refused");
    api.on("POST /v1/devices", apiError(409, "conflict", "the serial number 7 is taken"));
    await wrapper.find("form").trigger("submit");
    await flushPromises();
    expect(wrapper.find("[role=alert]").text()).toBe("the serial number 7 is taken");
    expect(wrapper.find("#add-psk-error").exists()).toBe(false);
  });
});

describe("DeviceSecrets", () => {
  it("asks for the secrets only on click, and hides them again", async () => {
    const { calls, global } = withClient({ "POST /v1/devices/d1/reveal": json({ claim_token: "cafe".repeat(8), psk: null }) });
    const wrapper = mount(DeviceSecrets, { props: { deviceId: "d1" }, global });
    expect(calls).toHaveLength(0);
    await wrapper.find("button").trigger("click");
    await flushPromises();
    expect(calls[0]).toMatchObject({ method: "POST", url: "/v1/devices/d1/reveal" });
    expect(wrapper.text()).toContain("cafe".repeat(8));
    expect(wrapper.text()).toContain("none");
    await wrapper.find("button").trigger("click");
    expect(wrapper.text()).not.toContain("cafe".repeat(8));
  });

  it("says a role may not when the API answers 403", async () => {
    const { global } = withClient({ "POST /v1/devices/d1/reveal": apiError(403, "forbidden", "admin access needed") });
    const wrapper = mount(DeviceSecrets, { props: { deviceId: "d1" }, global });
    await wrapper.find("button").trigger("click");
    await flushPromises();
    expect(wrapper.find("[role=alert]").text()).toBe("Your role may not reveal device secrets in this organization.");
  });
});

describe("DeleteDevice", () => {
  it("asks first, Escape backs out, the second button deletes", async () => {
    const { calls, global } = withClient({ "DELETE /v1/devices/d1": { status: 204 } });
    const wrapper = mount(DeleteDevice, { props: { deviceId: "d1", name: "greenhouse" }, global, attachTo: document.body });
    await wrapper.find("button").trigger("click");
    await flushPromises();
    expect(wrapper.text()).toContain("Delete greenhouse?");
    expect(document.activeElement?.textContent).toBe("Cancel");
    await wrapper.find("[role=alertdialog]").trigger("keydown", { key: "Escape" });
    expect(wrapper.find("[role=alertdialog]").exists()).toBe(false);
    expect(calls).toHaveLength(0);
    await wrapper.find("button").trigger("click");
    await wrapper.find("button.danger").trigger("click");
    await flushPromises();
    expect(calls[0]).toMatchObject({ method: "DELETE", url: "/v1/devices/d1" });
    expect(wrapper.emitted("deleted")).toHaveLength(1);
    wrapper.unmount();
  });
});

describe("CodecName", () => {
  it("names the codec of a hash, or says none has it", async () => {
    const { global } = withClient({
      "GET /v1/codecs/by-hash/0123456789abcdef": json({ id: "c1", name: "demo decoder", hash: "0123456789abcdef" }),
      "GET /v1/codecs/by-hash/fedcba9876543210": apiError(404, "not_found", "codec not found"),
    });
    const wrapper = mount(CodecName, { props: { hash: "0123456789abcdef", organizationId: "o1" }, global });
    await flushPromises();
    expect(wrapper.text()).toContain("demo decoder");
    await wrapper.setProps({ hash: "fedcba9876543210" });
    await flushPromises();
    expect(wrapper.text()).toContain("no codec has this hash");
  });
});

describe("BreadCrumbs", () => {
  it("shows a device in no group under (no group), without asking for a group", async () => {
    const router = makeRouter(memoryTokenStore("t"), createMemoryHistory());
    const { calls, global } = withClient({
      "GET /v1/organizations/o1": json({ id: "o1", name: "one" }),
      "GET /v1/devices/d1": json({ ...aDevice, group_id: null }),
    });
    await router.push("/organizations/o1/groups/-/devices/d1");
    const wrapper = mount(BreadCrumbs, { global: { ...global, plugins: [router] } });
    await flushPromises();
    expect(wrapper.findAll("li").map((li) => li.text())).toEqual(["Organizations", "one", "(no group)", "greenhouse"]);
    expect(calls.some((call) => call.url.startsWith("/v1/groups/"))).toBe(false);
  });
});

describe("GlobalSearch", () => {
  async function searching(answer: () => Answer) {
    vi.useFakeTimers();
    const router = makeRouter(memoryTokenStore("t"), createMemoryHistory());
    await router.push("/organizations");
    const { calls, global } = withClient({ "GET /v1/auth/me": me, "GET /v1/devices": () => answer() });
    const wrapper = mount(GlobalSearch, { global: { ...global, plugins: [router] }, attachTo: document.body });
    const input = wrapper.find("input");
    await input.trigger("focus");
    (input.element as HTMLInputElement).focus();
    return { wrapper, input, calls, router };
  }

  it("lists matches after a pause, moves with the arrows and opens with Enter", async () => {
    const other = { ...aDevice, id: "d2", name: "cellar", serial: 2159000002, label: "hsn:2159000002", group_id: null };
    const { wrapper, input, calls, router } = await searching(() => json([aDevice, other]));
    await input.setValue("hsn:2159");
    expect(calls.filter((call) => call.url.startsWith("/v1/devices"))).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(300);
    await flushPromises();
    expect(calls.find((call) => call.url.startsWith("/v1/devices"))?.url).toBe(
      "/v1/devices?q=2159&sort_field=last_seen_at&sort_order=desc&limit=8",
    );
    expect(input.attributes("aria-expanded")).toBe("true");
    expect(wrapper.findAll("[role=option]")).toHaveLength(2);
    await input.trigger("keydown", { key: "ArrowDown" });
    await input.trigger("keydown", { key: "ArrowDown" });
    expect(input.attributes("aria-activedescendant")).toBe("global-search-option-1");
    expect(wrapper.findAll("[role=option]")[1]?.attributes("aria-selected")).toBe("true");
    await input.trigger("keydown", { key: "Enter" });
    await flushPromises();
    expect(router.currentRoute.value.fullPath).toBe("/organizations/o1/groups/-/devices/d2");
    wrapper.unmount();
  });

  it("closes on Escape, then clears", async () => {
    const { wrapper, input } = await searching(() => json([aDevice]));
    await input.setValue("green");
    await vi.advanceTimersByTimeAsync(300);
    await flushPromises();
    expect(input.attributes("aria-expanded")).toBe("true");
    await input.trigger("keydown", { key: "Escape" });
    expect(input.attributes("aria-expanded")).toBe("false");
    await input.trigger("keydown", { key: "Escape" });
    expect((input.element as HTMLInputElement).value).toBe("");
    wrapper.unmount();
  });

  it("says when nothing matches or the search fails", async () => {
    let answer = json([]);
    const { wrapper, input } = await searching(() => answer);
    await input.setValue("nothing");
    await vi.advanceTimersByTimeAsync(300);
    await flushPromises();
    expect(wrapper.find("[role=status]").text()).toBe("No device matches.");
    answer = apiError(422, "validation_error", "q: too long");
    await input.setValue("nothing else");
    await vi.advanceTimersByTimeAsync(300);
    await flushPromises();
    expect(wrapper.find("[role=status]").text()).toBe("Search failed: q: too long");
    wrapper.unmount();
  });

  it("takes the focus on / unless one types elsewhere", async () => {
    const { wrapper, input } = await searching(() => json([]));
    (input.element as HTMLInputElement).blur();
    document.body.dispatchEvent(new KeyboardEvent("keydown", { key: "/", bubbles: true }));
    expect(document.activeElement).toBe(input.element);
    wrapper.unmount();
  });
});
