"""The delivery log as the API shows it, and replays of failed deliveries.

Deliveries are written by the dispatchers; this module only reads them and
replays failed ones: back to `pending`, due now, with the attempt counter
reset as `nubes.callbacks.store.replay` does it (so a replay gets the whole
retry schedule again; the attempt log keeps every attempt). It is done here
rather than through that function so that the audit row is written in the
same transaction. A delivery never shows its lease.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from nubes.errors import NotFound, StoreError
from nubes.services import audit
from nubes.store import tables as t

DELIVERY_STATES = ("pending", "delivering", "succeeded", "failed", "skipped", "cancelled")

_c, _d, _a = t.callbacks, t.deliveries, t.delivery_attempts
_DELIVERY_COLUMNS = [
    *(column for column in _d.c if column.name != "lease_until"),
    _c.c.name.label("callback_name"),
]
_ATTEMPT_COLUMNS = [
    _a.c.id,
    _a.c.delivery_id,
    _a.c.at,
    _a.c.duration_ms,
    _a.c.outcome,
    _a.c.request,
    _a.c.response,
    _a.c.error,
]


def _deliveries() -> sa.Select[Any]:
    return sa.select(*_DELIVERY_COLUMNS).join(_c, _c.c.id == _d.c.callback_id)


async def list_deliveries(
    engine: AsyncEngine,
    callback_id: uuid.UUID,
    state: str | None,
    *,
    descending: bool = True,
    offset: int = 0,
    limit: int = 100,
) -> tuple[int, list[dict[str, Any]]]:
    where = [_d.c.callback_id == callback_id]
    if state is not None:
        where.append(_d.c.state == state)
    async with engine.connect() as conn:
        return await _page(conn, where, descending, offset, limit)


async def message_deliveries(
    engine: AsyncEngine,
    message_id: uuid.UUID,
    organization_id: uuid.UUID,
    *,
    descending: bool = False,
    offset: int = 0,
    limit: int = 100,
) -> tuple[int, list[dict[str, Any]]]:
    """The message's deliveries (of the message's organization), each with its attempts."""
    where = [_d.c.message_id == message_id, _d.c.organization_id == organization_id]
    async with engine.connect() as conn:
        total, rows = await _page(conn, where, descending, offset, limit)
        await _add_attempts(conn, rows)
    return total, rows


async def _page(
    conn: AsyncConnection, where: list[Any], descending: bool, offset: int, limit: int
) -> tuple[int, list[dict[str, Any]]]:
    """The total of deliveries matching `where`, and one page of them by creation."""
    direction = sa.desc if descending else sa.asc
    query = (
        _deliveries()
        .where(*where)
        .order_by(direction(_d.c.created_at), direction(_d.c.id))
        .offset(offset)
        .limit(limit)
    )
    total = await conn.scalar(sa.select(sa.func.count()).select_from(_d).where(*where))
    rows = [dict(row) for row in (await conn.execute(query)).mappings()]
    return int(total or 0), rows


async def get_delivery(engine: AsyncEngine, delivery_id: uuid.UUID) -> dict[str, Any] | None:
    """One delivery with all its attempts, oldest first."""
    async with engine.connect() as conn:
        found = (await conn.execute(_deliveries().where(_d.c.id == delivery_id))).mappings()
        row = found.first()
        if row is None:
            return None
        rows = [dict(row)]
        await _add_attempts(conn, rows)
    return rows[0]


async def _add_attempts(conn: AsyncConnection, deliveries: list[dict[str, Any]]) -> None:
    by_delivery: dict[uuid.UUID, list[dict[str, Any]]] = {d["id"]: [] for d in deliveries}
    if not by_delivery:
        return
    query = (
        sa.select(*_ATTEMPT_COLUMNS)
        .where(_a.c.delivery_id.in_(list(by_delivery)))
        .order_by(_a.c.at, _a.c.id)
    )
    for attempt in (await conn.execute(query)).mappings():
        by_delivery[attempt["delivery_id"]].append(dict(attempt))
    for delivery in deliveries:
        delivery["attempt_log"] = by_delivery[delivery["id"]]


async def replay(
    engine: AsyncEngine,
    callback: Mapping[str, Any],
    delivery_id: uuid.UUID | None,
    actor: audit.Actor,
) -> int:
    """Failed deliveries of the callback (all, or the one named) back to `pending`, due now.

    NotFound when the named delivery is not the callback's; StoreError (a
    conflict) when it is not failed.
    """
    now = datetime.now(UTC)
    where = [_d.c.callback_id == callback["id"], _d.c.state == "failed"]
    async with engine.begin() as conn:
        if delivery_id is not None:
            await _ensure_failed(conn, callback["id"], delivery_id)
            where.append(_d.c.id == delivery_id)
        done = await conn.execute(
            sa.update(_d)
            .where(*where)
            .values(
                state="pending", attempts=0, next_attempt_at=now, lease_until=None, updated_at=now
            )
        )
        replayed = int(done.rowcount or 0)
        details = {
            "delivery_id": None if delivery_id is None else str(delivery_id),
            "replayed": replayed,
        }
        await audit.record(
            conn,
            actor,
            callback["organization_id"],
            "callback.replay",
            "callback",
            callback["id"],
            details,
        )
    return replayed


async def _ensure_failed(
    conn: AsyncConnection, callback_id: uuid.UUID, delivery_id: uuid.UUID
) -> None:
    query = sa.select(_d.c.state).where(_d.c.id == delivery_id, _d.c.callback_id == callback_id)
    state = await conn.scalar(query)
    if state is None:
        raise NotFound("delivery not found")
    if state != "failed":
        raise StoreError(f"the delivery is {state}: only failed deliveries can be replayed")
