import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { forgetMe } from "@/composables/useRole";
import { apiError, fakeApi, meWithRole, page, type FakeApi } from "@/testing/fakeApi";
import { mountWithApi } from "@/testing/mountWithApi";
import DownlinksPage from "./DownlinksPage.vue";

const downlink = (id: string, state: string, extra: Record<string, unknown> = {}) => ({
  id,
  organization_id: "o1",
  device_id: "d1",
  kind: "shell",
  request: ["app config show"],
  state,
  attempts: state === "pending" ? 0 : 1,
  created_at: "2026-11-27T12:00:00Z",
  updated_at: "2026-11-27T12:00:00Z",
  sent_at: null,
  delivered_at: null,
  expires_at: "2026-12-04T12:00:00Z",
  reply_message_id: null,
  reply: null,
  ...extra,
});

const answered = downlink("x1", "delivered", {
  reply_message_id: "m1",
  reply: { id: "ab", results: [{ command: "app config show", output: ["app config interval 60"] }] },
});

function setup(role: string, list: unknown[]): FakeApi {
  return fakeApi({
    "GET /v1/auth/me": meWithRole("o1", role),
    "GET /v1/devices/d1/downlinks": page(list),
  });
}

const props = { orgId: "o1", groupId: "g1", deviceId: "d1" };

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval"] });
});

afterEach(() => {
  vi.useRealTimers();
  forgetMe();
  document.body.innerHTML = "";
});

async function flush(): Promise<void> {
  for (let i = 0; i < 5; i += 1) await vi.advanceTimersByTimeAsync(0);
}

describe("DownlinksPage", () => {
  it("hides the form from viewers and offers them no cancel", async () => {
    const wrapper = mountWithApi(DownlinksPage, setup("viewer", [downlink("x1", "pending")]), props, { DeviceTabs: true });
    await flush();
    expect(wrapper.find("form[aria-label='Queue a downlink']").exists()).toBe(false);
    expect(wrapper.find("tbody tr").text()).toContain("pending");
    expect(wrapper.find("tbody button").exists()).toBe(false);
  });

  it("refreshes while a downlink is pending and shows the answer when it comes, then stops", async () => {
    const api = setup("member", [downlink("x1", "pending")]);
    const wrapper = mountWithApi(DownlinksPage, api, props, { DeviceTabs: true });
    await flush();
    expect(wrapper.text()).toContain("waiting for the device");
    api.on("GET /v1/devices/d1/downlinks", page([answered]));
    await vi.advanceTimersByTimeAsync(2000);
    await flush();
    expect(wrapper.find("tbody tr").attributes("data-state")).toBe("delivered");
    expect(wrapper.find(".reply").text()).toContain("$ app config show");
    expect(wrapper.find(".reply").text()).toContain("app config interval 60");
    const polls = api.callsTo("GET /v1/devices/d1/downlinks").length;
    await vi.advanceTimersByTimeAsync(60_000);
    expect(api.callsTo("GET /v1/devices/d1/downlinks")).toHaveLength(polls);
  });

  it("polls slower while nothing changes", async () => {
    const api = setup("member", [downlink("x1", "sent")]);
    mountWithApi(DownlinksPage, api, props, { DeviceTabs: true });
    await flush();
    const count = () => api.callsTo("GET /v1/devices/d1/downlinks").length;
    await vi.advanceTimersByTimeAsync(2000);
    expect(count()).toBe(2);
    await vi.advanceTimersByTimeAsync(2000);
    expect(count()).toBe(2); // the next is 3 s after the last
    await vi.advanceTimersByTimeAsync(1000);
    expect(count()).toBe(3);
  });

  it("cancels one and shows the API's 409 when it was delivered meanwhile", async () => {
    const api = setup("member", [downlink("x1", "sent")]);
    api.on("POST /v1/downlinks/x1/cancel", apiError(409, "conflict", "the downlink is delivered: only pending or sent downlinks can be cancelled"));
    const wrapper = mountWithApi(DownlinksPage, api, props, { DeviceTabs: true });
    await flush();
    api.on("GET /v1/devices/d1/downlinks", page([answered]));
    await wrapper.find("tbody button").trigger("click");
    await flush();
    expect(api.callsTo("POST /v1/downlinks/x1/cancel")).toHaveLength(1);
    expect(wrapper.find("[role=alert]").text()).toContain("the downlink is delivered");
    expect(wrapper.find("tbody tr").attributes("data-state")).toBe("delivered");
  });

  it("reloads the list after queueing", async () => {
    const api = setup("member", []);
    api.on("POST /v1/devices/d1/downlinks", { status: 201, body: downlink("x2", "pending") });
    const wrapper = mountWithApi(DownlinksPage, api, props, { DeviceTabs: true });
    await flush();
    expect(wrapper.text()).toContain("No downlinks for this device yet.");
    api.on("GET /v1/devices/d1/downlinks", page([downlink("x2", "pending")]));
    await wrapper.find("textarea").setValue("app config show");
    await wrapper.find("form").trigger("submit");
    await flush();
    expect(wrapper.find("tbody tr").attributes("data-state")).toBe("pending");
  });
});
