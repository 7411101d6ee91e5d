"""Read models: messages, sessions and the communication log of a device.

Newest first, walking the `(device_id, created_at, id)` index backwards, so
"the latest N" costs the same at ten rows or ten million.
"""

from __future__ import annotations

import base64
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from nubes import flap
from nubes.services.devices import get_device
from nubes.store import tables as t


async def device_messages(
    engine: AsyncEngine, serial: int, *, type_name: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    device = await get_device(engine, serial)
    m = t.messages
    query = sa.select(m).where(m.c.device_id == device["id"])
    if type_name is not None:
        query = query.where(m.c.type == type_name)
    query = query.order_by(m.c.created_at.desc(), m.c.id.desc()).limit(limit)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [message_view(dict(row)) for row in rows]


def message_view(row: dict[str, Any]) -> dict[str, Any]:
    """A message as users see it: ids as strings, raw bytes as base64."""
    return {
        "id": str(row["id"]),
        "created_at": row["created_at"].isoformat(),
        "type": row["type"],
        "direction": row["direction"],
        "body": row["body"],
        "session_id": row["session_id"],
        "device_id": str(row["device_id"]),
        "group_id": None if row["group_id"] is None else str(row["group_id"]),
        "codec_hash": row["codec_hash"],
        "decode_state": row["decode_state"],
        "decode_error": row["decode_error"],
        "downlink_id": None if row["downlink_id"] is None else str(row["downlink_id"]),
        "raw": base64.b64encode(row["raw"]).decode("ascii"),
    }


async def device_sessions(
    engine: AsyncEngine, serial: int, limit: int = 50
) -> list[dict[str, Any]]:
    device = await get_device(engine, serial)
    s = t.sessions
    query = (
        sa.select(s)
        .where(s.c.device_id == device["id"])
        .order_by(s.c.started_at.desc())
        .limit(limit)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [_jsonable(dict(row)) for row in rows]


async def session_log(
    engine: AsyncEngine, session_id: int, limit: int = 1000
) -> list[dict[str, Any]]:
    log = t.session_log
    # Order by time: log rows of one session arrive in batches that workers may
    # commit in any order, so ids alone do not follow the exchange.
    query = (
        sa.select(log)
        .where(log.c.session_id == session_id)
        .order_by(log.c.at, log.c.id)
        .limit(limit)
    )
    return await _log_rows(engine, query)


async def device_log(engine: AsyncEngine, serial: int, limit: int = 1000) -> list[dict[str, Any]]:
    """A device's latest datagrams, sessions or not (e.g. bad MACs before any session)."""
    device = await get_device(engine, serial)
    log = t.session_log
    latest = (
        sa.select(log)
        .where(log.c.device_id == device["id"])
        .order_by(log.c.at.desc(), log.c.id.desc())
        .limit(limit)
        .subquery()
    )
    query = sa.select(latest).order_by(latest.c.at, latest.c.id)
    return await _log_rows(engine, query)


async def _log_rows(engine: AsyncEngine, query: sa.Select[Any]) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return [_jsonable(dict(row)) | {"flag_text": flag_text(row["flags"])} for row in rows]


def flag_text(flags: int | None) -> str | None:
    """`[FLxx]` and the like; None for a datagram whose packet could not be read."""
    return None if flags is None else flap.flag_text(flags)


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if hasattr(value, "isoformat"):
            value = value.isoformat()
        elif isinstance(value, bytes):
            value = value.hex()
        elif value is not None and not isinstance(value, int | float | str | bool | dict | list):
            value = str(value)
        out[key] = value
    return out
