/**
 * Test helpers of the callbacks area: a stored callback to edit, and an API
 * client whose `fetch` answers by route, so each test states only the
 * answers it cares about and can read back what the page sent.
 */

import { vi } from "vitest";
import { ApiClient, memoryTokenStore, type Callback } from "@/api";

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

export function jsonResponse(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  const text = body === undefined ? "" : JSON.stringify(body);
  return new Response(status === 204 ? null : text, {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** `"POST /v1/x"` → the answer (a function gets the parsed body). */
export type Routes = Record<string, Response | ((body: unknown) => Response | Promise<Response>)>;

export interface FakeApi {
  client: ApiClient;
  /** The requests made, as `"METHOD /path?query"` with their parsed bodies. */
  requests: { route: string; body: unknown }[];
}

export function fakeApi(routes: Routes): FakeApi {
  const requests: { route: string; body: unknown }[] = [];
  const fetch = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = String(input);
    const route = `${init?.method ?? "GET"} ${url}`;
    const body = typeof init?.body === "string" ? (JSON.parse(init.body) as unknown) : undefined;
    requests.push({ route, body });
    const key = Object.keys(routes).find((known) => route === known || route.startsWith(`${known}?`));
    const answer = key === undefined ? jsonResponse({ error: { code: "not_found", message: `no ${route}` } }, 404) : routes[key];
    if (answer === undefined) throw new Error("unreachable");
    return typeof answer === "function" ? answer(body) : answer.clone();
  });
  const tokens = memoryTokenStore();
  tokens.set("t");
  return { client: new ApiClient({ tokens, fetch }), requests };
}
