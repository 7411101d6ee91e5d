import { flushPromises, mount } from "@vue/test-utils";
import { afterEach, describe, expect, it, vi } from "vitest";
import { defineComponent } from "vue";
import { createMemoryHistory, createRouter } from "vue-router";
import { forgetMe } from "@/composables/useRole";
import { apiError, fakeApi, json, meWithRole, page, type FakeAnswer, type Routes } from "@/testing/fakeApi";
import { apiProvide } from "@/testing/mountWithApi";
import { openStream, storedMessage } from "@/testing/samples";
import MessagesPage from "./MessagesPage.vue";

const Blank = defineComponent({ template: "<div />" });
const DEVICE = "/organizations/o1/groups/g1/devices/d1";

function routerAt(path: string) {
  const names = ["device", "sessions", "downlinks", "devices", "callbacks", "callback"];
  const router = createRouter({
    history: createMemoryHistory(),
    routes: [
      {
        path: "/organizations/:orgId/groups/:groupId/devices/:deviceId/messages",
        name: "messages",
        component: MessagesPage,
        props: true,
      },
      { path: "/organizations/:orgId/groups/:groupId/messages", name: "group-messages", component: MessagesPage, props: true },
      ...names.map((name) => ({ path: `/${name}/:orgId/:groupId/:deviceId?/:callbackId?`, name, component: Blank })),
    ],
  });
  void router.push(path);
  return router;
}

function me(role: string): FakeAnswer {
  return meWithRole("o1", role, "o");
}

const newest = storedMessage({ id: "m2", created_at: "2026-11-27T12:00:02Z" });
const older = storedMessage({ id: "m1", created_at: "2026-11-27T12:00:01Z", type: "stats" });

async function mountPage(path: string, routes: Routes) {
  const api = fakeApi({
    "GET /v1/auth/me": me("member"),
    "GET /v1/devices/d1": json({ id: "d1", name: "greenhouse" }),
    "GET /v1/groups/g1": json({ id: "g1", name: "field" }),
    "GET /v1/devices": json([{ id: "d1", name: "greenhouse" }]),
    "GET /v1/messages": page([newest, older]),
    "GET /v1/messages/stream": () => openStream().response,
    ...routes,
  });
  const router = routerAt(path);
  await router.isReady();
  const wrapper = mount({ template: "<RouterView />" }, {
    attachTo: document.body,
    global: { plugins: [router], provide: apiProvide(api) },
  });
  await flushPromises();
  return { api, wrapper, router };
}

function button(wrapper: { findAll: (s: string) => { text(): string; trigger(e: string): Promise<void> }[] }, text: string) {
  const found = wrapper.findAll("button").find((b) => b.text() === text);
  if (!found) throw new Error(`no button ${text}`);
  return found;
}

afterEach(() => {
  forgetMe();
  document.body.innerHTML = "";
});

