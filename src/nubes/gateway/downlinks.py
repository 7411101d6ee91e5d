"""Pending downlinks, as the gateway offers them to devices.

Downlinks are queued in the database by users (CLI, API); the gateway reads
a device's pending ones when the device first shows up, when the device's
`changed_at` moves (queueing bumps it) and on an explicit poll that finds
nothing queued, so a downlink queued a moment ago goes out on the very next
poll. SET_SESSION and SET_TIMESTAMP are made by the gateway itself and never
stored as downlinks, only as messages once delivered.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from nubes import flap
from nubes.gateway.directory import DeviceInfo
from nubes.store import tables as t

MAX_LOADED = 32  # per device; more wait in the database for the next load


@dataclass(frozen=True, slots=True)
class Offer:
    """A downlink the gateway can send: stored (uuid id) or made on the spot."""

    downlink_id: Any
    type_name: str  # session | timestamp | config | shell | data
    message: bytes
    body: Any
    stored: bool


async def pending_offers(engine: AsyncEngine, device_id: uuid.UUID) -> list[Offer]:
    d = t.downlinks
    query = (
        sa.select(d.c.id, d.c.kind, d.c.message, d.c.request)
        .where(
            d.c.device_id == device_id,
            d.c.state.in_(("pending", "sent")),
            d.c.expires_at > datetime.now(UTC),
        )
        .order_by(d.c.created_at)
        .limit(MAX_LOADED)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [Offer(row.id, row.kind, row.message, row.request, stored=True) for row in rows]


def set_session_offer(info: DeviceInfo, session_id: int, at: float) -> Offer:
    """SET_SESSION for a new session: the hashes the cloud knows, the time, id and name.

    A hash the cloud does not know is left out, and the device uploads that
    codec or config.
    """

    def known(value: str | None) -> int | None:
        return None if value is None else int(value, 16)

    message = flap.encode_set_session(
        session_id,
        int(at),
        decoder_hash=known(info.decoder_hash),
        encoder_hash=known(info.encoder_hash),
        config_hash=known(info.config_hash),
        device_id=str(info.id),
        device_name=info.name,
    )
    body = {
        "session_id": session_id,
        "timestamp": int(at),
        "decoder_hash": info.decoder_hash,
        "encoder_hash": info.encoder_hash,
        "config_hash": info.config_hash,
        "device_id": str(info.id),
        "device_name": info.name,
    }
    return Offer(("session", session_id), "session", message, body, stored=False)


def set_timestamp_offer(at: float) -> Offer:
    """SET_TIMESTAMP, the answer to GET_TIMESTAMP (Unix seconds)."""
    body = {"timestamp": int(at)}
    return Offer(
        ("timestamp", at), "timestamp", flap.encode_set_timestamp(int(at)), body, stored=False
    )
