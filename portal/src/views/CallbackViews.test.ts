import { flushPromises, mount } from "@vue/test-utils";
import { afterEach, describe, expect, it } from "vitest";
import { createMemoryHistory, createRouter, type Router } from "vue-router";
import { forgetMe } from "@/composables/useRole";
import { apiError, fakeApi, json, meWithRole, type FakeAnswer, type Routes } from "@/testing/fakeApi";
import { apiProvide } from "@/testing/mountWithApi";
import { storedCallback } from "@/testing/samples";
import CallbackEditor from "./CallbackEditor.vue";
import CallbacksPage from "./CallbacksPage.vue";

afterEach(forgetMe);

function me(role: string): FakeAnswer {
  return meWithRole("o1", role, "one");
}

const PREVIEW = json({ original: { id: "m1", data: { t: 1 } }, transformed: { t: 1 }, skipped: false, error: null });
const EMPTY = json([], 200, { "x-total": "0" });

async function setup(component: unknown, path: string, routes: Routes): Promise<{ router: Router; api: ReturnType<typeof fakeApi>; wrapper: ReturnType<typeof mount> }> {
  const api = fakeApi({ "GET /v1/messages": EMPTY, "POST /v1/groups/g1/callbacks/preview": PREVIEW, ...routes });
  const stub = { template: "<div />" };
  const router = createRouter({
    history: createMemoryHistory(),
    routes: [
      { path: "/o/:orgId/g/:groupId/callbacks", name: "callbacks", component: stub, props: true },
      { path: "/o/:orgId/g/:groupId/callbacks/new", name: "callback-new", component: stub, props: true },
      { path: "/o/:orgId/g/:groupId/callbacks/:callbackId", name: "callback", component: stub, props: true },
      { path: "/o/:orgId/g/:groupId/devices", name: "devices", component: stub },
      { path: "/o/:orgId/g/:groupId/messages", name: "group-messages", component: stub },
    ],
  });
  await router.push(path);
  const params = router.currentRoute.value.params as Record<string, string>;
  const wrapper = mount(component as Parameters<typeof mount>[0], {
    props: params as never,
    global: { plugins: [router], provide: apiProvide(api) },
  });
  await flushPromises();
  return { router, api, wrapper };
}

describe("CallbacksPage", () => {
  it("lists the group's callbacks with their endpoint and health, and offers a new one to members", async () => {
    const failing = { ...storedCallback, state: "failing", failure_streak: 4 };
    const { wrapper } = await setup(CallbacksPage, "/o/o1/g/g1/callbacks", {
      "GET /v1/auth/me": me("member"),
      "GET /v1/groups/g1/callbacks": json([failing], 200, { "x-total": "1" }),
    });
    const row = wrapper.find("tbody tr").text();
    expect(row).toContain("farm");
    expect(row).toContain("POST https://farm.example.com/in");
    expect(row).toContain("failing (4 in a row)");
    expect(wrapper.find("a.callbacks-new").exists()).toBe(true);
  });

  it("offers no new callback to viewers", async () => {
    const { wrapper } = await setup(CallbacksPage, "/o/o1/g/g1/callbacks", {
      "GET /v1/auth/me": me("viewer"),
      "GET /v1/groups/g1/callbacks": EMPTY,
    });
    expect(wrapper.text()).toContain("No callbacks in this group yet.");
    expect(wrapper.find("a.callbacks-new").exists()).toBe(false);
  });
});

describe("CallbackEditor", () => {
  it("checks the form before asking the API", async () => {
    const { api, wrapper } = await setup(CallbackEditor, "/o/o1/g/g1/callbacks/new", { "GET /v1/auth/me": me("member") });
    await wrapper.find("form").trigger("submit");
    await flushPromises();
    expect(wrapper.text()).toContain("Name the callback.");
    expect(wrapper.text()).toContain("Enter the endpoint's URL.");
    expect(api.callsTo("POST /v1/groups/g1/callbacks")).toHaveLength(0);
  });

  it("creates a callback and shows the API's 422 at its field", async () => {
    let created: unknown = null;
    const { wrapper } = await setup(CallbackEditor, "/o/o1/g/g1/callbacks/new", {
      "GET /v1/auth/me": me("member"),
      "POST /v1/groups/g1/callbacks": ({ body }) => {
        created = body;
        return apiError(422, "validation_error", "url: the URL has no host", { field: "url", position: 8, code: "invalid_url" });
      },
    });
    await wrapper.find("#callback-name").setValue("farm");
    await wrapper.find("#callback-url").setValue("https://x.example/{{a}}");
    await wrapper.find("form").trigger("submit");
    await flushPromises();
    expect(created).toMatchObject({ name: "farm", url: "https://x.example/{{a}}", method: "POST", triggers: ["data"], secret: null });
    const url = wrapper.find("#callback-url").element.closest("label");
    expect(url?.textContent).toContain("the URL has no host");
  });

  it("saves only the changed fields, and stops when someone else saved in between", async () => {
    let version = 3;
    const patches: unknown[] = [];
    const { wrapper } = await setup(CallbackEditor, "/o/o1/g/g1/callbacks/c1", {
      "GET /v1/auth/me": me("admin"),
      "GET /v1/callbacks/c1/deliveries": EMPTY,
      "GET /v1/callbacks/c1": () => json({ ...storedCallback, version }),
      "PATCH /v1/callbacks/c1": ({ body }) => {
        patches.push(body);
        return json({ ...storedCallback, ...(body as object), version: version + 1 });
      },
    });
    expect(wrapper.find("h1").text()).toBe("farm");
    await wrapper.find("#callback-name").setValue("farm 2");
    version = 4;
    await wrapper.find("form").trigger("submit");
    await flushPromises();
    expect(patches).toEqual([]);
    expect(wrapper.text()).toContain("Someone changed this callback since you opened it (version 3 → 4).");
    await wrapper.findAll("button").find((b) => b.text() === "Save mine anyway")?.trigger("click");
    await flushPromises();
    expect(patches).toEqual([{ name: "farm 2" }]);
    expect(wrapper.text()).toContain("Saved.");
  });

  it("tells a member that the secret needs admin access when the API refuses", async () => {
    const { wrapper } = await setup(CallbackEditor, "/o/o1/g/g1/callbacks/c1", {
      "GET /v1/auth/me": me("member"),
      "GET /v1/callbacks/c1/deliveries": EMPTY,
      "GET /v1/callbacks/c1": json(storedCallback),
      "PATCH /v1/callbacks/c1": apiError(403, "forbidden", "no"),
    });
    expect(wrapper.text()).toContain("Only admins may change the secret.");
    await wrapper.find("#callback-enabled").setValue(false);
    await wrapper.find("form").trigger("submit");
    await flushPromises();
    expect(wrapper.find("[role=alert]").text()).toBe("Your role may not change callbacks.");
  });
});
