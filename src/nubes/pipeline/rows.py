"""Pipeline records → database rows, checked on the way in.

Records come from the network side of the pipeline: they are parsed here
with the care due to untrusted input, since a value PostgreSQL refuses
(too long, a NUL character, a wrong type) would make it refuse the whole
batch on every delivery. Device, group and organization ids repeat in every
record and are parsed once (`known_uuid`).
"""

from __future__ import annotations

import base64
import functools
import uuid
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa

from nubes.pipeline.records import Record, unb64
from nubes.store import tables as t
from nubes.store.ingest import DEVICE_ATTRIBUTES, Changes, Row, utc


def message_row(record: Record) -> Row:
    group_id = record.get("group_id")
    downlink_id = record.get("downlink_id")
    return {
        "id": uuid.UUID(record["id"]),
        "created_at": utc(record["at"]),
        "organization_id": known_uuid(record["organization_id"]),
        "group_id": None if group_id is None else known_uuid(group_id),
        "device_id": known_uuid(record["device_id"]),
        "session_id": record.get("session_id"),
        "type": record["type"],
        "direction": record["direction"],
        "body": without_nul(record.get("body")),
        "raw": unb64(record["raw"]),
        "codec_hash": record.get("codec_hash"),
        "decode_state": None,
        "decode_error": None,
        "downlink_id": None if downlink_id is None else uuid.UUID(downlink_id),
    }


def add_session(changes: Changes, record: Record) -> None:
    device_id = known_uuid(record["device_id"])
    at = utc(record["at"])
    attributes = without_nul(record.get("attributes") or {})
    if not isinstance(attributes, dict):
        raise TypeError(f"session attributes are {type(attributes).__name__}, not an object")
    changes.sessions.append(
        {
            "id": int(record["id"]),
            "device_id": device_id,
            "organization_id": known_uuid(record["organization_id"]),
            "envelope": record["envelope"],
            "remote_address": record["remote_address"],
            "remote_port": int(record["remote_port"]),
            "started_at": at,
            "last_activity_at": at,
            "attributes": attributes,
        }
    )
    changes.ended_sessions.append({"device_id": device_id, "id": int(record["id"]), "at": at})
    mark_seen(changes, device_id, at)
    update = changes.device_updates[device_id]
    update["session_id"] = int(record["id"])
    if attributes:
        update["attributes"] = attributes
        for name in DEVICE_ATTRIBUTES:
            value = attributes.get(name)
            update[name] = None if value is None else fit(t.devices.c[name], str(value))


def mark_seen(changes: Changes, device_id: uuid.UUID, at: datetime) -> None:
    update = changes.device_updates[device_id]
    last = update.get("last_seen_at")
    if last is None or at > last:
        update["last_seen_at"] = at


def downlink_row(record: Record) -> Row:
    return {
        "id": uuid.UUID(record["id"]),
        "state": str(record["state"]),
        "at": utc(record["at"]),
        "attempt": int(record.get("attempt") or 0),
    }


def without_nul(value: Any) -> Any:
    """The value with U+0000 replaced in every string (PostgreSQL refuses it).

    Devices may send any text; a NUL in it would make PostgreSQL refuse the
    whole batch on every delivery.
    """
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict | list) and b"\\u0000" not in orjson.dumps(value, default=str):
        return value  # the common case, found by one C call instead of a walk
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_nul(item) for item in value]
    return value


def fit(column: sa.Column[Any], text: str | None) -> str | None:
    """Cuts text (often the device's) to its column: PostgreSQL refuses longer."""
    length = getattr(column.type, "length", None)
    return text if text is None or length is None else text[:length]


def log_row(record: Record) -> Row:
    message_id = record.get("message_id")
    return {
        "session_id": record.get("session_id"),
        "device_id": known_uuid(record["device_id"]),
        "at": utc(record["at"]),
        "direction": record["direction"],
        "envelope": record["envelope"],
        "remote": record["remote"],
        "flags": record.get("flags"),
        "seq": record.get("seq"),
        "size": int(record["size"]),
        "outcome": record["outcome"],
        "detail": fit(t.session_log.c.detail, without_nul(record.get("detail"))),
        "message_id": None if message_id is None else uuid.UUID(message_id),
    }


@functools.lru_cache(maxsize=65_536)
def known_uuid(text: str) -> uuid.UUID:
    """A UUID of a device, group or organization: few, and in every record.

    Parsing a UUID costs microseconds and a batch names the same devices
    hundreds of times; message ids, unique, are parsed with `uuid.UUID`.
    """
    return uuid.UUID(text)


def stored_event(row: Row) -> dict[str, Any]:
    """The message as later consumers (callbacks, live streams) receive it.

    UUIDs and times stay objects: orjson writes them (as strings, RFC 3339).
    It carries every column of the message (the raw bytes in base64), so a
    consumer such as the callback dispatcher can act on it without reading
    the message back.
    """
    raw = row["raw"]
    return {
        "id": row["id"],
        "created_at": row["created_at"],
        "organization_id": row["organization_id"],
        "group_id": row["group_id"],
        "device_id": row["device_id"],
        "session_id": row["session_id"],
        "type": row["type"],
        "direction": row["direction"],
        "body": row["body"],
        "codec_hash": row["codec_hash"],
        "raw": None if raw is None else base64.b64encode(raw).decode("ascii"),
        "decode_state": row["decode_state"],
        "decode_error": row["decode_error"],
        "downlink_id": row["downlink_id"],
    }
