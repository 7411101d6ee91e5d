/**
 * What to tell the reader when an action on messages failed: a 403 names
 * what their role may not do, anything else (409 included) shows the API's
 * own message, which says what is wrong.
 */

import { ApiError } from "@/api";

export function actionError(error: unknown, action: string): string {
  if (error instanceof ApiError && error.status === 403) return `Your role may not ${action}.`;
  if (error instanceof Error) return error.message;
  return String(error);
}
