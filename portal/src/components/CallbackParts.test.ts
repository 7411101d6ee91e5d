import { mount, flushPromises } from "@vue/test-utils";
import { describe, expect, it } from "vitest";
import { apiError, fakeApi, json, type Routes } from "@/testing/fakeApi";
import { apiProvide } from "@/testing/mountWithApi";
import CallbackDeliveries from "./CallbackDeliveries.vue";
import CallbackPairRows from "./CallbackPairRows.vue";
import CallbackSecretField from "./CallbackSecretField.vue";
import CallbackTestPanel from "./CallbackTestPanel.vue";
import JsonataEditor from "./JsonataEditor.vue";

function withApi(routes: Routes) {
  const api = fakeApi(routes);
  return { api, global: { provide: apiProvide(api) } };
}

describe("JsonataEditor", () => {
  it("colours the tokens and marks the character a problem points at", () => {
    const wrapper = mount(JsonataEditor, {
      props: { id: "p", label: "Payload", modelValue: '{"a": 1 +}', problem: { message: "bad", position: 10, code: "S0211" } },
    });
    expect(wrapper.find(".tok-string").text()).toBe('"a"');
    expect(wrapper.find(".tok-problem").text()).toBe("}");
    expect(wrapper.find("#p-problem").text()).toContain("Line 1, column 10: bad");
    expect(wrapper.find("textarea").attributes("aria-invalid")).toBe("true");
    expect(wrapper.find("label").attributes("for")).toBe("p");
  });

  it("indents on Tab, and lets Tab leave after Escape", async () => {
    const wrapper = mount(JsonataEditor, { props: { id: "p", label: "Payload", modelValue: "ab", problem: null } });
    const area = wrapper.find("textarea");
    const element = area.element as HTMLTextAreaElement;
    element.setSelectionRange(1, 1);
    await area.trigger("keydown", { key: "Tab" });
    expect(wrapper.emitted("update:modelValue")?.[0]).toEqual(["a  b"]);
    await area.trigger("keydown", { key: "Escape" });
    await area.trigger("keydown", { key: "Tab" });
    expect(wrapper.emitted("update:modelValue")).toHaveLength(1);
  });
});

describe("CallbackPairRows", () => {
  it("adds, edits and removes rows, with errors at their row", async () => {
    const wrapper = mount(CallbackPairRows, {
      props: {
        field: "headers",
        legend: "Headers",
        noun: "header",
        errors: { "headers[0].value": "Visible ASCII only." },
        modelValue: [{ name: "A", value: "é" }],
      },
    });
    expect(wrapper.find(".field-error").text()).toBe("Visible ASCII only.");
    await wrapper.find("#headers-0-name").setValue("B");
    expect(wrapper.emitted("update:modelValue")?.[0]).toEqual([[{ name: "B", value: "é" }]]);
    await wrapper.find("button.pairs-remove").trigger("click");
    expect(wrapper.emitted("update:modelValue")?.[1]).toEqual([[]]);
    const add = wrapper.findAll("button").find((b) => b.text() === "Add header");
    await add?.trigger("click");
    // Without a parent the model keeps its own value: the row removed above is gone.
    expect(wrapper.emitted("update:modelValue")?.[2]).toEqual([[{ name: "", value: "" }]]);
  });
});

describe("CallbackSecretField", () => {
  it("says whether a secret is set, never its value, and offers replace and remove", async () => {
    const wrapper = mount(CallbackSecretField, { props: { hasSecret: true, mayChange: true, modelValue: { kind: "keep" } } });
    expect(wrapper.find("[data-testid=secret-status]").text()).toBe("set");
    expect(wrapper.find("input").exists()).toBe(false);
    await wrapper.findAll("button").find((b) => b.text() === "Remove secret")?.trigger("click");
    expect(wrapper.emitted("update:modelValue")?.[0]).toEqual([{ kind: "clear" }]);
    await wrapper.setProps({ modelValue: { kind: "replace", value: "" } });
    expect(wrapper.find("input").attributes("type")).toBe("password");
  });

  it("offers nothing to readers who may not change it", () => {
    const wrapper = mount(CallbackSecretField, { props: { hasSecret: false, mayChange: false, modelValue: { kind: "keep" } } });
    expect(wrapper.findAll("button")).toHaveLength(0);
    expect(wrapper.text()).toContain("Only admins may change the secret.");
  });
});

