/** Typed calls of the REST API for messages (with their types). */

export {};
