/** Wires the portal: the token store, the API client, the router. */

import { createApp } from "vue";
import { ApiClient, memoryTokenStore, storageTokenStore, type TokenStore } from "./api";
import App from "./App.vue";
import { makeRouter } from "./router";
import { clientKey } from "./session";
import "./style.css";

function tokenStore(): TokenStore {
  try {
    return storageTokenStore(window.sessionStorage);
  } catch {
    return memoryTokenStore(); // storage disabled: signed in until the page reloads
  }
}

const tokens = tokenStore();
const client = new ApiClient({
  tokens,
  onUnauthorized: () => {
    const here = router.currentRoute.value;
    if (here.meta.public) return;
    void router.push({ name: "sign-in", query: { expired: "1", next: here.fullPath } });
  },
});
const router = makeRouter(tokens);

createApp(App).provide(clientKey, client).use(router).mount("#app");
