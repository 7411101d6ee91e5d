/**
 * The portal's pages. Every page but sign-in needs a token; without one the
 * guard sends the reader to sign in and back afterwards (`?next=`).
 */

import { createRouter, createWebHistory, type Router, type RouterHistory } from "vue-router";
import type { TokenStore } from "./api";

export function makeRouter(tokens: TokenStore, history: RouterHistory = createWebHistory()): Router {
  const router = createRouter({
    history,
    routes: [
      { path: "/", redirect: { name: "organizations" } },
      {
        path: "/sign-in",
        name: "sign-in",
        component: () => import("./views/SignIn.vue"),
        meta: { public: true },
      },
      {
        path: "/organizations",
        name: "organizations",
        component: () => import("./views/OrganizationsPage.vue"),
      },
      {
        path: "/organizations/:orgId/groups",
        name: "groups",
        component: () => import("./views/GroupsPage.vue"),
        props: true,
      },
      {
        path: "/organizations/:orgId/groups/:groupId/devices",
        name: "devices",
        component: () => import("./views/DevicesPage.vue"),
        props: true,
      },
      {
        path: "/organizations/:orgId/groups/:groupId/devices/:deviceId/messages",
        name: "messages",
        component: () => import("./views/MessagesPage.vue"),
        props: true,
      },
      { path: "/:rest(.*)*", name: "not-found", component: () => import("./views/NotFound.vue") },
    ],
  });
  router.beforeEach((to) => {
    if (to.meta.public || tokens.get() !== null) return true;
    return { name: "sign-in", query: { next: to.fullPath } };
  });
  return router;
}
