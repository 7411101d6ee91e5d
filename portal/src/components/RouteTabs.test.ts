import { mount } from "@vue/test-utils";
import { describe, expect, it } from "vitest";
import { createMemoryHistory, createRouter } from "vue-router";
import DeviceTabs from "./DeviceTabs.vue";
import GroupTabs from "./GroupTabs.vue";

const Empty = { template: "<div />" };
const DEVICE = "/o/:orgId/g/:groupId/d/:deviceId";
const GROUP = "/o/:orgId/g/:groupId";

function router() {
  const names = ["device", "messages", "sessions", "downlinks"];
  return createRouter({
    history: createMemoryHistory(),
    routes: [
      ...names.map((name) => ({ path: `${DEVICE}/${name}`, name, component: Empty })),
      { path: `${DEVICE}/sessions/:sessionId`, name: "session", component: Empty },
      { path: `${GROUP}/devices`, name: "devices", component: Empty },
      { path: `${GROUP}/messages`, name: "group-messages", component: Empty },
      { path: `${GROUP}/callbacks`, name: "callbacks", component: Empty },
      { path: `${GROUP}/callbacks/:callbackId`, name: "callback", component: Empty },
    ],
  });
}

async function tabsAt(component: object, path: string) {
  const r = router();
  await r.push(path);
  const wrapper = mount(component, { global: { plugins: [r] } });
  return wrapper.findAll("a").map((a) => ({ text: a.text(), href: a.attributes("href"), current: a.attributes("aria-current") }));
}

describe("DeviceTabs and GroupTabs", () => {
  it("link a device's pages with its ids and mark Sessions on a session", async () => {
    const tabs = await tabsAt(DeviceTabs, "/o/1/g/2/d/3/sessions/44");
    expect(tabs.map((t) => t.text)).toEqual(["Overview", "Messages", "Sessions", "Downlinks"]);
    expect(tabs.map((t) => t.href)).toEqual([
      "/o/1/g/2/d/3/device",
      "/o/1/g/2/d/3/messages",
      "/o/1/g/2/d/3/sessions",
      "/o/1/g/2/d/3/downlinks",
    ]);
    expect(tabs.filter((t) => t.current === "page").map((t) => t.text)).toEqual(["Sessions"]);
  });

  it("link a group's pages and mark Callbacks on a callback", async () => {
    const tabs = await tabsAt(GroupTabs, "/o/1/g/2/callbacks/9");
    expect(tabs.map((t) => t.href)).toEqual(["/o/1/g/2/devices", "/o/1/g/2/messages", "/o/1/g/2/callbacks"]);
    expect(tabs.filter((t) => t.current === "page").map((t) => t.text)).toEqual(["Callbacks"]);
  });
});
