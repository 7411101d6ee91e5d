/**
 * Errors of the API client.
 *
 *     Error
 *     └── ApiError            every failed request; `status` 0 when no answer came
 *         ├── code "network_error"   fetch failed (server down, offline)
 *         ├── code "bad_response"    an answer that is not the API's JSON
 *         └── code <the API's>       `{"error": {code, message, details}}` of docs/api.md
 *
 * One class with the API's stable `code` keeps callers to one `instanceof`
 * and a switch on `code`, the way the API documents its errors.
 */

export interface ErrorBody {
  code: string;
  message: string;
  details: unknown;
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;
  /** Seconds from `Retry-After` (429), when the server said. */
  readonly retryAfter: number | null;

  constructor(status: number, body: ErrorBody, retryAfter: number | null = null) {
    super(body.message);
    this.name = "ApiError";
    this.status = status;
    this.code = body.code;
    this.details = body.details;
    this.retryAfter = retryAfter;
  }
}

function isErrorBody(value: unknown): value is ErrorBody {
  if (typeof value !== "object" || value === null) return false;
  const body = value as Record<string, unknown>;
  return typeof body.code === "string" && typeof body.message === "string";
}

/** The typed error of a failed response, whatever its body held. */
export async function errorFromResponse(response: Response): Promise<ApiError> {
  const retry = response.headers.get("retry-after");
  const retryAfter = retry !== null && /^\d+$/.test(retry) ? Number(retry) : null;
  let payload: unknown = null;
  try {
    payload = await response.json();
  } catch {
    // Not JSON: a proxy's page, an empty body. Described below.
  }
  const inner = (payload as { error?: unknown } | null)?.error;
  if (isErrorBody(inner)) {
    const body = { code: inner.code, message: inner.message, details: inner.details ?? null };
    return new ApiError(response.status, body, retryAfter);
  }
  const message = `the server answered ${response.status} ${response.statusText}`.trim();
  return new ApiError(response.status, { code: "bad_response", message, details: null }, retryAfter);
}

export function networkError(cause: unknown): ApiError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new ApiError(0, {
    code: "network_error",
    message: "cannot reach the server; check your connection",
    details: reason,
  });
}
