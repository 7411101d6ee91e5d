/**
 * Where the access token of the sign-in lives: sessionStorage, so that it
 * ends with the browser tab and is not shared with other tabs.
 */

export interface TokenStore {
  get(): string | null;
  set(token: string): void;
  clear(): void;
}

const KEY = "nubes.access_token";

export function storageTokenStore(storage: Storage): TokenStore {
  return {
    get: () => storage.getItem(KEY),
    set: (token) => storage.setItem(KEY, token),
    clear: () => storage.removeItem(KEY),
  };
}

/** A store in memory, for tests and for browsers that refuse storage. */
export function memoryTokenStore(initial: string | null = null): TokenStore {
  let token = initial;
  return {
    get: () => token,
    set: (value) => {
      token = value;
    },
    clear: () => {
      token = null;
    },
  };
}
