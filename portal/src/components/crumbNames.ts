/**
 * The names the breadcrumb shows, by id, shared: a page that renames its
 * device (or group) sets the new name here and the breadcrumb follows
 * without asking the API again.
 */

import { reactive } from "vue";

export const crumbNames = reactive(new Map<string, string>());
