import { afterEach, describe, expect, it, vi } from "vitest";
import { effectScope, nextTick, ref } from "vue";
import { apiError, fakeApi, json, type Answer } from "@/testing/fakeApi";
import { useCallbackPreview } from "./usePreview";

const PREVIEW = "POST /v1/groups/g1/callbacks/preview";

afterEach(() => vi.useRealTimers());

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i += 1) await Promise.resolve();
  await nextTick();
}

describe("useCallbackPreview", () => {
  it("asks once per pause in typing, with the latest payload", async () => {
    vi.useFakeTimers();
    const api = fakeApi({
      [PREVIEW]: ({ body }) =>
        json({ original: {}, transformed: (body as { payload: string }).payload, skipped: false, error: null }),
    });
    const payload = ref("a");
    const scope = effectScope();
    const view = scope.run(() => useCallbackPreview(api.client, () => "g1", () => payload.value, () => null))!;
    await settle();
    expect(view.preview.value?.transformed).toBe("a");
    payload.value = "ab";
    await nextTick();
    payload.value = "abc";
    await nextTick();
    expect(view.state.value).toBe("loading");
    await vi.advanceTimersByTimeAsync(300);
    await settle();
    expect(api.calls.map((call) => (call.body as { payload: string }).payload)).toEqual(["a", "abc"]);
    expect(view.preview.value?.transformed).toBe("abc");
    expect(view.state.value).toBe("ready");
    scope.stop();
  });

  it("ignores an answer that comes after a newer request", async () => {
    const answers: ((answer: Answer) => void)[] = [];
    const api = fakeApi({ [PREVIEW]: () => new Promise<Answer>((resolve) => answers.push(resolve)) });
    const messageId = ref<string | null>(null);
    const scope = effectScope();
    const view = scope.run(() => useCallbackPreview(api.client, () => "g1", () => "x", () => messageId.value))!;
    await settle();
    messageId.value = "m2";
    await settle();
    answers[1]?.(json({ original: { id: "m2" }, transformed: 2, skipped: false, error: null }));
    await settle();
    answers[0]?.(json({ original: { id: "m1" }, transformed: 1, skipped: false, error: null }));
    await settle();
    expect(view.preview.value?.transformed).toBe(2);
    expect(api.calls[1]?.body).toEqual({ payload: "x", message_id: "m2" });
    scope.stop();
  });

  it("shows a failed request as an error", async () => {
    const api = fakeApi({ [PREVIEW]: apiError(403, "forbidden", "no access") });
    const scope = effectScope();
    const view = scope.run(() => useCallbackPreview(api.client, () => "g1", () => "x", () => null))!;
    await settle();
    expect(view.state.value).toBe("error");
    expect(view.error.value?.message).toBe("no access");
    scope.stop();
  });
});
