/**
 * Sample objects of the portal's areas, as the API sends them, for unit
 * tests to answer with through `fakeApi` (see `./fakeApi`), and a streamed
 * answer for the live message tail.
 */

import type { Callback, Message } from "@/api";

/** A device, as `GET /v1/devices/{id}` answers (devices area). */
export const aDevice = {
  id: "d1",
  organization_id: "o1",
  group_id: "g1",
  serial: 2159000001,
  name: "greenhouse",
  label: "hsn:2159000001",
  enabled: true,
  created_at: "2026-11-01T10:00:00Z",
  last_seen_at: null,
  session_id: null,
  vendor: null,
  product: null,
  fw_name: null,
  fw_version: null,
};

/** A message with every field the API sends (messages area). */
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

/**
 * A streamed answer the test writes to, like a server keeping an SSE
 * connection open: answer a route with `() => stream.response`.
 */
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

/** A stored callback to edit (callbacks area). */
export const storedCallback: Callback = {
  id: "c1",
  organization_id: "o1",
  group_id: "g1",
  name: "farm",
  enabled: true,
  note: null,
  method: "POST",
  url: "https://farm.example.com/in",
  query_params: [],
  headers: [{ name: "Authorization", value: "Bearer x" }],
  content_type: "application/json",
  payload: "data",
  triggers: ["data"],
  timeout: 10,
  retry_delays: [10, 30],
  has_secret: true,
  version: 3,
  created_at: "2026-01-01T00:00:00Z",
  updated_at: "2026-01-01T00:00:00Z",
  last_success_at: null,
  last_failure_at: null,
  failure_streak: 0,
  paused_until: null,
  state: "healthy",
};
