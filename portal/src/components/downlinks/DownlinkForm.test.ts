import { afterEach, describe, expect, it } from "vitest";
import { apiError, fakeApi, settle } from "@/testing/fakeApi";
import { mountWithApi } from "@/testing/mountWithApi";
import DownlinkForm from "./DownlinkForm.vue";

afterEach(() => {
  document.body.innerHTML = "";
});

async function send(wrapper: ReturnType<typeof mountWithApi>, kind: string, text: string): Promise<void> {
  await wrapper.find(`input[type=radio][value=${kind}]`).setValue(true);
  await wrapper.find("textarea").setValue(text);
  await wrapper.find("form").trigger("submit");
  await settle();
}

describe("DownlinkForm", () => {
  it("sends one shell command or config line a line, without blank lines", async () => {
    const api = fakeApi({ "POST /v1/devices/d1/downlinks": { status: 201, body: { id: "x" } } });
    const wrapper = mountWithApi(DownlinkForm, api, { deviceId: "d1" });
    await send(wrapper, "shell", "app config show\n\n  lte state  \n");
    await send(wrapper, "config", "app config interval 60");
    expect(api.calls.map((c) => c.body)).toEqual([
      { kind: "shell", commands: ["app config show", "lte state"] },
      { kind: "config", lines: ["app config interval 60"] },
    ]);
    expect(wrapper.emitted("queued")).toHaveLength(2);
    expect((wrapper.find("textarea").element as HTMLTextAreaElement).value).toBe("");
  });

  it("sends data as a JSON object and refuses what is not one before asking the API", async () => {
    const api = fakeApi({ "POST /v1/devices/d1/downlinks": { status: 201, body: { id: "x" } } });
    const wrapper = mountWithApi(DownlinkForm, api, { deviceId: "d1" });
    await send(wrapper, "data", "{led_r: 1");
    expect(wrapper.find(".field-error").text()).toContain("Not JSON");
    await send(wrapper, "data", "[1, 2]");
    expect(wrapper.find(".field-error").text()).toContain("a JSON object");
    expect(api.calls).toHaveLength(0);
    await send(wrapper, "data", '{"led_r": 1}');
    expect(api.calls[0]?.body).toEqual({ kind: "data", data: { led_r: 1 } });
  });

  it("shows the API's downlink_error message and keeps the text", async () => {
    const api = fakeApi({
      "POST /v1/devices/d1/downlinks": apiError(422, "downlink_error", "the device uploaded no encoder"),
    });
    const wrapper = mountWithApi(DownlinkForm, api, { deviceId: "d1" });
    await send(wrapper, "data", '{"led_r": 1}');
    expect(wrapper.find("[role=alert]").text()).toBe("the device uploaded no encoder");
    expect((wrapper.find("textarea").element as HTMLTextAreaElement).value).toBe('{"led_r": 1}');
    expect(wrapper.emitted("queued")).toBeUndefined();
  });
});
