/** Typed calls of the REST API for callbacks (with their types). */

export {};