describe("CallbackTestPanel", () => {
  it("shows the endpoint's status and body", async () => {
    const { api, global } = withApi({
      "POST /v1/callbacks/c1/test": json({
        ok: true,
        skipped: false,
        request: {},
        response: { status: 200, headers: [["content-type", "application/json"]], body: '{"ok":1}' },
        error: null,
        duration_ms: 12.4,
      }),
    });
    const wrapper = mount(CallbackTestPanel, { props: { callbackId: "c1", messageId: "m1", unsaved: false }, global });
    await wrapper.find("button").trigger("click");
    await flushPromises();
    expect(wrapper.find("[data-testid=test-status]").text()).toBe("200");
    expect(wrapper.find("[data-testid=test-body]").text()).toBe('{\n  "ok": 1\n}');
    expect(api.calls[0]?.body).toEqual({ message_id: "m1" });
  });

  it("says what the role may not do, and a conflict's message", async () => {
    const { global } = withApi({
      "POST /v1/callbacks/c1/test": apiError(403, "forbidden", "no"),
    });
    const wrapper = mount(CallbackTestPanel, { props: { callbackId: "c1", messageId: null, unsaved: true }, global });
    expect(wrapper.text()).toContain("unsaved changes");
    await wrapper.find("button").trigger("click");
    await flushPromises();
    expect(wrapper.find("[role=alert]").text()).toBe("Your role may not send test requests.");
  });
});

const delivery = {
  id: "d1",
  organization_id: "o1",
  callback_id: "c1",
  callback_name: "farm",
  message_id: "m1",
  state: "failed",
  attempts: 9,
  next_attempt_at: null,
  last_status: 500,
  last_error: "the endpoint answered 500",
  created_at: "2026-01-01T00:00:00Z",
  updated_at: "2026-01-01T00:00:00Z",
};

describe("CallbackDeliveries", () => {
  it("lists deliveries, expands one to its attempts and replays it", async () => {
    const { api, global } = withApi({
      "GET /v1/callbacks/c1/deliveries": json([delivery], 200, { "x-total": "1" }),
      "GET /v1/deliveries/d1": json({
        ...delivery,
        attempt_log: [
          {
            id: 1,
            at: "2026-01-01T00:00:01Z",
            duration_ms: 20,
            outcome: "failure",
            request: { method: "POST", url: "https://x/in", headers: [], body: '{"t":1}', body_encoding: "utf-8" },
            response: { status: 500, headers: [], body: "oops", body_encoding: "utf-8" },
            error: "the endpoint answered 500",
          },
        ],
      }),
      "POST /v1/callbacks/c1/replay": json({ replayed: 1 }),
    });
    const wrapper = mount(CallbackDeliveries, { props: { callbackId: "c1", canReplay: true }, global });
    await flushPromises();
    expect(wrapper.find("[data-testid=delivery]").text()).toContain("failed");
    const attempts = wrapper.findAll("button").find((b) => b.text() === "Attempts");
    await attempts?.trigger("click");
    await flushPromises();
    expect(wrapper.find("[data-testid=attempt]").text()).toContain('{"t":1}');
    expect(wrapper.find("[data-testid=attempt]").text()).toContain("oops");
    await wrapper.findAll("button").find((b) => b.text() === "Replay")?.trigger("click");
    await flushPromises();
    expect(api.calls.find((call) => call.method === "POST")?.body).toEqual({ delivery_id: "d1" });
    expect(wrapper.find("[role=status]").text()).toBe("1 delivery is pending again.");
  });

  it("filters by state", async () => {
    const { api, global } = withApi({ "GET /v1/callbacks/c1/deliveries": json([], 200, { "x-total": "0" }) });
    const wrapper = mount(CallbackDeliveries, { props: { callbackId: "c1", canReplay: false }, global });
    await flushPromises();
    await wrapper.find("select").setValue("failed");
    await flushPromises();
    expect(api.calls.at(-1)?.url).toContain("state=failed");
    expect(wrapper.text()).toContain("No failed deliveries.");
    expect(wrapper.text()).not.toContain("Replay all failed");
  });
});
