import { flushPromises, mount, RouterLinkStub } from "@vue/test-utils";
import { describe, expect, it } from "vitest";
import { apiError, fakeApi, page, type Routes } from "@/testing/fakeApi";
import { apiProvide } from "@/testing/mountWithApi";
import { storedMessage } from "@/testing/samples";
import MessageDeliveries from "./MessageDeliveries.vue";
import MessageRow from "./MessageRow.vue";

const delivery = {
  id: "dl1",
  organization_id: "o1",
  callback_id: "cb1",
  callback_name: "to my server",
  message_id: "m1",
  state: "failed",
  attempts: 3,
  next_attempt_at: null,
  last_status: 500,
  last_error: "HTTP 500",
  created_at: "2026-11-27T12:00:00Z",
  updated_at: "2026-11-27T12:00:03Z",
  attempt_log: [
    { id: 1, at: "2026-11-27T12:00:01Z", duration_ms: 10, outcome: "failure", request: {}, response: { status: 503, body: "busy" }, error: null },
    { id: 2, at: "2026-11-27T12:00:03Z", duration_ms: 12, outcome: "failure", request: {}, response: { status: 500, body: '{"oops":true}', body_encoding: "utf-8" }, error: null },
  ],
};

function globalWith(routes: Routes) {
  const api = fakeApi(routes);
  return { provide: apiProvide(api), stubs: { RouterLink: RouterLinkStub } };
}

function mountDeliveries(routes: Routes) {
  const props = { messageId: "m1", orgId: "o1", groupId: "g1" };
  return { wrapper: mount(MessageDeliveries, { props, global: globalWith(routes) }) };
}

type RowProps = InstanceType<typeof MessageRow>["$props"];

function mountRow(props: RowProps, routes: Routes) {
  return { wrapper: mount(MessageRow, { props, attachTo: document.body, global: globalWith(routes) }) };
}

describe("MessageDeliveries", () => {
  it("lists each callback with state, attempts and the last response, linked to the callback", async () => {
    const { wrapper } = mountDeliveries({ "GET /v1/messages/m1/deliveries": page([delivery]) });
    await flushPromises();
    const cells = wrapper.findAll("tbody td").map((cell) => cell.text());
    expect(cells[0]).toBe("to my server");
    expect(cells[1]).toBe("failed");
    expect(cells[2]).toBe("3");
    expect(cells[3]).toBe("500");
    expect(cells[4]).toContain('500 {"oops":true}');
    expect(wrapper.getComponent(RouterLinkStub).props("to")).toEqual({
      name: "callback",
      params: { orgId: "o1", groupId: "g1", callbackId: "cb1" },
    });
  });

  it("shows the empty and the error state", async () => {
    const empty = mountDeliveries({ "GET /v1/messages/m1/deliveries": page([]) });
    await flushPromises();
    expect(empty.wrapper.text()).toContain("No callback deliveries");
    const failing = mountDeliveries({ "GET /v1/messages/m1/deliveries": apiError(404, "not_found", "message not found") });
    await flushPromises();
    expect(failing.wrapper.get("[role=alert]").text()).toContain("message not found");
  });
});

describe("MessageRow", () => {
  const props = { message: storedMessage({ id: "m1" }), orgId: "o1", expanded: false, fresh: false, canWrite: true };
  const routes = { "GET /v1/messages/m1/deliveries": page([]) };

  it("shows time with milliseconds, type, direction, body and signal", () => {
    const { wrapper } = mountRow(props, routes);
    const text = wrapper.get("tr.main").text();
    expect(text).toContain(".123");
    expect(text).toContain("data");
    expect(text).toContain("↑ up");
    expect(text).toContain("thermometer.temperature: 21.5");
    expect(wrapper.find("[aria-label^='RSRP -95 dBm']").exists()).toBe(true);
    expect(wrapper.find("tr.details").exists()).toBe(false);
  });

  it("asks to open with a button and opens to the details", async () => {
    const { wrapper } = mountRow(props, routes);
    const button = wrapper.get("button.row-toggle");
    expect(button.attributes("aria-expanded")).toBe("false");
    await button.trigger("click");
    expect(wrapper.emitted("toggle")).toHaveLength(1);
    await wrapper.setProps({ ...props, expanded: true });
    await flushPromises();
    const details = wrapper.get("tr.details");
    expect(details.text()).toContain("Decoded body");
    expect(details.text()).toContain("00000000");
    expect(details.text()).toContain("254b23d134416568");
    await details.findAll("button").find((b) => b.text() === "Delete this message")?.trigger("click");
    expect(wrapper.emitted("delete")?.[0]?.[0]).toMatchObject({ id: "m1" });
  });

  it("hides delete from viewers and shows the device column in groups", async () => {
    const device = { name: "greenhouse", to: { name: "messages" } };
    const { wrapper } = mountRow({ ...props, expanded: true, canWrite: false, device }, routes);
    expect(wrapper.text()).not.toContain("Delete this message");
    expect(wrapper.getComponent(RouterLinkStub).text()).toBe("greenhouse");
    expect(wrapper.get("tr.details td").attributes("colspan")).toBe("7");
  });
});
