import { flushPromises, mount } from "@vue/test-utils";
import { afterEach, describe, expect, it } from "vitest";
import { createMemoryHistory } from "vue-router";
import { memoryTokenStore } from "@/api";
import { forgetMe } from "@/composables/useRole";
import { makeRouter } from "@/router";
import { fakeApi, json, meWithRole, type FakeAnswer, type Routes } from "@/testing/fakeApi";
import { apiProvide } from "@/testing/mountWithApi";
import { aDevice } from "@/testing/samples";
import DevicesPage from "./DevicesPage.vue";
import SessionLogPage from "./SessionLogPage.vue";

afterEach(forgetMe);

const GROUP = "/organizations/o1/groups/g1/devices";

function meAs(role: string): FakeAnswer {
  return meWithRole("o1", role, "one");
}

async function mountPage(component: unknown, props: Record<string, string>, routes: Routes, path: string) {
  const api = fakeApi(routes);
  const router = makeRouter(memoryTokenStore("t"), createMemoryHistory());
  await router.push(path);
  const options = { props, global: { provide: apiProvide(api), plugins: [router] } };
  const wrapper = mount(component as never, options as never);
  await flushPromises();
  return { wrapper, calls: api.calls };
}

describe("DevicesPage", () => {
  const devices = (role: string): Routes => ({
    "GET /v1/auth/me": meAs(role),
    "GET /v1/devices": json([aDevice], 200, { "x-total": "1" }),
  });

  it("lists the group's devices with their serial and last seen", async () => {
    const { wrapper } = await mountPage(DevicesPage, { orgId: "o1", groupId: "g1" }, devices("member"), GROUP);
    const row = wrapper.find("tbody tr");
    expect(row.text()).toContain("greenhouse");
    expect(row.text()).toContain("hsn:2159000001");
    expect(row.find(".last-seen").text()).toBe("never");
    expect(wrapper.findAll("button").some((b) => b.text() === "Add device")).toBe(true);
  });

  it("hides adding from viewers", async () => {
    const { wrapper } = await mountPage(DevicesPage, { orgId: "o1", groupId: "g1" }, devices("viewer"), GROUP);
    expect(wrapper.find("tbody tr").exists()).toBe(true);
    expect(wrapper.findAll("button").some((b) => b.text() === "Add device")).toBe(false);
  });

  it("filters by enabled through the API", async () => {
    const { wrapper, calls } = await mountPage(DevicesPage, { orgId: "o1", groupId: "g1" }, devices("member"), GROUP);
    await wrapper.find("select[name=enabled]").setValue("false");
    await flushPromises();
    expect(calls.some((call) => call.url.includes("enabled=false"))).toBe(true);
  });

  it("asks no group for a device in no group", async () => {
    const { wrapper, calls } = await mountPage(DevicesPage, { orgId: "o1", groupId: "-" }, devices("member"), "/organizations/o1/groups/-/devices");
    expect(wrapper.text()).toContain("These devices are in no group");
    expect(calls.some((call) => call.url.startsWith("/v1/devices?"))).toBe(false);
  });
});

describe("SessionLogPage", () => {
  const entry = (id: number, direction: "in" | "out", outcome: string) => ({
    id,
    at: "2026-11-27T12:00:05.123Z",
    session_id: 9,
    device_id: "d1",
    direction,
    envelope: "base64",
    remote: "127.0.0.1:5000",
    flags: 12,
    flags_text: "[FLxx]",
    seq: 0,
    size: 240,
    outcome,
    detail: null,
    message_id: id === 1 ? "0123abcd-0000-0000-0000-000000000000" : null,
  });
  const route: Routes = {
    "GET /v1/sessions/9": json({
      id: 9, device_id: "d1", organization_id: "o1", envelope: "base64", remote_address: "127.0.0.1", remote_port: 5000,
      started_at: "2026-11-27T12:00:00Z", last_activity_at: "2026-11-27T12:00:06Z", ended_at: null, end_reason: null,
      packets_in: 2, packets_out: 1, bytes_in: 480, bytes_out: 20, messages_in: 1, messages_out: 0,
      attributes: { vendor: "HARDWARIO" },
    }),
    "GET /v1/sessions/9/log": json([entry(1, "in", "accepted"), entry(2, "out", "ack"), entry(3, "in", "bad_mac")], 200, {
      "x-total": "3",
    }),
  };

  it("shows the counters, the attributes and the log with trouble marked", async () => {
    const props = { orgId: "o1", groupId: "g1", deviceId: "d1", sessionId: "9" };
    const { wrapper } = await mountPage(SessionLogPage, props, route, "/organizations/o1/groups/g1/devices/d1/sessions/9");
    expect(wrapper.text()).toContain("2 / 1");
    expect(wrapper.text()).toContain("HARDWARIO");
    const rows = wrapper.findAll("table.log tbody tr");
    expect(rows).toHaveLength(3);
    expect(rows[0]?.text()).toContain("[FLxx]");
    expect(rows[0]?.find("a").text()).toBe("0123abcd");
    expect(rows[2]?.classes()).toContain("trouble");
    expect(rows[0]?.classes()).not.toContain("trouble");
  });

  it("asks the API for one direction and one outcome", async () => {
    const props = { orgId: "o1", groupId: "g1", deviceId: "d1", sessionId: "9" };
    const { wrapper, calls } = await mountPage(SessionLogPage, props, route, "/organizations/o1/groups/g1/devices/d1/sessions/9");
    await wrapper.find("select[name=direction]").setValue("out");
    await wrapper.find("select[name=outcome]").setValue("ack");
    await flushPromises();
    expect(calls.at(-1)?.url).toBe("/v1/sessions/9/log?direction=out&outcome=ack&sort_order=asc&offset=0&limit=100");
  });
});
