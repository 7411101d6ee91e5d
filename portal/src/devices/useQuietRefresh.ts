/**
 * Keeps the page of a list fresh without the loading state: every
 * `intervalMs` (while the tab is visible and the list is ready) the same
 * page is fetched again and replaces the rows in place, so "last seen" and
 * the heat maps follow the devices while the page is open. A failed refresh
 * leaves the rows as they are and says so in `problem`.
 */

import { onScopeDispose, ref, type Ref } from "vue";
import type { Page } from "@/api";
import type { Paging } from "@/api/types";
import type { List } from "@/composables/useList";

export interface QuietRefresh {
  problem: Ref<string | null>;
  refresh(): Promise<void>;
}

export function useQuietRefresh<T>(
  list: List<T>,
  fetchPage: (paging: Paging) => Promise<Page<T>>,
  intervalMs = 10_000,
): QuietRefresh {
  const problem = ref<string | null>(null);
  let busy = false;

  async function refresh(): Promise<void> {
    if (busy || list.state.value !== "ready") return;
    if (typeof document !== "undefined" && document.visibilityState === "hidden") return;
    busy = true;
    const offset = list.offset.value;
    try {
      const page = await fetchPage({ offset, limit: list.limit });
      if (list.state.value !== "ready" || list.offset.value !== offset) return; // a newer load won
      list.items.value = page.items;
      list.total.value = page.total;
      problem.value = null;
    } catch (error) {
      problem.value = error instanceof Error ? error.message : String(error);
    } finally {
      busy = false;
    }
  }

  const timer = setInterval(() => void refresh(), intervalMs);
  onScopeDispose(() => clearInterval(timer));
  return { problem, refresh };
}
