"""Queueing downlinks: config lines, shell commands, data through the encoder.

A downlink is stored with the exact FLAP message that will be sent, so the
gateway has nothing to compute when the device polls. Queueing bumps the
device's `changed_at`, which makes the gateways reload its downlinks; the
gateway also looks on every explicit poll that finds nothing queued.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from nubes import flap
from nubes.codec import codec_from_cbor, encode
from nubes.errors import CodecError, DownlinkError
from nubes.services.devices import get_device, touch_device
from nubes.store import tables as t

STATES = ("pending", "sent", "delivered", "cancelled", "expired")


def config_message(lines: Sequence[str]) -> bytes:
    if not lines:
        raise DownlinkError("no config lines given")
    if any(line.strip() == "config save" for line in lines):
        raise DownlinkError("'config save' must not be sent: the device saves and reboots itself")
    return flap.encode_download_config(list(lines))


async def queue_config(
    engine: AsyncEngine, serial: int, lines: Sequence[str], expiry_days: int = 30
) -> dict[str, Any]:
    return await _queue(
        engine, serial, "config", list(lines), config_message(lines), None, expiry_days
    )


async def queue_shell(
    engine: AsyncEngine, serial: int, commands: Sequence[str], expiry_days: int = 30
) -> dict[str, Any]:
    if not commands:
        raise DownlinkError("no shell command given")
    shell_id = os.urandom(16)
    message = flap.encode_download_shell(list(commands), shell_id)
    return await _queue(engine, serial, "shell", list(commands), message, shell_id, expiry_days)


async def queue_data(
    engine: AsyncEngine, serial: int, data: dict[str, Any], expiry_days: int = 30
) -> dict[str, Any]:
    device = await get_device(engine, serial)
    encoder_hash = device["encoder_hash"]
    if encoder_hash is None:
        raise DownlinkError("the device has not uploaded an encoder yet")
    c = t.codecs
    query = sa.select(c.c.cbor).where(
        c.c.organization_id == device["organization_id"], c.c.hash == encoder_hash
    )
    async with engine.connect() as conn:
        cbor = (await conn.execute(query)).scalar()
    if cbor is None:
        raise DownlinkError(f"encoder {encoder_hash} is not stored")
    try:
        payload = encode(codec_from_cbor(cbor), data)
    except CodecError as err:
        raise DownlinkError(f"cannot encode the data: {err}") from err
    message = flap.encode_download_data(int(encoder_hash, 16), payload)
    return await _queue(engine, serial, "data", data, message, None, expiry_days)


async def _queue(
    engine: AsyncEngine,
    serial: int,
    kind: str,
    request: Any,
    message: bytes,
    shell_id: bytes | None,
    expiry_days: int,
) -> dict[str, Any]:
    if len(message) > flap.MAX_MESSAGE:
        raise DownlinkError(f"the downlink is {len(message)} bytes; at most {flap.MAX_MESSAGE}")
    device = await get_device(engine, serial)
    now = datetime.now(UTC)
    row = {
        "id": uuid.uuid4(),
        "organization_id": device["organization_id"],
        "device_id": device["id"],
        "kind": kind,
        "request": request,
        "message": message,
        "shell_id": shell_id,
        "state": "pending",
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
        "expires_at": now + timedelta(days=expiry_days),
    }
    async with engine.begin() as conn:
        await conn.execute(sa.insert(t.downlinks).values(row))
        await touch_device(conn, device["id"])
    return row


async def list_downlinks(engine: AsyncEngine, serial: int, limit: int = 50) -> list[dict[str, Any]]:
    device = await get_device(engine, serial)
    d = t.downlinks
    query = (
        sa.select(d)
        .where(d.c.device_id == device["id"])
        .order_by(d.c.created_at.desc())
        .limit(limit)
    )
    async with engine.connect() as conn:
        return [dict(row) for row in (await conn.execute(query)).mappings()]


async def cancel_downlink(engine: AsyncEngine, downlink_id: uuid.UUID) -> bool:
    d = t.downlinks
    async with engine.begin() as conn:
        device_id = (
            await conn.execute(
                sa.update(d)
                .where(d.c.id == downlink_id, d.c.state.in_(("pending", "sent")))
                .values(state="cancelled", updated_at=datetime.now(UTC))
                .returning(d.c.device_id)
            )
        ).scalar()
        if device_id is None:
            return False
        await touch_device(conn, device_id)
    return True


async def expire_downlinks(engine: AsyncEngine) -> int:
    """Marks undelivered downlinks past their expiry; returns how many."""
    d = t.downlinks
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        expired = (
            await conn.execute(
                sa.update(d)
                .where(d.c.state.in_(("pending", "sent")), d.c.expires_at <= now)
                .values(state="expired", updated_at=now)
                .returning(d.c.device_id)
            )
        ).all()
        for device_id in sorted({row[0] for row in expired}):
            await touch_device(conn, device_id)  # gateways stop offering them
    return len(expired)
