/** The current time, ticking, so that "3 min ago" stays true on an open page. */

import { onScopeDispose, ref, type Ref } from "vue";

export function useNow(intervalMs = 10_000): Ref<number> {
  const now = ref(Date.now());
  const timer = setInterval(() => {
    now.value = Date.now();
  }, intervalMs);
  onScopeDispose(() => clearInterval(timer));
  return now;
}
