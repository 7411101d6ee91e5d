"""Read models: messages, sessions and the communication log of a device.

Newest first, walking the `(device_id, created_at, id)` index backwards, so
"the latest N" costs the same at ten rows or ten million.

The CLI reads by serial number; the API reads by id (`*_page` functions
answer a page and the total) and checks tenancy itself, which is why the
by-id functions return the organization with every object. Live streams
read the messages of a `MessageScope`: rows by id (to re-check a published
batch against the database) and rows after a cursor (to replay).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from nubes import flap
from nubes.services.devices import PUBLIC_COLUMNS, get_device
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


# --- by id, for the API: pages with totals, tenants checked by the caller ---------------------


async def device_by_id(engine: AsyncEngine, device_id: uuid.UUID) -> dict[str, Any] | None:
    """A device that is not deleted (public columns only), or None."""
    d = t.devices
    query = sa.select(*PUBLIC_COLUMNS).where(d.c.id == device_id, d.c.deleted_at.is_(None))
    async with engine.connect() as conn:
        row = (await conn.execute(query)).mappings().first()
    return None if row is None else dict(row)


async def group_organization(engine: AsyncEngine, group_id: uuid.UUID) -> uuid.UUID | None:
    g = t.groups
    async with engine.connect() as conn:
        found = (
            await conn.execute(sa.select(g.c.organization_id).where(g.c.id == group_id))
        ).scalar()
    return None if found is None else uuid.UUID(str(found))


async def sessions_page(
    engine: AsyncEngine, device_id: uuid.UUID, page: Page
) -> tuple[int, list[dict[str, Any]]]:
    """A device's sessions by start time (`page.descending`: newest first)."""
    s = t.sessions
    where = s.c.device_id == device_id
    order = (s.c.started_at, s.c.id)
    return await _page(engine, sa.select(s).where(where), where, s, order, page)


async def session_by_id(engine: AsyncEngine, session_id: int) -> dict[str, Any] | None:
    s = t.sessions
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(s).where(s.c.id == session_id))).mappings().first()
    return None if row is None else dict(row)


async def log_page(
    engine: AsyncEngine,
    where: sa.ColumnElement[bool],
    page: Page,
    *,
    direction: str | None = None,
    outcome: str | None = None,
) -> tuple[int, list[dict[str, Any]]]:
    """Log rows in time order, `where` naming the session or the device; with `flags_text`."""
    log = t.session_log
    if direction is not None:
        where = sa.and_(where, log.c.direction == direction)
    if outcome is not None:
        where = sa.and_(where, log.c.outcome == outcome)
    total, rows = await _page(
        engine, sa.select(log).where(where), where, log, (log.c.at, log.c.id), page
    )
    return total, [row | {"flags_text": flag_text(row["flags"])} for row in rows]


def session_log_where(session_id: int) -> sa.ColumnElement[bool]:
    return t.session_log.c.session_id == session_id


def device_log_where(device_id: uuid.UUID) -> sa.ColumnElement[bool]:
    return t.session_log.c.device_id == device_id


@dataclass(frozen=True, slots=True)
class Page:
    offset: int = 0
    limit: int = 100
    descending: bool = False


async def _page(
    engine: AsyncEngine,
    query: sa.Select[Any],
    where: sa.ColumnElement[bool],
    table: sa.Table,
    order: tuple[sa.ColumnElement[Any], ...],
    page: Page,
) -> tuple[int, list[dict[str, Any]]]:
    ordering = [column.desc() for column in order] if page.descending else list(order)
    count = sa.select(sa.func.count()).select_from(table).where(where)
    async with engine.connect() as conn:
        total = (await conn.execute(count)).scalar() or 0
        result = await conn.execute(query.order_by(*ordering).offset(page.offset).limit(page.limit))
        rows = [dict(row) for row in result.mappings()]
    return int(total), rows


# --- messages for live streams ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageScope:
    """Which messages a stream shows: of some organizations, maybe one group or device."""

    organization_ids: frozenset[uuid.UUID]
    group_id: uuid.UUID | None = None
    device_id: uuid.UUID | None = None

    def matches(self, event: Mapping[str, Any]) -> bool:
        """Whether a stored event (ids as text or UUIDs) is in scope."""
        if as_uuid(event.get("organization_id")) not in self.organization_ids:
            return False
        if self.group_id is not None and as_uuid(event.get("group_id")) != self.group_id:
            return False
        return self.device_id is None or as_uuid(event.get("device_id")) == self.device_id

    def where(self) -> sa.ColumnElement[bool]:
        m = t.messages
        clauses: list[sa.ColumnElement[bool]] = [
            m.c.organization_id.in_(sorted(self.organization_ids))
        ]
        if self.group_id is not None:
            clauses.append(m.c.group_id == self.group_id)
        if self.device_id is not None:
            clauses.append(m.c.device_id == self.device_id)
        return sa.and_(*clauses)


def as_uuid(value: Any) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


async def message_position(
    engine: AsyncEngine, scope: MessageScope, message_id: uuid.UUID
) -> tuple[datetime, uuid.UUID] | None:
    """`(created_at, id)` of a message in scope, the cursor to replay after."""
    m = t.messages
    query = sa.select(m.c.created_at, m.c.id).where(m.c.id == message_id, scope.where())
    async with engine.connect() as conn:
        row = (await conn.execute(query)).first()
    return None if row is None else (row[0], uuid.UUID(str(row[1])))


async def messages_after(
    engine: AsyncEngine, scope: MessageScope, after: tuple[datetime, uuid.UUID], limit: int
) -> list[dict[str, Any]]:
    """Messages in scope after the cursor, oldest first (keyset on `(created_at, id)`)."""
    m = t.messages
    created_at, message_id = after
    later = sa.or_(
        m.c.created_at > created_at, sa.and_(m.c.created_at == created_at, m.c.id > message_id)
    )
    query = sa.select(m).where(scope.where(), later).order_by(m.c.created_at, m.c.id).limit(limit)
    async with engine.connect() as conn:
        return [dict(row) for row in (await conn.execute(query)).mappings()]


async def messages_by_ids(
    engine: AsyncEngine, scope: MessageScope, ids: Iterable[uuid.UUID]
) -> list[dict[str, Any]]:
    """The stored rows of these messages that are in scope, oldest first."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    m = t.messages
    query = sa.select(m).where(m.c.id.in_(wanted), scope.where()).order_by(m.c.created_at, m.c.id)
    async with engine.connect() as conn:
        return [dict(row) for row in (await conn.execute(query)).mappings()]


async def device_labels(
    engine: AsyncEngine, device_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, str | None]:
    wanted = sorted(set(device_ids))
    if not wanted:
        return {}
    d = t.devices
    query = sa.select(d.c.id, d.c.label).where(d.c.id.in_(wanted))
    async with engine.connect() as conn:
        return {uuid.UUID(str(row[0])): row[1] for row in await conn.execute(query)}
