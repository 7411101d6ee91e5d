/**
 * Mounts a component as the portal would: with the fake API's client
 * provided under `clientKey` and router links stubbed (their `to` can be
 * read from the stub); `stubs` leaves out children that need a real route.
 * Tests that need a real router provide `apiProvide(api)` themselves.
 */

import { mount, RouterLinkStub, type VueWrapper } from "@vue/test-utils";
import type { Component, DefineComponent } from "vue";
import { clientKey } from "@/session";
import type { FakeApi } from "./fakeApi";

/** The `global.provide` that hands the fake API's client to components. */
export function apiProvide(api: FakeApi): Record<symbol, unknown> {
  return { [clientKey as symbol]: api.client };
}

export function mountWithApi(
  component: Component,
  api: FakeApi,
  props: Record<string, unknown> = {},
  stubs: Record<string, boolean> = {},
): VueWrapper {
  return mount(component as DefineComponent, {
    props,
    attachTo: document.body,
    global: { provide: apiProvide(api), stubs: { RouterLink: RouterLinkStub, ...stubs } },
  });
}
