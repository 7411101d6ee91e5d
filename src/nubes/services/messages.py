"""Stored messages as the API reads, exports and deletes them.

Every read is ordered by `(created_at, id)` and filtered first by the most
selective scope given (a device, a group, organizations), so that it walks
one of the three indexes `(device_id | group_id | organization_id,
created_at, id)`: "the latest 100 of a device" costs the same at a hundred
rows or ten million.

Pages go on by keyset, not by offset: a `Position` is the `(created_at, id)`
of the last row shown, and the next page starts strictly after it. Its text
form (the cursor: 25 bytes in URL-safe base64) also names the order, so a
cursor cannot be replayed the other way round by mistake. The comparison is
written as `created_at <= t AND (created_at < t OR id < i)` rather than as
a row value, because both SQLite and PostgreSQL use the first half as an
index range.

Exports read the same way in chunks, each on a connection of its own, so a
slow client holds no connection (and no transaction) between chunks.
"""

from __future__ import annotations

import base64
import struct
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from nubes.services import audit
from nubes.store import tables as t

Order = Literal["asc", "desc"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EXPORT_CHUNK = 1000
# A cursor: the order ("a" or "d"), created_at in Unix microseconds, the id.
_CURSOR = struct.Struct(">cq16s")

_m = t.messages


@dataclass(frozen=True, slots=True)
class MessageFilter:
    """Which messages: `organization_ids` None means "not restricted by organization"
    (only sensible when a device or group, already checked, narrows the set)."""

    organization_ids: Sequence[uuid.UUID] | None = None
    group_id: uuid.UUID | None = None
    device_id: uuid.UUID | None = None
    types: Sequence[str] = ()
    direction: str | None = None
    since: datetime | None = None  # inclusive
    before: datetime | None = None  # exclusive

    def described(self) -> dict[str, Any]:
        """The filter as plain JSON (for the audit log)."""
        return {
            "organization_ids": _strings(self.organization_ids),
            "group_id": _string(self.group_id),
            "device_id": _string(self.device_id),
            "types": list(self.types) or None,
            "direction": self.direction,
            "since": _string(self.since),
            "before": _string(self.before),
        }


@dataclass(frozen=True, slots=True)
class Position:
    """The last row of a page: the next page starts strictly after it."""

    created_at: datetime
    id: uuid.UUID
    order: Order

    def cursor(self) -> str:
        micros = (self.created_at - EPOCH) // timedelta(microseconds=1)
        packed = _CURSOR.pack(self.order[0].encode(), micros, self.id.bytes)
        return base64.urlsafe_b64encode(packed).decode().rstrip("=")

    @classmethod
    def from_cursor(cls, cursor: str) -> Position:
        """ValueError for anything that is not a cursor this module made."""
        try:
            packed = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            order, micros, id_bytes = _CURSOR.unpack(packed)
            created_at = EPOCH + timedelta(microseconds=micros)
        except (ValueError, struct.error, OverflowError) as err:
            raise ValueError("not a cursor of this API") from err
        orders: dict[bytes, Order] = {b"a": "asc", b"d": "desc"}
        if order not in orders:
            raise ValueError("not a cursor of this API")
        return cls(created_at, uuid.UUID(bytes=id_bytes), orders[order])


@dataclass(frozen=True, slots=True)
class Page:
    """Rows of `messages` with the device's `label` added."""

    rows: Sequence[RowMapping]
    has_more: bool
    next: Position | None
    total: int | None


@dataclass(frozen=True, slots=True)
class DeviceOwner:
    organization_id: uuid.UUID
    group_id: uuid.UUID | None
    label: str | None


# --- owners of the objects a filter names ------------------------------------


async def device_owner(engine: AsyncEngine, device_id: uuid.UUID) -> DeviceOwner | None:
    d = t.devices
    query = sa.select(d.c.organization_id, d.c.group_id, d.c.label).where(
        d.c.id == device_id, d.c.deleted_at.is_(None)
    )
    async with engine.connect() as conn:
        row = (await conn.execute(query)).first()
    return None if row is None else DeviceOwner(row[0], row[1], row[2])


async def group_owner(engine: AsyncEngine, group_id: uuid.UUID) -> uuid.UUID | None:
    g = t.groups
    async with engine.connect() as conn:
        found = await conn.scalar(sa.select(g.c.organization_id).where(g.c.id == group_id))
    return found


async def message_owner(engine: AsyncEngine, message_id: uuid.UUID) -> uuid.UUID | None:
    async with engine.connect() as conn:
        found = await conn.scalar(sa.select(_m.c.organization_id).where(_m.c.id == message_id))
    return found


# --- reading -----------------------------------------------------------------


def _conditions(flt: MessageFilter) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = []
    if flt.device_id is not None:
        where.append(_m.c.device_id == flt.device_id)
    if flt.group_id is not None:
        where.append(_m.c.group_id == flt.group_id)
    if flt.organization_ids is not None:
        where.append(_one_of(_m.c.organization_id, flt.organization_ids))
    if flt.types:
        where.append(_one_of(_m.c.type, flt.types))
    if flt.direction is not None:
        where.append(_m.c.direction == flt.direction)
    if flt.since is not None:
        where.append(_m.c.created_at >= flt.since)
    if flt.before is not None:
        where.append(_m.c.created_at < flt.before)
    return where


def _one_of(column: sa.ColumnElement[Any], values: Sequence[Any]) -> sa.ColumnElement[bool]:
    # A plain equality for one value keeps the planner's estimates simple;
    # no values at all is a valid IN () that matches nothing.
    return column == values[0] if len(values) == 1 else column.in_(values)


def _after(position: Position) -> sa.ColumnElement[bool]:
    at, last = position.created_at, position.id
    if position.order == "desc":
        return sa.and_(_m.c.created_at <= at, sa.or_(_m.c.created_at < at, _m.c.id < last))
    return sa.and_(_m.c.created_at >= at, sa.or_(_m.c.created_at > at, _m.c.id > last))


def _walk(flt: MessageFilter, order: Order, after: Position | None) -> sa.Select[Any]:
    """The matching messages in order, as one index can give them."""
    where = _conditions(flt)
    if after is not None:
        where.append(_after(after))
    return sa.select(_m).where(*where).order_by(*_ordering(_m.c, order))


def _ordering(columns: Any, order: Order) -> tuple[sa.ColumnElement[Any], ...]:
    direction = sa.desc if order == "desc" else sa.asc
    return direction(columns.created_at), direction(columns.id)


def _page_query(
    flt: MessageFilter, order: Order, after: Position | None, offset: int, limit: int
) -> sa.Select[Any]:
    """A page of messages with their device's label, joined to the page only.

    Several organizations are walked one by one and merged: `organization_id
    IN (...)` cannot be read from the index in `created_at` order, so the
    database would sort the whole set for every page.
    """
    organizations = flt.organization_ids or ()
    if len(organizations) > 1 and flt.device_id is None and flt.group_id is None:
        walks = [
            sa.select(
                _walk(replace(flt, organization_ids=[org]), order, after)
                .limit(offset + limit)
                .subquery()
            )
            for org in organizations
        ]
        merged = sa.union_all(*walks).subquery()
        rows = sa.select(merged).order_by(*_ordering(merged.c, order))
    else:
        rows = _walk(flt, order, after)
    page = rows.offset(offset).limit(limit).subquery()
    return (
        sa.select(page, t.devices.c.label)
        .outerjoin(t.devices, t.devices.c.id == page.c.device_id)
        .order_by(*_ordering(page.c, order))
    )


async def list_messages(
    engine: AsyncEngine,
    flt: MessageFilter,
    *,
    order: Order = "desc",
    offset: int = 0,
    limit: int = 100,
    after: Position | None = None,
    with_total: bool = True,
) -> Page:
    """One page; one row more than asked tells whether another page exists."""
    query = _page_query(flt, order, after, offset, limit + 1)
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
        total = await _count(conn, flt) if with_total else None
    has_more = len(rows) > limit
    last = rows[limit - 1] if has_more else None
    following = None if last is None else Position(last["created_at"], last["id"], order)
    return Page(rows[:limit], has_more, following, total)


async def _count(conn: AsyncConnection, flt: MessageFilter) -> int:
    query = sa.select(sa.func.count()).select_from(_m).where(*_conditions(flt))
    return int(await conn.scalar(query) or 0)


async def get_message(engine: AsyncEngine, message_id: uuid.UUID) -> RowMapping | None:
    query = (
        sa.select(_m, t.devices.c.label)
        .outerjoin(t.devices, t.devices.c.id == _m.c.device_id)
        .where(_m.c.id == message_id)
    )
    async with engine.connect() as conn:
        row = (await conn.execute(query)).mappings().first()
    return row


async def export_messages(
    engine: AsyncEngine,
    flt: MessageFilter,
    *,
    order: Order = "desc",
    limit: int,
    chunk: int | None = None,
) -> AsyncIterator[Sequence[RowMapping]]:
    """Up to `limit` messages, chunk by chunk, each chunk a short query of its own."""
    chunk = chunk or EXPORT_CHUNK
    after: Position | None = None
    remaining = limit
    while remaining > 0:
        page = await list_messages(
            engine, flt, order=order, limit=min(chunk, remaining), after=after, with_total=False
        )
        if page.rows:
            yield page.rows
        remaining -= len(page.rows)
        if page.next is None:
            return
        after = page.next


# --- messages per day --------------------------------------------------------


class _UtcDay(sa.sql.functions.FunctionElement[str]):
    """The UTC calendar day of a timestamp as `YYYY-MM-DD`, on either backend.

    Rendered without bound parameters so that GROUP BY repeats it verbatim
    (PostgreSQL compares grouping expressions textually, parameters included).
    """

    type = sa.String()
    name = "utc_day"
    inherit_cache = True


@compiles(_UtcDay, "postgresql")
def _utc_day_postgresql(element: _UtcDay, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"to_char(({column}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


@compiles(_UtcDay, "sqlite")
def _utc_day_sqlite(element: _UtcDay, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite holds the UTC time as text, "YYYY-MM-DD HH:MM:SS.ffffff".
    return f"date({compiler.process(element.clauses, **kw)})"


async def day_counts(
    engine: AsyncEngine, device_id: uuid.UUID, since: datetime, before: datetime
) -> list[tuple[str, int]]:
    """Messages of a device per UTC day in [since, before), only days that have some."""
    day = _UtcDay(_m.c.created_at).label("day")
    query = (
        sa.select(day, sa.func.count().label("count"))
        .where(_m.c.device_id == device_id, _m.c.created_at >= since, _m.c.created_at < before)
        .group_by(day)
        .order_by(day)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [(str(row[0]), int(row[1])) for row in rows]


# --- deleting ----------------------------------------------------------------


async def delete_message(
    engine: AsyncEngine, actor: audit.Actor, organization_id: uuid.UUID, message_id: uuid.UUID
) -> bool:
    async with engine.begin() as conn:
        result = await conn.execute(sa.delete(_m).where(_m.c.id == message_id))
        if not result.rowcount:
            return False
        await audit.record(conn, actor, organization_id, "message.delete", "message", message_id)
    return True


async def delete_messages(
    engine: AsyncEngine, actor: audit.Actor, organization_id: uuid.UUID, flt: MessageFilter
) -> int:
    """Deletes what the filter selects; the audit row holds the filter and the count."""
    async with engine.begin() as conn:
        result = await conn.execute(sa.delete(_m).where(*_conditions(flt)))
        deleted = int(result.rowcount or 0)
        details = {"filter": flt.described(), "deleted": deleted}
        await audit.record(conn, actor, organization_id, "message.delete", "message", None, details)
    return deleted


def _string(value: object | None) -> str | None:
    if value is None:
        return None
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _strings(values: Sequence[uuid.UUID] | None) -> list[str] | None:
    return None if values is None else [str(value) for value in values]
