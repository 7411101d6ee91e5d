import { mount } from "@vue/test-utils";
import { describe, expect, it } from "vitest";
import JsonTree from "./JsonTree.vue";
import LiveTailControl from "./LiveTailControl.vue";
import MessageSignal from "./MessageSignal.vue";
import RawBytes from "./RawBytes.vue";
import SignalBars from "./SignalBars.vue";

describe("SignalBars", () => {
  it("lights as many bars as given and names the value", () => {
    const wrapper = mount(SignalBars, { props: { bars: 3, max: 4, label: "RSRP -85 dBm" } });
    expect(wrapper.findAll(".bar")).toHaveLength(4);
    expect(wrapper.findAll(".bar.lit")).toHaveLength(3);
    expect(wrapper.attributes("aria-label")).toBe("RSRP -85 dBm");
  });
});

describe("MessageSignal", () => {
  it("shows RSRP and ECL bars from the body", () => {
    const wrapper = mount(MessageSignal, { props: { data: { network: { parameter: { rsrp: -95, ecl: 0 } } } } });
    const labels = wrapper.findAll("[role=img]").map((bars) => bars.attributes("aria-label"));
    expect(labels).toEqual(["RSRP -95 dBm, 2 of 4 bars", "ECL 0, 3 of 3 bars"]);
  });

  it("shows nothing without signal", () => {
    expect(mount(MessageSignal, { props: { data: { a: 1 } } }).html()).not.toContain("signal");
  });
});

describe("JsonTree", () => {
  it("folds and unfolds branches with buttons", async () => {
    const wrapper = mount(JsonTree, { props: { value: { a: { b: { c: 1 } }, list: [1, "x"] }, openDepth: 2 } });
    const deep = wrapper.findAll("button").find((button) => button.text().startsWith("▸"));
    expect(deep?.text()).toContain("b:");
    expect(deep?.attributes("aria-expanded")).toBe("false");
    expect(wrapper.text()).not.toContain("c:");
    await deep?.trigger("click");
    expect(wrapper.text()).toContain("c:1");
    const root = wrapper.find("button");
    await root.trigger("click");
    expect(root.attributes("aria-expanded")).toBe("false");
    expect(root.text()).toContain("2 keys");
  });

  it("shows a leaf as JSON", () => {
    expect(mount(JsonTree, { props: { value: "text" } }).text()).toBe('"text"');
  });
});

describe("RawBytes", () => {
  it("dumps the bytes in hex with offsets", () => {
    const text = mount(RawBytes, { props: { raw: "SGVsbG8=" } }).text();
    expect(text).toContain("5 bytes");
    expect(text).toContain("00000000");
    expect(text).toContain("48 65 6c 6c 6f");
    expect(text).toContain("Hello");
  });

  it("tells when there are no bytes or no base64", () => {
    expect(mount(RawBytes, { props: { raw: "" } }).text()).toContain("No bytes");
    expect(mount(RawBytes, { props: { raw: "%%%" } }).text()).toContain("not valid base64");
  });
});

describe("LiveTailControl", () => {
  it("offers Pause while live and Resume with the count while paused", async () => {
    const wrapper = mount(LiveTailControl, { props: { status: "live", paused: false, pending: 0, reason: "" } });
    expect(wrapper.text()).toContain("Live");
    await wrapper.get("button").trigger("click");
    expect(wrapper.emitted("pause")).toHaveLength(1);
    await wrapper.setProps({ paused: true, pending: 4 });
    expect(wrapper.text()).toContain("Paused: 4 new");
    await wrapper.get("button").trigger("click");
    expect(wrapper.emitted("resume")).toHaveLength(1);
  });

  it("says why the tail is off, with no button", () => {
    const wrapper = mount(LiveTailControl, {
      props: { status: "off", paused: false, pending: 0, reason: "Live updates show on the first page." },
    });
    expect(wrapper.text()).toContain("first page");
    expect(wrapper.find("button").exists()).toBe(false);
  });
});
