"""One delivery attempt, as values: what to send, and what its result means.

Pure, so that the dispatcher keeps only the waiting and the bookkeeping:
`prepare` turns a held delivery and its message into the request to send, or
into a final outcome when there is nothing to send (the message is gone, the
payload fails or gives undefined/null, the request cannot be built);
`sent` reads the endpoint's answer as success, a retry at the next delay, or
failure after the last one.

`event_message` turns a `message.stored` event (which carries every column
of the message) and its device into the same row the database would give,
so fresh deliveries need no read of their message.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from nubes import __version__
from nubes.callbacks.book import CallbackBook
from nubes.callbacks.model import CallbackConfig, OutgoingRequest, SendResult
from nubes.callbacks.request import build_request, log_request, logged_body
from nubes.callbacks.store import Claimed, Outcome
from nubes.callbacks.transform import SKIP, TransformError
from nubes.callbacks.transform import message_document as make_document
from nubes.errors import NubesError

__all__ = ["USER_AGENT", "event_message", "final", "prepare", "sent", "skipped"]

USER_AGENT = f"nubes/{__version__}"
# The columns of a message an event must carry to stand in for its row.
EVENT_COLUMNS = (
    "id", "created_at", "organization_id", "group_id", "device_id", "session_id", "type",
    "direction", "body", "raw", "codec_hash", "decode_state", "decode_error", "downlink_id",
)  # fmt: skip


def prepare(
    book: CallbackBook,
    config: CallbackConfig,
    delivery: Claimed,
    message: Mapping[str, Any] | None,
    at: datetime,
) -> OutgoingRequest | Outcome:
    """The request for this attempt, or its outcome when nothing is to be sent."""
    if message is None:
        return final(delivery, at, "the message no longer exists")
    document = make_document(message, device_of(message))
    try:
        transformed = book.payload(config).apply(document)
    except TransformError as err:
        return final(delivery, at, f"payload: {err.message}")
    if transformed is SKIP:
        return skipped(delivery, at)
    try:
        return build_request(
            config,
            document,
            transformed,
            message["raw"] or b"",
            delivery_id=delivery.id,
            message_id=delivery.message_id,
            timestamp=int(time.time()),
            user_agent=USER_AGENT,
        )
    except (NubesError, ValueError) as err:
        return final(delivery, at, f"request: {err}")


def final(delivery: Claimed, at: datetime, error: str) -> Outcome:
    """Failed for good: retrying the same message and configuration cannot help."""
    return Outcome(
        delivery.id, delivery.callback_id, at, "failed", delivery.attempts + 1,
        "failure", endpoint=False, error=error,
    )  # fmt: skip


def skipped(delivery: Claimed, at: datetime) -> Outcome:
    return Outcome(
        delivery.id, delivery.callback_id, at, "skipped", delivery.attempts + 1,
        "skipped", endpoint=False, error="the payload is undefined or null: nothing to send",
    )  # fmt: skip


def sent(
    delivery: Claimed,
    config: CallbackConfig,
    at: datetime,
    request: OutgoingRequest,
    result: SendResult,
) -> Outcome:
    attempts = delivery.attempts + 1
    outcome = Outcome(
        delivery.id, delivery.callback_id, at, "succeeded", attempts, "success",
        endpoint=True, duration_ms=result.duration_ms, request=log_request(request),
        response=response_log(result), status=result.status,
    )  # fmt: skip
    if result.ok:
        return outcome
    outcome.outcome = "failure"
    outcome.error = result.error or f"HTTP {result.status}"
    if attempts <= len(config.retry_delays):
        outcome.state = "pending"
        outcome.next_attempt_at = at + timedelta(seconds=config.retry_delays[attempts - 1])
    else:
        outcome.state = "failed"
    return outcome


def response_log(result: SendResult) -> dict[str, Any] | None:
    if result.status is None:
        return None
    return {
        "status": result.status,
        "headers": [[name, value] for name, value in result.headers],
        **logged_body(result.body),
    }


def device_of(message: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": message["device_id"],
        "name": message["device_name"],
        "serial": message["device_serial"],
        "label": message["device_label"],
    }


def event_message(
    event: Mapping[str, Any], device: Mapping[str, Any] | None, message_id: uuid.UUID
) -> dict[str, Any] | None:
    """The message row (with its device) an event stands for; None if it cannot.

    `message_id` is the event's `id`, already parsed by the caller.
    """
    if device is None or any(column not in event for column in EVENT_COLUMNS):
        return None  # e.g. an event of an older worker: read the row instead
    try:
        raw = event["raw"]
        message = {column: event[column] for column in EVENT_COLUMNS}
        message["id"] = message_id
        message["created_at"] = datetime.fromisoformat(event["created_at"])
        message["raw"] = None if raw is None else base64.b64decode(raw, validate=True)
    except (TypeError, ValueError, binascii.Error):
        return None
    message["device_name"] = device["name"]
    message["device_serial"] = device["serial"]
    message["device_label"] = device["label"]
    return message
