/**
 * One change made through the API (a form's submit, a button), with what
 * every such change shows: busy while it runs, then its failure where it
 * belongs. 422 `details` go next to their fields; 403 reads as "your role
 * may not …"; 409 and every other failure show the API's own message.
 * Nothing is swallowed: an error that is not an API error is shown too.
 */

import { ref, shallowRef, type Ref } from "vue";
import { ApiError } from "@/api";

export interface Failure {
  /** The text shown above or beside the form; null when only fields failed. */
  message: string | null;
  /** Field name → what is wrong with it (from 422 `details`). */
  fields: Record<string, string>;
}

interface ValidationDetail {
  loc?: unknown;
  msg?: unknown;
}

function fieldOf(detail: ValidationDetail, fields: readonly string[]): string | null {
  const loc = Array.isArray(detail.loc) ? detail.loc : [];
  const named = loc.find((part): part is string => typeof part === "string" && fields.includes(part));
  return named ?? null;
}

function validationFailure(error: ApiError, fields: readonly string[]): Failure {
  const details = Array.isArray(error.details) ? (error.details as ValidationDetail[]) : [];
  const failure: Failure = { message: null, fields: {} };
  const unplaced: string[] = [];
  for (const detail of details) {
    const field = fieldOf(detail, fields);
    const text = String(detail.msg ?? "invalid");
    if (field !== null) failure.fields[field] ??= text;
    else unplaced.push(text);
  }
  if (unplaced.length > 0 || Object.keys(failure.fields).length === 0) {
    failure.message = unplaced.length > 0 ? `${error.message}: ${unplaced.join("; ")}` : error.message;
  }
  return failure;
}

/** How a failed change reads; `what` completes "Your role may not …". */
export function explainFailure(error: unknown, what: string, fields: readonly string[] = []): Failure {
  if (!(error instanceof ApiError)) {
    return { message: error instanceof Error ? error.message : String(error), fields: {} };
  }
  if (error.status === 403) return { message: `Your role may not ${what}.`, fields: {} };
  if (error.status === 422 && error.code === "validation_error") return validationFailure(error, fields);
  return { message: error.message, fields: {} };
}

export interface ApiAction<A extends unknown[], R> {
  busy: Ref<boolean>;
  failure: Ref<Failure | null>;
  /** Runs the change; its result, or undefined when it failed (the failure is shown). */
  run(...args: A): Promise<R | undefined>;
  reset(): void;
}

export interface ActionOptions {
  /** Completes "Your role may not …" for a 403, e.g. "create groups". */
  what: string;
  /** The form's field names that 422 `details` may point at. */
  fields?: readonly string[];
}

export function useApiAction<A extends unknown[], R>(
  action: (...args: A) => Promise<R>,
  options: ActionOptions,
): ApiAction<A, R> {
  const busy = ref(false);
  const failure = shallowRef<Failure | null>(null);

  async function run(...args: A): Promise<R | undefined> {
    busy.value = true;
    failure.value = null;
    try {
      return await action(...args);
    } catch (error) {
      failure.value = explainFailure(error, options.what, options.fields);
      return undefined;
    } finally {
      busy.value = false;
    }
  }

  return { busy, failure, run, reset: () => (failure.value = null) };
}
