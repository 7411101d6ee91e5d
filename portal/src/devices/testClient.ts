/**
 * For unit tests: an ApiClient whose fetch answers from a routing function,
 * recording every call, so tests check both what is asked and what is shown.
 */

import { vi } from "vitest";
import { ApiClient, memoryTokenStore } from "@/api";

export interface Call {
  method: string;
  url: string;
  body: unknown;
}

export type Answer = { status?: number; body?: unknown; headers?: Record<string, string> };

export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Answer {
  return { status, body, headers };
}

export function apiError(status: number, code: string, message: string, details: unknown = null): Answer {
  return { status, body: { error: { code, message, details } } };
}

export function fakeClient(route: (call: Call) => Answer | Promise<Answer>): { client: ApiClient; calls: Call[] } {
  const calls: Call[] = [];
  const fetch = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const call: Call = {
      method: init?.method ?? "GET",
      url: String(input),
      body: typeof init?.body === "string" ? JSON.parse(init.body) : undefined,
    };
    calls.push(call);
    const answer = await route(call);
    const status = answer.status ?? 200;
    const text = answer.body === undefined ? null : JSON.stringify(answer.body);
    return new Response(status === 204 ? null : text, {
      status,
      headers: { "content-type": "application/json", ...(answer.headers ?? {}) },
    });
  });
  return { client: new ApiClient({ tokens: memoryTokenStore("t"), fetch }), calls };
}

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
