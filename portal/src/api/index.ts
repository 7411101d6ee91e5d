/** The API client of the portal: import from here, not from the modules. */

export { ApiClient, queryString } from "./client";
export type { ClientOptions, Page, Query, RequestOptions } from "./client";
export { ApiError } from "./errors";
export type { ErrorBody } from "./errors";
export * from "./resources";
export { memoryTokenStore, storageTokenStore } from "./tokens";
export type { TokenStore } from "./tokens";
export type * from "./types";
export * from "./devices";
export * from "./messages";
export * from "./callbacks";
export * from "./organizations";
