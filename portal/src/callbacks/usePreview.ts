/**
 * The editor's live preview: asks the API to transform a message of the
 * group with the payload being typed, at most once per pause in typing
 * (`delayMs`), and only the answer to the latest request counts: an older
 * one still in flight is aborted, and one that answers late is ignored.
 */

import { onScopeDispose, ref, shallowRef, watch, type Ref, type ShallowRef } from "vue";
import { previewCallbackPayload, type ApiClient, type CallbackPreview } from "@/api";

export type PreviewState = "loading" | "ready" | "error";

export interface CallbackPreviewView {
  state: Ref<PreviewState>;
  preview: ShallowRef<CallbackPreview | null>;
  error: ShallowRef<Error | null>;
  refresh(): Promise<void>;
}

export function useCallbackPreview(
  client: ApiClient,
  groupId: () => string,
  payload: () => string,
  messageId: () => string | null,
  delayMs = 300,
): CallbackPreviewView {
  const state = ref<PreviewState>("loading");
  const preview = shallowRef<CallbackPreview | null>(null);
  const error = shallowRef<Error | null>(null);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let inFlight: AbortController | null = null;

  async function refresh(): Promise<void> {
    clearTimeout(timer);
    inFlight?.abort();
    const mine = new AbortController();
    inFlight = mine;
    state.value = "loading";
    try {
      const answer = await previewCallbackPayload(client, groupId(), payload(), messageId(), mine.signal);
      if (inFlight !== mine) return;
      preview.value = answer;
      error.value = null;
      state.value = "ready";
    } catch (caught) {
      if (inFlight !== mine || mine.signal.aborted) return;
      error.value = caught instanceof Error ? caught : new Error(String(caught));
      state.value = "error";
    }
  }

  function later(): void {
    clearTimeout(timer);
    state.value = "loading";
    timer = setTimeout(() => void refresh(), delayMs);
  }

  watch(payload, later);
  watch(messageId, () => void refresh());
  void refresh();
  onScopeDispose(() => {
    clearTimeout(timer);
    inFlight?.abort();
  });
  return { state, preview, error, refresh };
}
