/**
 * The one fake API of the portal's unit tests.
 *
 * Components, composables and API calls are tested through the real
 * `ApiClient`, the one they use in the browser, over a mocked `fetch`: so a
 * test covers the client's URLs, query strings, headers, bodies, paging
 * headers, error shapes and 401 handling too, and checks both what the code
 * asks and what it shows. Only `fetch` is fake.
 *
 * A test states the answers it relies on, routed by `"METHOD /path"` (the
 * query is not part of the route, but it is recorded). An answer is
 *
 * - a plain `{ status, body, headers }` (JSON; status 200 and no body by
 *   default; helpers `json()`, `page()`, `apiError()`, `meWithRole()`),
 * - a function of the recorded call, returning one of these (it may throw,
 *   like a `fetch` that cannot connect), or
 * - a ready `Response`, for what is not JSON: a CSV, an SSE stream (see
 *   `openStream()` in `./samples`). A `Response` in the table is cloned per
 *   request; one returned by a function is used as is.
 *
 * Every request is recorded (method, path, query, parsed JSON body, headers,
 * raw URL) in `calls`. A request without a route fails: `fetch` throws an
 * error naming it, and the test that made it fails when it finishes, so no
 * test passes on an answer nobody wrote down.
 */

import { onTestFinished, vi, type Mock } from "vitest";
import { ApiClient, memoryTokenStore, type ApiError } from "@/api";

/** The token the fake client holds; requests carry `Bearer t0k3n`. */
export const TOKEN = "t0k3n";

/** A JSON answer. */
export interface FakeAnswer {
  /** 200 when left out. */
  status?: number;
  /** Sent as JSON; none when left out (or with 204). */
  body?: unknown;
  headers?: Record<string, string>;
}

export type Answer = FakeAnswer | Response;

export type Route = Answer | ((call: RecordedCall) => Answer | Promise<Answer>);

/** `"GET /v1/devices"` → its answer. */
export type Routes = Record<string, Route>;

export interface RecordedCall {
  method: string;
  /** The URL's path as sent, still percent-encoded (`/v1/devices/d%2F1`). */
  path: string;
  query: URLSearchParams;
  /** The parsed JSON body; undefined without one. */
  body: unknown;
  /** The request's headers, names in lower case. */
  headers: Record<string, string>;
  /** The URL as the client asked for it: path and query. */
  url: string;
}

export interface FakeApi {
  client: ApiClient;
  /** The mocked `fetch` under the client. */
  fetch: Mock<(input: RequestInfo | URL, init?: RequestInit) => Promise<Response>>;
  /** What the client calls when a request with a token answers 401. */
  onUnauthorized: Mock<(error: ApiError) => void>;
  /** Every request, in order. */
  calls: RecordedCall[];
  /** Sets or replaces the answer of `"METHOD /path"`. */
  on(route: string, answer: Route): void;
  /** The calls of one `"METHOD /path"`. */
  callsTo(route: string): RecordedCall[];
  /** The URLs asked for, in order (path and query). */
  urls(): string[];
}

/** A JSON answer. */
export function json(body: unknown, status = 200, headers: Record<string, string> = {}): FakeAnswer {
  return { status, body, headers };
}

/** A page of a list, with `x-total`. */
export function page(items: unknown[], total = items.length): FakeAnswer {
  return { body: items, headers: { "x-total": String(total) } };
}

/** The API's error shape. */
export function apiError(status: number, code: string, message: string, details: unknown = null): FakeAnswer {
  return { status, body: { error: { code, message, details } } };
}

/** `/v1/auth/me` of a user with `role` in organization `orgId`. */
export function meWithRole(orgId: string, role: string, orgName = "acme"): FakeAnswer {
  return {
    body: {
      kind: "user",
      id: "u-me",
      email: "me@example.com",
      label: "me",
      totp_enabled: false,
      organizations: [{ organization_id: orgId, organization_name: orgName, role }],
    },
  };
}

/** Lets pending promises and Vue's updates run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i += 1) await new Promise((resolve) => setTimeout(resolve, 0));
}

function responseOf(answer: Answer, fromTable: boolean): Response {
  if (answer instanceof Response) return fromTable ? answer.clone() : answer;
  const status = answer.status ?? 200;
  const text = answer.body === undefined || status === 204 ? null : JSON.stringify(answer.body);
  return new Response(text, { status, headers: { "content-type": "application/json", ...answer.headers } });
}

function routeKey(method: string, path: string): string {
  return `${method} ${path}`;
}

export function fakeApi(routes: Routes = {}): FakeApi {
  const table = new Map<string, Route>();
  const on = (route: string, answer: Route): void => {
    if (!/^[A-Z]+ \/\S*$/.test(route) || route.includes("?")) {
      throw new Error(`a route is "METHOD /path" without a query, not "${route}"`);
    }
    table.set(route, answer);
  };
  for (const [route, answer] of Object.entries(routes)) on(route, answer);

  const calls: RecordedCall[] = [];
  const unrouted: string[] = [];
  try {
    onTestFinished(() => {
      if (unrouted.length > 0) {
        throw new Error(`the fake API had no answer for: ${unrouted.join(", ")}; state the routes the test relies on`);
      }
    });
  } catch {
    // Made outside a running test: the throwing fetch below still tells.
  }

  const fetch = vi.fn(async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const raw = String(input);
    const url = new URL(raw, "http://portal.test");
    const method = init?.method ?? "GET";
    const body = typeof init?.body === "string" ? (JSON.parse(init.body) as unknown) : undefined;
    const headers = Object.fromEntries(new Headers(init?.headers).entries());
    const call: RecordedCall = { method, path: url.pathname, query: url.searchParams, body, headers, url: raw };
    calls.push(call);
    const key = routeKey(method, url.pathname);
    const route = table.get(key);
    if (route === undefined) {
      unrouted.push(key);
      throw new Error(`the fake API has no answer for ${key}`);
    }
    if (typeof route === "function") return responseOf(await route(call), false);
    return responseOf(route, true);
  });
  const onUnauthorized = vi.fn<(error: ApiError) => void>();
  const client = new ApiClient({ tokens: memoryTokenStore(TOKEN), fetch, onUnauthorized });
  return {
    client,
    fetch,
    onUnauthorized,
    calls,
    on,
    callsTo: (route) => calls.filter((call) => routeKey(call.method, call.path) === route),
    urls: () => calls.map((call) => call.url),
  };
}
