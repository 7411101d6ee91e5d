/** A copy of `source` that follows it `delayMs` after it stops changing: typing does not ask the API per key. */

import { onScopeDispose, ref, watch, type Ref } from "vue";

export function useDebounced<T>(source: Ref<T>, delayMs = 250): Ref<T> {
  const settled = ref(source.value) as Ref<T>;
  let timer: ReturnType<typeof setTimeout> | undefined;
  watch(source, (value) => {
    clearTimeout(timer);
    timer = setTimeout(() => (settled.value = value), delayMs);
  });
  onScopeDispose(() => clearTimeout(timer));
  return settled;
}
