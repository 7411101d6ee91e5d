/**
 * Where a device's pages are. The routes carry organization / group /
 * device so that the breadcrumb needs no lookup, but a device may be in no
 * group (`group_id: null`): such a device's pages use `NO_GROUP` as the
 * group parameter, which the breadcrumb shows as "(no group)".
 */

import type { RouteLocationRaw } from "vue-router";
import type { Device } from "@/api";

/** The group parameter of a device in no group; never a valid group id (those are UUIDs). */
export const NO_GROUP = "-";

export function groupParam(groupId: string | null): string {
  return groupId ?? NO_GROUP;
}

export function isNoGroup(groupId: string | null | undefined): boolean {
  return groupId === NO_GROUP;
}

type DevicePlace = Pick<Device, "id" | "organization_id" | "group_id">;

export function deviceLocation(device: DevicePlace, name = "device"): RouteLocationRaw {
  return {
    name,
    params: { orgId: device.organization_id, groupId: groupParam(device.group_id), deviceId: device.id },
  };
}

export function sessionLocation(device: DevicePlace, sessionId: number): RouteLocationRaw {
  return {
    name: "session",
    params: {
      orgId: device.organization_id,
      groupId: groupParam(device.group_id),
      deviceId: device.id,
      sessionId: String(sessionId),
    },
  };
}
