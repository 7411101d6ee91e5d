/**
 * The signed-in session of the portal: one API client for the whole app,
 * handed to components with provide/inject so tests can give their own.
 */

import { inject, type InjectionKey } from "vue";
import { ApiClient } from "./api";

export const clientKey: InjectionKey<ApiClient> = Symbol("nubes.api");

export function useClient(): ApiClient {
  const client = inject(clientKey);
  if (!client) throw new Error("no API client provided");
  return client;
}
