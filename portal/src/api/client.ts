/**
 * The one place the portal talks HTTP: a small wrapper around `fetch`.
 *
 * Same origin by default (the API serves the portal). It adds the bearer
 * token, turns the API's error shape into `ApiError`, reads the paging
 * headers of lists (`x-total`, `x-has-more`, `x-next-cursor`), and when a
 * request made with a token answers 401 (expired or revoked), forgets the
 * token and tells `onUnauthorized`, which sends the user to sign in again.
 * `fetch` is injected: unit tests pass a mock, nothing else changes.
 */

import { ApiError, errorFromResponse, networkError } from "./errors";
import type { TokenStore } from "./tokens";

export type QueryValue = string | number | boolean | null | undefined;
export type Query = Record<string, QueryValue | readonly QueryValue[]>;

export interface Page<T> {
  items: T[];
  /** `x-total`: matching objects in all pages; null when the server did not count. */
  total: number | null;
  /** `x-has-more` when sent; otherwise whether a next cursor came. */
  hasMore: boolean;
  nextCursor: string | null;
}

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  /** Send the bearer token (default). Sign-in does not. */
  auth?: boolean;
  signal?: AbortSignal;
}

export interface ClientOptions {
  tokens: TokenStore;
  baseUrl?: string;
  fetch?: typeof fetch;
  onUnauthorized?: (error: ApiError) => void;
}

export function queryString(query: Query | undefined): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query ?? {})) {
    const values = Array.isArray(value) ? value : [value];
    for (const item of values) {
      if (item !== null && item !== undefined && item !== "") params.append(name, String(item));
    }
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

function pageOf<T>(items: T[], headers: Headers): Page<T> {
  const total = headers.get("x-total");
  const cursor = headers.get("x-next-cursor");
  const more = headers.get("x-has-more");
  return {
    items,
    total: total !== null && /^\d+$/.test(total) ? Number(total) : null,
    nextCursor: cursor || null,
    hasMore: more !== null ? more === "true" : Boolean(cursor),
  };
}

export class ApiClient {
  readonly tokens: TokenStore;
  private readonly baseUrl: string;
  private readonly fetcher: typeof fetch;
  private readonly onUnauthorized: (error: ApiError) => void;

  constructor(options: ClientOptions) {
    this.tokens = options.tokens;
    this.baseUrl = (options.baseUrl ?? "").replace(/\/$/, "");
    this.fetcher = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.onUnauthorized = options.onUnauthorized ?? (() => undefined);
  }

  async get<T>(path: string, query?: Query): Promise<T> {
    return (await this.send("GET", path, { query })).json() as Promise<T>;
  }

  async list<T>(path: string, query?: Query): Promise<Page<T>> {
    const response = await this.send("GET", path, { query });
    return pageOf((await response.json()) as T[], response.headers);
  }

  async post<T>(path: string, body?: unknown, options: RequestOptions = {}): Promise<T> {
    return this.json<T>(await this.send("POST", path, { ...options, body }));
  }

  async patch<T>(path: string, body: unknown): Promise<T> {
    return this.json<T>(await this.send("PATCH", path, { body }));
  }

  async delete(path: string): Promise<void> {
    await this.send("DELETE", path, {});
  }

  /** The raw response of a successful request; every failure is an ApiError. */
  async send(method: string, path: string, options: RequestOptions): Promise<Response> {
    const token = options.auth === false ? null : this.tokens.get();
    let response: Response;
    try {
      response = await this.fetcher(this.baseUrl + path + queryString(options.query), {
        method,
        headers: this.headers(token, options.body !== undefined),
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        signal: options.signal,
      });
    } catch (error) {
      if (error instanceof DOMException && error.name === "AbortError") throw error;
      throw networkError(error);
    }
    if (response.ok) return response;
    const error = await errorFromResponse(response);
    if (response.status === 401 && token !== null) {
      this.tokens.clear();
      this.onUnauthorized(error);
    }
    throw error;
  }

  private headers(token: string | null, hasBody: boolean): Record<string, string> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (hasBody) headers["content-type"] = "application/json";
    if (token !== null) headers.authorization = `Bearer ${token}`;
    return headers;
  }

  private async json<T>(response: Response): Promise<T> {
    const text = await response.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }
}
