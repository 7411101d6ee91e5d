/**
 * Keeps a page of downlinks fresh while any of them may still change
 * (pending or sent): the device answers on its own schedule, and the reader
 * should see "delivered" and the shell answer without reloading. Polls
 * every 2 s, slower (×1.5, up to 15 s) while nothing changes, and stops as
 * soon as no downlink is active or the page goes away. The refresh is
 * quiet: it replaces the rows without the list's loading state, so the
 * table does not flicker.
 */

import { onScopeDispose, watch } from "vue";
import type { Page } from "@/api";
import type { Downlink } from "@/api/downlinks";
import { isActive } from "@/api/downlinks";
import type { Paging } from "@/api/types";
import type { List } from "./useList";

export interface PollingOptions {
  firstDelayMs?: number;
  maxDelayMs?: number;
  factor?: number;
}

export interface DownlinkPolling {
  /** Polls again soon, at the first delay (after a new downlink was queued). */
  restart(): void;
  stop(): void;
}

function fingerprint(items: readonly Downlink[]): string {
  return items.map((d) => `${d.id}:${d.state}:${d.attempts}:${d.reply_message_id ?? ""}`).join(",");
}

export function useDownlinkPolling(
  list: List<Downlink>,
  fetchPage: (paging: Paging) => Promise<Page<Downlink>>,
  options: PollingOptions = {},
): DownlinkPolling {
  const first = options.firstDelayMs ?? 2000;
  const max = options.maxDelayMs ?? 15_000;
  const factor = options.factor ?? 1.5;
  let delay = first;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let stopped = false;

  function stop(): void {
    if (timer !== null) clearTimeout(timer);
    timer = null;
  }

  async function refresh(): Promise<void> {
    timer = null;
    const offset = list.offset.value;
    const before = fingerprint(list.items.value);
    try {
      const page = await fetchPage({ offset, limit: list.limit });
      if (stopped || list.state.value !== "ready" || list.offset.value !== offset) return;
      list.items.value = page.items;
      list.total.value = page.total;
      delay = fingerprint(page.items) === before ? Math.min(max, delay * factor) : first;
    } catch {
      delay = Math.min(max, delay * factor); // a failed poll is retried later; the list keeps its rows
    }
    schedule();
  }

  function schedule(): void {
    stop();
    if (stopped || list.state.value !== "ready" || !list.items.value.some(isActive)) return;
    timer = setTimeout(() => void refresh(), delay);
  }

  watch([list.state, list.items], () => {
    if (timer === null) schedule();
  });

  onScopeDispose(() => {
    stopped = true;
    stop();
  });

  return {
    restart() {
      delay = first;
      schedule();
    },
    stop,
  };
}
