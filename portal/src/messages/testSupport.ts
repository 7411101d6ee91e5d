/**
 * Fakes for the messages area's unit tests: an API client over a fetch that
 * answers by path, and a message with every field the API sends.
 */

import { vi, type Mock } from "vitest";
import { ApiClient, memoryTokenStore, type Message } from "@/api";

export type Answer = Response | ((url: string, init: RequestInit) => Response | Promise<Response>);

export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });
}

export interface FakeApi {
  client: ApiClient;
  fetch: Mock<(url: string, init: RequestInit) => Promise<Response>>;
  onUnauthorized: Mock<() => void>;
  /** The URLs asked for, in order. */
  urls(): string[];
}

/** A client whose fetch answers the first route whose key the URL's path starts with. */
export function fakeApi(routes: Record<string, Answer>): FakeApi {
  const fetch = vi.fn(async (url: string, init: RequestInit): Promise<Response> => {
    const path = url.split("?")[0] ?? url;
    const key = Object.keys(routes)
      .filter((prefix) => path === prefix || path.startsWith(`${prefix}`))
      .sort((a, b) => b.length - a.length)[0];
    const answer = key === undefined ? json({ error: { code: "not_found", message: "no route", details: null } }, 404) : routes[key];
    if (answer === undefined) throw new Error("unreachable");
    return typeof answer === "function" ? answer(url, init) : answer.clone();
  });
  const onUnauthorized = vi.fn();
  // The client only ever passes a string URL and an init.
  const client = new ApiClient({ tokens: memoryTokenStore("t0k3n"), fetch: fetch as unknown as typeof globalThis.fetch, onUnauthorized });
  return { client, fetch, onUnauthorized, urls: () => fetch.mock.calls.map((call) => call[0]) };
}

export function storedMessage(overrides: Partial<Message> = {}): Message {
  return {
    id: "01a21e5e-0000-7000-8000-000000000001",
    created_at: "2026-11-27T12:00:00.123Z",
    organization_id: "o1",
    group_id: "g1",
    device_id: "d1",
    label: "hsn:2159000001",
    session_id: 7,
    type: "data",
    direction: "up",
    data: { network: { parameter: { rsrp: -95, ecl: 0 } }, thermometer: { temperature: 21.5 } },
    raw: "AAEC",
    codec_hash: "254b23d134416568",
    decode_state: "decoded",
    decode_error: null,
    downlink_id: null,
    ...overrides,
  };
}

/** A streamed body the test writes to, like a server keeping an SSE connection open. */
export function openStream(): { response: Response; push(text: string): void; end(): void } {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
  const encoder = new TextEncoder();
  return {
    response: new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } }),
    push: (text) => controller.enqueue(encoder.encode(text)),
    end: () => controller.close(),
  };
}
