"""How a message looks in the API: in lists, exports, live streams and callbacks.

One shape everywhere, a superset of HARDWARIO v1's message (`id`,
`created_at`, `label`, `data`): `data` is the decoded body (for data
messages, what the codec made of the bytes; for the other types the JSON the
gateway translated), `raw` the bytes as the device sent them, in base64.
`label` is the device's label (v1 shows `hsn:<serial>` there).

`message_view` builds plain dicts (hot path: no model validation);
`Message` describes the same shape for the OpenAPI document.

A session message holds the device's Bluetooth passkey, which only
organization admins may see (as on the device itself): for others, `data`
goes without `ble_passkey` and `raw` (whose bytes contain it) is empty.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

MESSAGE_TYPES = (
    "session",
    "data",
    "config",
    "decoder",
    "encoder",
    "stats",
    "shell",
    "firmware",
    "timestamp",
)


class Message(BaseModel):
    id: uuid.UUID = Field(description="Time-ordered (UUIDv7)")
    created_at: datetime
    organization_id: uuid.UUID
    group_id: uuid.UUID | None
    device_id: uuid.UUID
    label: str | None = Field(description="The device's label, e.g. hsn:2159018247")
    session_id: int | None
    type: Literal[
        "session", "data", "config", "decoder", "encoder", "stats", "shell", "firmware", "timestamp"
    ]
    direction: Literal["up", "down"]
    data: Any = Field(description="The decoded body (JSON); null when not decoded")
    raw: str = Field(description="The message bytes as received or sent, base64")
    codec_hash: str | None = Field(description="Hash of the codec that decoded `data`")
    decode_state: Literal["decoded", "undecoded", "failed"] | None
    decode_error: str | None
    downlink_id: uuid.UUID | None


SECRET_SESSION_FIELDS = frozenset({"ble_passkey"})


def without_secrets(attributes: Any) -> Any:
    """Session attributes as a non-admin may see them."""
    if isinstance(attributes, dict) and SECRET_SESSION_FIELDS & attributes.keys():
        return {k: v for k, v in attributes.items() if k not in SECRET_SESSION_FIELDS}
    return attributes


def message_view(
    row: Mapping[str, Any], label: str | None, *, secrets: bool = False
) -> dict[str, Any]:
    """The message; `secrets` says the caller is an admin of its organization."""
    raw = row["raw"]
    body = row["body"]
    if row["type"] == "session" and not secrets:
        body, raw = without_secrets(body), b""
    return {
        "id": row["id"],
        "created_at": row["created_at"],
        "organization_id": row["organization_id"],
        "group_id": row["group_id"],
        "device_id": row["device_id"],
        "label": label,
        "session_id": row["session_id"],
        "type": row["type"],
        "direction": row["direction"],
        "data": body,
        "raw": base64.b64encode(raw).decode("ascii") if raw is not None else "",
        "codec_hash": row["codec_hash"],
        "decode_state": row["decode_state"],
        "decode_error": row["decode_error"],
        "downlink_id": row["downlink_id"],
    }
