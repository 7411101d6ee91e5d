/**
 * The portal's pages. Every page but sign-in needs a token; without one the
 * guard sends the reader to sign in and back afterwards (`?next=`).
 *
 * The paths follow the breadcrumb: organization / group / device, so a link
 * to any page carries everything its breadcrumb needs.
 */

import { createRouter, createWebHistory, type Router, type RouteRecordRaw, type RouterHistory } from "vue-router";
import type { TokenStore } from "./api";

const ORG = "/organizations/:orgId";
const GROUP = `${ORG}/groups/:groupId`;
const DEVICE = `${GROUP}/devices/:deviceId`;

const routes: RouteRecordRaw[] = [
  { path: "/", redirect: { name: "organizations" } },
  {
    path: "/sign-in",
    name: "sign-in",
    component: () => import("./views/SignIn.vue"),
    meta: { public: true },
  },
  { path: "/organizations", name: "organizations", component: () => import("./views/OrganizationsPage.vue") },
  { path: `${ORG}/groups`, name: "groups", component: () => import("./views/GroupsPage.vue"), props: true },
  {
    path: `${ORG}/settings`,
    name: "settings",
    component: () => import("./views/SettingsPage.vue"),
    props: true,
  },
  { path: `${GROUP}/devices`, name: "devices", component: () => import("./views/DevicesPage.vue"), props: true },
  {
    path: `${GROUP}/messages`,
    name: "group-messages",
    component: () => import("./views/MessagesPage.vue"),
    props: true,
  },
  {
    path: `${GROUP}/callbacks`,
    name: "callbacks",
    component: () => import("./views/CallbacksPage.vue"),
    props: true,
  },
  {
    path: `${GROUP}/callbacks/new`,
    name: "callback-new",
    component: () => import("./views/CallbackEditor.vue"),
    props: true,
  },
  {
    path: `${GROUP}/callbacks/:callbackId`,
    name: "callback",
    component: () => import("./views/CallbackEditor.vue"),
    props: true,
  },
  { path: DEVICE, name: "device", component: () => import("./views/DevicePage.vue"), props: true },
  { path: `${DEVICE}/messages`, name: "messages", component: () => import("./views/MessagesPage.vue"), props: true },
  { path: `${DEVICE}/sessions`, name: "sessions", component: () => import("./views/SessionsPage.vue"), props: true },
  {
    path: `${DEVICE}/sessions/:sessionId`,
    name: "session",
    component: () => import("./views/SessionLogPage.vue"),
    props: true,
  },
  {
    path: `${DEVICE}/downlinks`,
    name: "downlinks",
    component: () => import("./views/DownlinksPage.vue"),
    props: true,
  },
  { path: "/:rest(.*)*", name: "not-found", component: () => import("./views/NotFound.vue") },
];

export function makeRouter(tokens: TokenStore, history: RouterHistory = createWebHistory()): Router {
  const router = createRouter({ history, routes });
  router.beforeEach((to) => {
    if (to.meta.public || tokens.get() !== null) return true;
    return { name: "sign-in", query: { next: to.fullPath } };
  });
  return router;
}
