/** Typed calls of the REST API for devices (with their types). */

export {};