describe("MessagesPage", () => {
  it("lists the device's messages with the URL's filter and goes live after the newest", async () => {
    const { api, wrapper } = await mountPage(`${DEVICE}/messages?type=data&direction=up`, {});
    expect(wrapper.get("h1").text()).toBe("Messages of greenhouse");
    expect(wrapper.findAll("tbody.message")).toHaveLength(2);
    const list = api.urls().find((url) => url.startsWith("/v1/messages?")) ?? "";
    expect(list).toContain("device_id=d1");
    expect(list).toContain("type=data");
    expect(list).toContain("direction=up");
    await vi.waitFor(() => expect(api.urls().some((url) => url.startsWith("/v1/messages/stream"))).toBe(true));
    expect(api.urls().find((url) => url.startsWith("/v1/messages/stream"))).toBe("/v1/messages/stream?device_id=d1&last_event_id=m2");
  });

  it("puts new live messages that match the filter on top, highlighted", async () => {
    const server = openStream();
    const { wrapper } = await mountPage(`${DEVICE}/messages?type=data`, { "GET /v1/messages/stream": () => server.response });
    await vi.waitFor(() => expect(wrapper.text()).toContain("Live"));
    const fresh = storedMessage({ id: "m3", created_at: "2026-11-27T12:00:03Z" });
    const other = storedMessage({ id: "m4", created_at: "2026-11-27T12:00:04Z", type: "stats" });
    for (const m of [fresh, other]) server.push(`id: ${m.id}\ndata: ${JSON.stringify(m)}\n\n`);
    await vi.waitFor(() => expect(wrapper.findAll("tbody.message")).toHaveLength(3));
    const first = wrapper.get("tbody.message");
    expect(first.attributes("data-message-id")).toBe("m3");
    expect(first.classes()).toContain("fresh");
  });

  it("keeps the live tail off with a before filter", async () => {
    const { api, wrapper } = await mountPage(`${DEVICE}/messages?before=2026-11-27T00:00:00Z`, {});
    expect(wrapper.text()).toContain("Live updates are off");
    expect(api.urls().some((url) => url.startsWith("/v1/messages/stream"))).toBe(false);
  });

  it("applies a filter through the URL", async () => {
    const { wrapper, router } = await mountPage(`${DEVICE}/messages`, {});
    await wrapper.get("select[name=direction]").setValue("down");
    await wrapper.get("form").trigger("submit");
    await flushPromises();
    expect(router.currentRoute.value.query).toEqual({ direction: "down" });
  });

  it("deletes the filtered set after a confirmation that says what goes", async () => {
    const deleted = vi.fn(() => json({ deleted: 2 }));
    const { api, wrapper } = await mountPage(`${DEVICE}/messages?type=data`, {
      "DELETE /v1/messages": deleted,
    });
    await button(wrapper, "Delete filtered…").trigger("click");
    const dialog = wrapper.get("[role=alertdialog]");
    expect(dialog.text()).toContain("All 2 messages of device greenhouse (of type data)");
    await button(wrapper, "Delete messages").trigger("click");
    await flushPromises();
    expect(deleted).toHaveBeenCalledOnce();
    expect(api.callsTo("DELETE /v1/messages").map((call) => call.url)).toEqual(["/v1/messages?device_id=d1&type=data"]);
    expect(wrapper.text()).toContain("Deleted 2 messages.");
    expect(wrapper.find("[role=alertdialog]").exists()).toBe(false);
  });

  it("deletes one message and tells a refused role why", async () => {
    let allowed = false;
    const { wrapper } = await mountPage(`${DEVICE}/messages`, {
      "GET /v1/messages/m2/deliveries": page([]),
      "DELETE /v1/messages/m2": () => (allowed ? { status: 204 } : apiError(403, "forbidden", "no")),
    });
    await wrapper.get("button.row-toggle").trigger("click");
    await flushPromises();
    await button(wrapper, "Delete this message").trigger("click");
    await button(wrapper, "Delete message").trigger("click");
    await flushPromises();
    expect(wrapper.get("[role=alertdialog] [role=alert]").text()).toContain("Your role may not delete messages");
    allowed = true;
    await button(wrapper, "Delete message").trigger("click");
    await flushPromises();
    expect(wrapper.findAll("tbody.message").map((row) => row.attributes("data-message-id"))).toEqual(["m1"]);
  });

  it("shows the device column on a group's page and hides delete from viewers", async () => {
    const { wrapper } = await mountPage("/organizations/o1/groups/g1/messages", { "GET /v1/auth/me": me("viewer") });
    expect(wrapper.get("h1").text()).toBe("Messages of field");
    expect(wrapper.findAll("th").map((th) => th.text())).toContain("Device");
    expect(wrapper.get("tbody.message").text()).toContain("greenhouse");
    expect(wrapper.text()).not.toContain("Delete all…");
  });

  it("shows the empty state of a filter", async () => {
    const { wrapper } = await mountPage(`${DEVICE}/messages?since=2030-01-01T00:00:00Z`, {
      "GET /v1/messages": page([]),
    });
    expect(wrapper.text()).toContain("No messages match this filter.");
  });
});
