"""Queueing downlinks: config lines, shell commands, data through the encoder.

A downlink is stored with the exact FLAP message that will be sent, so the
gateway has nothing to compute when the device polls. Queueing bumps the
device's `changed_at`, which makes the gateways reload its downlinks; the
gateway also looks on every explicit poll that finds nothing queued.

The CLI names devices by serial number (`queue_config`, `queue_shell`,
`queue_data`, `list_downlinks`, `cancel_downlink`); the API names them by id
and passes the device row it has already checked for tenancy (`queue`,
`downlinks_page`, `get_downlink`, `cancel`), with the actor whose change the
audit log records in the same transaction.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from nubes import flap
from nubes.codec import codec_from_cbor, encode
from nubes.errors import CodecError, DownlinkError
from nubes.services import audit
from nubes.services.devices import get_device, touch_device
from nubes.store import tables as t

STATES = ("pending", "sent", "delivered", "cancelled", "expired")
KINDS = ("config", "shell", "data")
# States a downlink may still be cancelled in (the others are final).
OPEN_STATES = ("pending", "sent")


class Built:
    """A downlink ready to store: what was asked for and the FLAP message."""

    __slots__ = ("kind", "message", "request", "shell_id")

    def __init__(self, kind: str, request: Any, message: bytes, shell_id: bytes | None) -> None:
        self.kind = kind
        self.request = request
        self.message = message
        self.shell_id = shell_id


def config_message(lines: Sequence[str]) -> bytes:
    if not lines:
        raise DownlinkError("no config lines given")
    if any(line.strip() == "config save" for line in lines):
        raise DownlinkError("'config save' must not be sent: the device saves and reboots itself")
    _check_json(list(lines))
    try:
        return flap.encode_download_config(list(lines))
    except ValueError as err:
        raise DownlinkError(f"cannot encode the config lines: {err}") from err


def build_config(lines: Sequence[str]) -> Built:
    return Built("config", list(lines), config_message(lines), None)


def build_shell(commands: Sequence[str]) -> Built:
    if not commands:
        raise DownlinkError("no shell command given")
    _check_json(list(commands))
    shell_id = os.urandom(16)
    try:
        message = flap.encode_download_shell(list(commands), shell_id)
    except ValueError as err:
        raise DownlinkError(f"cannot encode the shell commands: {err}") from err
    return Built("shell", list(commands), message, shell_id)


async def build_data(engine: AsyncEngine, device: Mapping[str, Any], data: Any) -> Built:
    """Encodes `data` with the device's encoder (DownlinkError when it has none)."""
    _check_json(data)
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
        message = flap.encode_download_data(int(encoder_hash, 16), payload)
    except (CodecError, ValueError, TypeError) as err:
        raise DownlinkError(f"cannot encode the data: {err}") from err
    return Built("data", data, message, None)


