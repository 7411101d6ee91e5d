import { afterEach, describe, expect, it } from "vitest";
import { apiError, fakeApi, settle } from "@/testing/fakeApi";
import { mountWithApi } from "@/testing/mountWithApi";
import RetentionForm from "./RetentionForm.vue";

const organization = { id: "o1", name: "acme", created_at: "2026-11-27T12:00:00Z", message_retention_days: 90 };

afterEach(() => {
  document.body.innerHTML = "";
});

describe("RetentionForm", () => {
  it("saves the days and tells the page", async () => {
    const api = fakeApi({ "PATCH /v1/organizations/o1": { body: { ...organization, message_retention_days: 30 } } });
    const wrapper = mountWithApi(RetentionForm, api, { organization });
    expect((wrapper.find("input[name=retention-days]").element as HTMLInputElement).value).toBe("90");
    await wrapper.find("input[name=retention-days]").setValue("30");
    expect(wrapper.text()).toContain("Shortening deletes what is older than 30 days.");
    await wrapper.find("form").trigger("submit");
    await settle();
    expect(api.callsTo("PATCH /v1/organizations/o1")[0]?.body).toEqual({ message_retention_days: 30 });
    expect(wrapper.emitted("saved")?.[0]?.[0]).toMatchObject({ message_retention_days: 30 });
    expect(wrapper.text()).toContain("Saved.");
  });

  it("refuses days out of range before asking the API", async () => {
    const api = fakeApi({});
    const wrapper = mountWithApi(RetentionForm, api, { organization });
    await wrapper.find("input[name=retention-days]").setValue("0");
    expect(wrapper.text()).toContain("A whole number of days from 1 to 3650.");
    expect(wrapper.find("button[type=submit]").attributes("disabled")).toBeDefined();
    await wrapper.find("form").trigger("submit");
    await settle();
    expect(api.calls).toHaveLength(0);
  });

  it("shows the API's refusal", async () => {
    const api = fakeApi({
      "PATCH /v1/organizations/o1": apiError(403, "forbidden", "this needs admin access"),
    });
    const wrapper = mountWithApi(RetentionForm, api, { organization });
    await wrapper.find("input[name=retention-days]").setValue("365");
    await wrapper.find("form").trigger("submit");
    await settle();
    expect(wrapper.text()).toContain("Your role may not change the message retention");
    expect(wrapper.emitted("saved")).toBeUndefined();
  });
});
