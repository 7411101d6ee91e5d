/** Typed calls of the REST API for organizations (with their types). */

export {};
