/**
 * The live tail of a messages page: the scope's new messages as they are
 * stored, read from `GET /v1/messages/stream` (Server-Sent Events).
 *
 * Read with `fetch` through the API client, not `EventSource`: the token
 * stays in the Authorization header (never in a URL), and an expired token
 * (401) goes through the client's unauthorized path, back to sign-in.
 * The stream resumes after the last message it saw (`last_event_id`), so a
 * reconnection after a network error, a server restart or a `resync` event
 * loses nothing and repeats nothing. It starts after the newest message the
 * page shows, to close the gap between loading the page and opening it.
 *
 * Paused, it keeps reading and counts what came (`pending`); `resume` hands
 * the held messages over. It stops when the component's scope ends.
 */

import { onScopeDispose, ref, shallowRef, type Ref } from "vue";
import { ApiError, openMessageStream, type ApiClient, type Message, type MessageScope } from "@/api";
import { SseParser, type SseEvent } from "@/messages/sse";

export type StreamStatus = "off" | "connecting" | "live" | "reconnecting" | "failed";

export interface MessageStreamOptions {
  client: ApiClient;
  scope: MessageScope;
  /** Only messages this accepts are handed over (the page's filter). */
  accept: (message: Message) => boolean;
  /** Gets new messages, oldest first, while not paused. */
  deliver: (messages: Message[]) => void;
  /** First wait before reconnecting; doubles up to `maxRetryMs`. */
  retryMs?: number;
  maxRetryMs?: number;
}

export interface MessageStream {
  status: Ref<StreamStatus>;
  /** Why the stream gave up (`failed`): a 403 or 404 that retrying cannot mend. */
  error: Ref<ApiError | null>;
  paused: Ref<boolean>;
  /** Messages held while paused, oldest first. */
  pending: Ref<Message[]>;
  start(afterId: string | null): void;
  stop(): void;
  pause(): void;
  resume(): void;
}

/** At most this many held messages while paused; older ones are let go (the page can reload). */
export const MAX_PENDING = 1000;

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });
}

/** Errors that reconnecting will not mend. */
function isFinal(error: unknown): boolean {
  return error instanceof ApiError && [400, 401, 403, 404].includes(error.status);
}

export function useMessageStream(options: MessageStreamOptions): MessageStream {
  const status = ref<StreamStatus>("off");
  const error = shallowRef<ApiError | null>(null);
  const paused = ref(false);
  const pending = shallowRef<Message[]>([]);
  const retryMs = options.retryMs ?? 2000;
  const maxRetryMs = options.maxRetryMs ?? 30_000;
  let lastId: string | null = null;
  let controller: AbortController | null = null;

  function hand(messages: Message[]): void {
    if (messages.length === 0) return;
    if (paused.value) pending.value = [...pending.value, ...messages].slice(-MAX_PENDING);
    else options.deliver(messages);
  }

  function take(event: SseEvent): boolean {
    if (event.event === "resync") return false;
    if (event.event !== "message") return true;
    const message = JSON.parse(event.data) as Message;
    lastId = event.id ?? message.id;
    if (options.accept(message)) hand([message]);
    return true;
  }

  /** Reads one connection to its end; false when the server asked to resync. */
  async function read(response: Response, signal: AbortSignal): Promise<void> {
    if (!response.body) throw new Error("the stream has no body");
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const parser = new SseParser();
    signal.addEventListener("abort", () => void reader.cancel().catch(() => undefined), { once: true });
    status.value = "live";
    for (;;) {
      const { done, value } = await reader.read();
      if (done || signal.aborted) return;
      for (const event of parser.feed(decoder.decode(value, { stream: true }))) {
        if (!take(event)) return void reader.cancel().catch(() => undefined);
      }
    }
  }

  async function run(signal: AbortSignal): Promise<void> {
    let wait = retryMs;
    while (!signal.aborted) {
      try {
        const response = await openMessageStream(options.client, options.scope, lastId, signal);
        wait = retryMs; // it answered: the next reconnect starts patient again
        await read(response, signal);
      } catch (caught) {
        if (signal.aborted) return;
        if (isFinal(caught)) {
          error.value = caught as ApiError;
          status.value = "failed";
          return;
        }
      }
      if (signal.aborted) return;
      status.value = "reconnecting";
      await sleep(wait, signal);
      wait = Math.min(wait * 2, maxRetryMs);
    }
  }

  function start(afterId: string | null): void {
    if (controller !== null) return;
    lastId = afterId;
    error.value = null;
    status.value = "connecting";
    controller = new AbortController();
    void run(controller.signal);
  }

  function stop(): void {
    controller?.abort();
    controller = null;
    status.value = "off";
  }

  function resume(): void {
    paused.value = false;
    const held = pending.value;
    pending.value = [];
    hand(held);
  }

  onScopeDispose(stop);
  return { status, error, paused, pending, start, stop, pause: () => void (paused.value = true), resume };
}