def _check_json(value: Any) -> None:
    """Refuses what no database stores as JSON: NUL characters, lone surrogates, NaN."""
    if isinstance(value, str):
        if "\x00" in value:
            raise DownlinkError("text must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as err:
            raise DownlinkError("text must be valid Unicode") from err
    elif isinstance(value, float) and not math.isfinite(value):
        raise DownlinkError("numbers must be finite")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_json(key)
            _check_json(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_json(item)


# --- by serial number (the CLI) ---------------------------------------------------------------


async def queue_config(
    engine: AsyncEngine, serial: int, lines: Sequence[str], expiry_days: int = 30
) -> dict[str, Any]:
    built = build_config(lines)
    return await queue(engine, await get_device(engine, serial), built, expiry_days=expiry_days)


async def queue_shell(
    engine: AsyncEngine, serial: int, commands: Sequence[str], expiry_days: int = 30
) -> dict[str, Any]:
    built = build_shell(commands)
    return await queue(engine, await get_device(engine, serial), built, expiry_days=expiry_days)


async def queue_data(
    engine: AsyncEngine, serial: int, data: dict[str, Any], expiry_days: int = 30
) -> dict[str, Any]:
    device = await get_device(engine, serial)
    built = await build_data(engine, device, data)
    return await queue(engine, device, built, expiry_days=expiry_days)


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
    return await cancel(engine, downlink_id) is not None


# --- by id (the API) -----------------------------------------------------------------------------


async def queue(
    engine: AsyncEngine,
    device: Mapping[str, Any],
    built: Built,
    *,
    expiry_days: int = 30,
    actor: audit.Actor | None = None,
) -> dict[str, Any]:
    """Stores a built downlink for the device (a row with `id` and `organization_id`)."""
    if len(built.message) > flap.MAX_MESSAGE:
        raise DownlinkError(
            f"the downlink is {len(built.message)} bytes; at most {flap.MAX_MESSAGE}"
        )
    now = datetime.now(UTC)
    row = {
        "id": uuid.uuid4(),
        "organization_id": device["organization_id"],
        "device_id": device["id"],
        "kind": built.kind,
        "request": built.request,
        "message": built.message,
        "shell_id": built.shell_id,
        "state": "pending",
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
        "sent_at": None,
        "delivered_at": None,
        "expires_at": now + timedelta(days=expiry_days),
        "reply_message_id": None,
    }
    async with engine.begin() as conn:
        await conn.execute(sa.insert(t.downlinks).values(row))
        await touch_device(conn, device["id"])
        if actor is not None:
            await audit.record(
                conn,
                actor,
                device["organization_id"],
                "downlink.queue",
                "downlink",
                row["id"],
                {"kind": built.kind, "device_id": str(device["id"])},
            )
    return row


def _with_reply() -> sa.Select[Any]:
    """Downlinks with the decoded body of the device's answer (shell commands)."""
    d, m = t.downlinks, t.messages
    return sa.select(d, m.c.body.label("reply")).outerjoin(m, m.c.id == d.c.reply_message_id)


async def get_downlink(engine: AsyncEngine, downlink_id: uuid.UUID) -> dict[str, Any] | None:
    query = _with_reply().where(t.downlinks.c.id == downlink_id)
    async with engine.connect() as conn:
        row = (await conn.execute(query)).mappings().first()
    return None if row is None else dict(row)


async def downlinks_page(
    engine: AsyncEngine,
    device_id: uuid.UUID,
    *,
    state: str | None = None,
    offset: int = 0,
    limit: int = 100,
    descending: bool = True,
) -> tuple[int, list[dict[str, Any]]]:
    """A device's downlinks by creation time (newest first unless not `descending`)."""
    d = t.downlinks
    where = d.c.device_id == device_id
    if state is not None:
        where = sa.and_(where, d.c.state == state)
    order = [d.c.created_at.desc(), d.c.id.desc()] if descending else [d.c.created_at, d.c.id]
    query = _with_reply().where(where).order_by(*order).offset(offset).limit(limit)
    async with engine.connect() as conn:
        total = (
            await conn.execute(sa.select(sa.func.count()).select_from(d).where(where))
        ).scalar()
        rows = [dict(row) for row in (await conn.execute(query)).mappings()]
    return int(total or 0), rows


async def cancel(
    engine: AsyncEngine, downlink_id: uuid.UUID, actor: audit.Actor | None = None
) -> dict[str, Any] | None:
    """Cancels a pending or sent downlink; None when there is none in such a state."""
    d = t.downlinks
    async with engine.begin() as conn:
        row = (
            (
                await conn.execute(
                    sa.update(d)
                    .where(d.c.id == downlink_id, d.c.state.in_(OPEN_STATES))
                    .values(state="cancelled", updated_at=datetime.now(UTC))
                    .returning(d.c.device_id, d.c.organization_id)
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        await touch_device(conn, row["device_id"])
        if actor is not None:
            await audit.record(
                conn, actor, row["organization_id"], "downlink.cancel", "downlink", downlink_id
            )
    return await get_downlink(engine, downlink_id)


async def expire_downlinks(engine: AsyncEngine) -> int:
    """Marks undelivered downlinks past their expiry; returns how many."""
    d = t.downlinks
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        expired = (
            await conn.execute(
                sa.update(d)
                .where(d.c.state.in_(OPEN_STATES), d.c.expires_at <= now)
                .values(state="expired", updated_at=now)
                .returning(d.c.device_id)
            )
        ).all()
        for device_id in sorted({row[0] for row in expired}):
            await touch_device(conn, device_id)  # gateways stop offering them
    return len(expired)
