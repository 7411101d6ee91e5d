"""What travels through the pipeline: batches of records, as JSON.

The gateway publishes one broker message per batch of records (amortising
the broker's per-message cost over hundreds of device messages); the worker
applies a batch in one database transaction. Records of one batch keep the
gateway's order. Kinds:

- `session`: a session started (CREATE_SESSION or DTLS association).
- `message`: a reassembled uplink, or a downlink the cloud sent; `raw` is the
  whole FLAP message (type byte included), base64; `body` is its JSON
  translation, except for `data`, which the worker decodes with its codec.
- `downlink`: a queued downlink changed state (sent, delivered).
- `log`: one datagram of a session's communication log.

Times are Unix seconds as floats; ids are strings (UUIDs, hex hashes);
records may hold `uuid.UUID` values, which orjson writes as strings (and
does so ~10x faster than the standard library's json, measured as the
largest item of the gateway's profile). The
format is versioned (`v`) so that old and new processes can overlap during
an upgrade.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

FORMAT_VERSION = 1

Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch as the worker reads it; `id` is None in batches of old gateways."""

    id: uuid.UUID | None
    records: list[Record]


def encode_batch(records: Sequence[Record]) -> bytes:
    """One broker message; its id lets the worker store it exactly once."""
    # `default=str` covers UUID types orjson does not know (asyncpg has its own).
    document = {"v": FORMAT_VERSION, "id": uuid.uuid4(), "records": list(records)}
    return orjson.dumps(document, default=str)


def decode_batch(body: bytes) -> list[Record]:
    """The records of a batch; ValueError for a body that is not one."""
    return read_batch(body).records


def read_batch(body: bytes) -> Batch:
    """The id and records of a batch; ValueError for a body that is not one."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise ValueError(f"not JSON: {err}") from err
    if not isinstance(document, dict) or document.get("v") != FORMAT_VERSION:
        raise ValueError("not a pipeline batch of a known version")
    records = document.get("records")
    if not isinstance(records, list):
        raise ValueError("batch without records")
    try:
        batch_id = None if document.get("id") is None else uuid.UUID(str(document["id"]))
    except ValueError as err:
        raise ValueError("batch with an invalid id") from err
    return Batch(batch_id, [record for record in records if isinstance(record, dict)])


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def session_record(
    *,
    session_id: int,
    device_id: uuid.UUID,
    organization_id: uuid.UUID,
    envelope: str,
    remote: tuple[str, int],
    at: float,
    attributes: dict[str, Any] | None,
) -> Record:
    return {
        "kind": "session",
        "id": session_id,
        "device_id": device_id,
        "organization_id": organization_id,
        "envelope": envelope,
        "remote_address": remote[0],
        "remote_port": remote[1],
        "at": at,
        "attributes": attributes,
    }


def message_record(
    *,
    message_id: uuid.UUID,
    at: float,
    device: Any,
    session_id: int | None,
    type_name: str,
    direction: str,
    raw: bytes,
    body: Any,
    codec_hash: str | None = None,
    downlink_id: uuid.UUID | None = None,
) -> Record:
    """`device` is anything with `id`, `organization_id`, `group_id` attributes."""
    return {
        "kind": "message",
        "id": message_id,
        "at": at,
        "device_id": device.id,
        "organization_id": device.organization_id,
        "group_id": device.group_id,
        "session_id": session_id,
        "type": type_name,
        "direction": direction,
        "raw": b64(raw),
        "body": body,
        "codec_hash": codec_hash,
        "downlink_id": downlink_id,
    }


def downlink_record(*, downlink_id: str, state: str, at: float, attempt: int = 0) -> Record:
    return {"kind": "downlink", "id": downlink_id, "state": state, "at": at, "attempt": attempt}


def log_record(
    *,
    session_id: int | None,
    device_id: uuid.UUID,
    at: float,
    direction: str,
    envelope: str,
    remote: tuple[str, int],
    flags: int | None,
    seq: int | None,
    size: int,
    outcome: str,
    detail: str = "",
    message_id: uuid.UUID | None = None,
) -> Record:
    return {
        "kind": "log",
        "session_id": session_id,
        "device_id": device_id,
        "at": at,
        "direction": direction,
        "envelope": envelope,
        "remote": f"{remote[0]}:{remote[1]}",
        "flags": flags,
        "seq": seq,
        "size": size,
        "outcome": outcome,
        "detail": detail or None,
        "message_id": message_id,
    }
