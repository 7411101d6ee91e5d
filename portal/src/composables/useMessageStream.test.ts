import { afterEach, describe, expect, it, vi } from "vitest";
import { effectScope, nextTick } from "vue";
import type { Message } from "@/api";
import { apiError, fakeApi, type Answer } from "@/testing/fakeApi";
import { openStream, storedMessage } from "@/testing/samples";
import { useMessageStream, type MessageStreamOptions } from "./useMessageStream";

function event(message: Message): string {
  return `id: ${message.id}\nevent: message\ndata: ${JSON.stringify(message)}\n\n`;
}

/** Waits until `test` holds, letting the stream's promises run. */
async function until(test: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !test(); i++) await new Promise((resolve) => setTimeout(resolve, 1));
  expect(test()).toBe(true);
}

function setup(answers: (() => Answer)[], options: Partial<MessageStreamOptions> = {}) {
  const queue = [...answers];
  const api = fakeApi({ "GET /v1/messages/stream": () => (queue.shift() ?? (() => new Response("")))() });
  const delivered: string[] = [];
  const scope = effectScope();
  const stream = scope.run(() =>
    useMessageStream({
      client: api.client,
      scope: { deviceId: "d1" },
      accept: () => true,
      deliver: (messages) => delivered.push(...messages.map((m) => m.id)),
      retryMs: 1,
      ...options,
    }),
  )!;
  return { api, stream, delivered, scope };
}

const one = storedMessage({ id: "m1" });
const two = storedMessage({ id: "m2", type: "stats" });
const three = storedMessage({ id: "m3" });

afterEach(() => vi.useRealTimers());

describe("useMessageStream", () => {
  it("hands over the accepted messages of the stream, after the given id", async () => {
    const server = openStream();
    const { api, stream, delivered, scope } = setup([() => server.response], {
      accept: (m) => m.type === "data",
    });
    stream.start("m0");
    await until(() => stream.status.value === "live");
    server.push(": ping\n\n" + event(one) + event(two));
    await until(() => delivered.length === 1);
    expect(delivered).toEqual(["m1"]);
    expect(api.urls()[0]).toContain("last_event_id=m0");
    scope.stop();
    expect(stream.status.value).toBe("off");
  });

  it("holds messages while paused and hands them over on resume", async () => {
    const server = openStream();
    const { stream, delivered, scope } = setup([() => server.response]);
    stream.start(null);
    await until(() => stream.status.value === "live");
    stream.pause();
    server.push(event(one) + event(three));
    await until(() => stream.pending.value.length === 2);
    expect(delivered).toEqual([]);
    stream.resume();
    expect(delivered).toEqual(["m1", "m3"]);
    expect(stream.pending.value).toEqual([]);
    scope.stop();
  });

  it("reconnects after the stream ends, resuming after the last message", async () => {
    const first = openStream();
    const second = openStream();
    const { api, stream, delivered, scope } = setup([() => first.response, () => second.response]);
    stream.start(null);
    await until(() => stream.status.value === "live");
    first.push(event(one));
    await until(() => delivered.length === 1);
    first.end();
    await until(() => api.urls().length === 2);
    expect(api.urls()[1]).toContain("last_event_id=m1");
    second.push(event(three));
    await until(() => delivered.length === 2);
    scope.stop();
  });

  it("reconnects at once after a resync event, and after a network error", async () => {
    const first = openStream();
    const { api, stream, scope } = setup([
      () => first.response,
      () => {
        throw new TypeError("offline");
      },
      () => openStream().response,
    ]);
    stream.start("m5");
    await until(() => stream.status.value === "live");
    first.push('event: resync\ndata: {"reason":"overflow"}\n\n');
    await until(() => api.urls().length === 3);
    expect(api.urls().every((url) => url.includes("last_event_id=m5"))).toBe(true);
    scope.stop();
  });

  it("gives up on 401, through the client's unauthorized path", async () => {
    const expired = () => apiError(401, "unauthorized", "expired");
    const { api, stream, scope } = setup([expired]);
    stream.start(null);
    await until(() => stream.status.value === "failed");
    expect(api.onUnauthorized).toHaveBeenCalledOnce();
    expect(stream.error.value?.status).toBe(401);
    await nextTick();
    expect(api.urls()).toHaveLength(1);
    scope.stop();
  });
});
