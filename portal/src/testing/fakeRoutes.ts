/**
 * A fake API for unit tests: a mocked `fetch` that answers by "METHOD path"
 * (path without the query) and records every call, wrapped in a real
 * `ApiClient`, so components are tested through the same client they use.
 */

import { vi } from "vitest";
import { ApiClient, memoryTokenStore } from "@/api";

export interface FakeAnswer {
  status?: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export type Route = FakeAnswer | ((call: RecordedCall) => FakeAnswer);

export interface RecordedCall {
  method: string;
  path: string;
  query: URLSearchParams;
  body: unknown;
}

export interface FakeApi {
  client: ApiClient;
  calls: RecordedCall[];
  /** Sets or replaces the answer of "METHOD /path". */
  on(route: string, answer: Route): void;
  /** The calls of one "METHOD /path". */
  callsTo(route: string): RecordedCall[];
}

/** A page of a list, with `x-total`. */
export function page(items: unknown[], total = items.length): FakeAnswer {
  return { body: items, headers: { "x-total": String(total) } };
}

/** The API's error shape. */
export function apiError(status: number, code: string, message: string, details: unknown = null): FakeAnswer {
  return { status, body: { error: { code, message, details } } };
}

export function fakeApi(routes: Record<string, Route> = {}): FakeApi {
  const table = new Map<string, Route>(Object.entries(routes));
  const calls: RecordedCall[] = [];
  const fetch = vi.fn(async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const url = new URL(String(input), "http://portal.test");
    const method = init?.method ?? "GET";
    const body = typeof init?.body === "string" ? (JSON.parse(init.body) as unknown) : undefined;
    const call = { method, path: url.pathname, query: url.searchParams, body };
    calls.push(call);
    const route = table.get(`${method} ${url.pathname}`);
    if (route === undefined) throw new Error(`no fake answer for ${method} ${url.pathname}`);
    const answer = typeof route === "function" ? route(call) : route;
    const status = answer.status ?? 200;
    const text = answer.body === undefined || status === 204 ? null : JSON.stringify(answer.body);
    return new Response(text, {
      status,
      headers: { "content-type": "application/json", ...answer.headers },
    });
  });
  const tokens = memoryTokenStore("t0k3n");
  return {
    client: new ApiClient({ tokens, fetch }),
    calls,
    on: (route, answer) => table.set(route, answer),
    callsTo: (route) => calls.filter((call) => `${call.method} ${call.path}` === route),
  };
}

/** `/v1/auth/me` of a user with `role` in organization `orgId`. */
export function meWithRole(orgId: string, role: string): FakeAnswer {
  return {
    body: {
      kind: "user",
      id: "u-me",
      email: "me@example.com",
      label: "me",
      totp_enabled: false,
      organizations: [{ organization_id: orgId, organization_name: "acme", role }],
    },
  };
}

/** Lets pending promises and Vue's updates run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i += 1) await new Promise((resolve) => setTimeout(resolve, 0));
}
