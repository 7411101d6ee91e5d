"""Callbacks: stored messages delivered to customers' webhooks.

`model` holds the shapes every part shares; `transform` evaluates the
callback's JSONata payload and `{{path}}` templates (pure); `request` turns
a callback and a transformed message into the HTTP request to send, signed
(pure); `guard` and `sender` send it, refusing private addresses;
`dispatcher` turns `message.stored` events into durable deliveries and
delivers them with retries, per-callback limits and a circuit breaker.
"""
