/**
 * What the portal says when the API refuses: a 403 tells what the role may
 * not do, a 409 is the API's own message, a 422 puts each problem next to
 * its field. Nothing is swallowed: an unknown error shows its message.
 */

import { ApiError } from "@/api";

/** One sentence for a failed action, e.g. `describeProblem(e, "add devices")`. */
export function describeProblem(error: unknown, action: string): string {
  if (!(error instanceof ApiError)) return error instanceof Error ? error.message : String(error);
  if (error.status === 403) return `Your role may not ${action} in this organization.`;
  if (error.status === 404) return `Not found: ${error.message}.`;
  return error.message;
}

interface ValidationItem {
  loc?: unknown;
  msg?: unknown;
}

/**
 * The 422 `validation_error` details keyed by body field (`serial`,
 * `claim_token`, …); problems of no body field are left out (the caller
 * shows the error's message for those).
 */
export function fieldProblems(error: unknown): Record<string, string> {
  const problems: Record<string, string> = {};
  if (!(error instanceof ApiError) || error.code !== "validation_error" || !Array.isArray(error.details)) {
    return problems;
  }
  for (const item of error.details as ValidationItem[]) {
    const loc = Array.isArray(item.loc) ? item.loc : [];
    const field = loc[0] === "body" ? loc[1] : undefined;
    if (typeof field === "string" && typeof item.msg === "string") problems[field] ??= item.msg;
  }
  return problems;
}
