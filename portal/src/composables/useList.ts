/**
 * One page of a list from the API, with the states every list shows:
 * loading, ready (maybe empty) and error. Pages by offset; a newer load
 * wins over an older one that answers late.
 */

import { computed, ref, shallowRef, type Ref } from "vue";
import type { ApiError, Page } from "@/api";
import type { Paging } from "@/api/types";

export type ListState = "loading" | "ready" | "error";

export interface List<T> {
  state: Ref<ListState>;
  items: Ref<T[]>;
  total: Ref<number | null>;
  error: Ref<ApiError | Error | null>;
  offset: Ref<number>;
  limit: number;
  hasPrevious: Ref<boolean>;
  hasNext: Ref<boolean>;
  load(offset?: number): Promise<void>;
}

export function useList<T>(fetchPage: (paging: Paging) => Promise<Page<T>>, limit = 50): List<T> {
  const state = ref<ListState>("loading");
  const items = shallowRef<T[]>([]);
  const total = ref<number | null>(null);
  const error = shallowRef<ApiError | Error | null>(null);
  const offset = ref(0);
  const more = ref(false);
  let latest = 0;

  async function load(at = offset.value): Promise<void> {
    const ticket = ++latest;
    state.value = "loading";
    error.value = null;
    try {
      const page = await fetchPage({ offset: at, limit });
      if (ticket !== latest) return;
      items.value = page.items;
      total.value = page.total;
      offset.value = at;
      more.value = page.total !== null ? at + page.items.length < page.total : page.items.length === limit;
      state.value = "ready";
    } catch (caught) {
      if (ticket !== latest) return;
      error.value = caught instanceof Error ? caught : new Error(String(caught));
      state.value = "error";
    }
  }

  return {
    state,
    items,
    total,
    error,
    offset,
    limit,
    hasPrevious: computed(() => offset.value > 0),
    hasNext: more,
    load,
  };
}
