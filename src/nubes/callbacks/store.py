"""Delivery persistence: the dispatcher's reads and writes, batched.

Every piece of delivery state lives in the database, so that a dispatcher
may die at any moment and another (or the same, restarted) carries on:

    pending ──claim──> delivering ──> succeeded
       ^                    │    ├──> skipped        (payload undefined/null)
       │  retry delay       │    └──> failed         (last delay passed, or the
       └────────────────────┘                          transform itself failed)
    failed ──replay──> pending

- `create_deliveries` turns a batch of stored messages into deliveries in one
  transaction; the unique (callback_id, message_id) pair with "on conflict do
  nothing" makes an event batch that arrives twice deliver once.
- `claim` takes due deliveries (pending and due, or delivering with an
  expired lease: their holder died) and leases them. On PostgreSQL the
  candidates are locked `FOR UPDATE SKIP LOCKED`, so dispatchers running side
  by side never take the same delivery; SQLite has one writer at a time, which
  makes the single UPDATE atomic by itself. At most `per_callback` deliveries
  of one callback are taken per claim, callbacks whose slots are all busy in
  this dispatcher are left out, and so are paused (circuit breaker), disabled
  and deleted callbacks: their deliveries wait without counting as attempts.
- `record` writes a batch of outcomes in one transaction: attempt rows
  (executemany), delivery states (executemany), and the callbacks' health
  (last success, last failure, failure streak, and `paused_until` when the
  streak reaches the breaker's threshold).
- `replay` puts failed deliveries back to pending, due now.

Throughput comes from batching: one claim, one message load and one result
transaction serve hundreds of deliveries.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from nubes.callbacks import postgres
from nubes.callbacks.delivery import (
    ERROR_CHARS,
    CallbackHealth,
    Claimed,
    NewDelivery,
    Outcome,
)
from nubes.ids import uuid7
from nubes.store import tables as t
from nubes.store.bulk import driver_of
from nubes.store.ingest import upsert

__all__ = [
    "CallbackHealth",
    "Claimed",
    "NewDelivery",
    "Outcome",
    "claim",
    "create_deliveries",
    "health",
    "insert_deliveries",
    "load_devices",
    "load_messages",
    "next_due",
    "record",
    "release",
    "renew",
    "replay",
    "take_probe",
]

d, c = t.deliveries, t.callbacks
RENEW_CHUNK = 1_000


def _uuid(value: Any) -> uuid.UUID:
    # asyncpg hands out its own UUID type; the rest of Nubes expects uuid.UUID.
    return value if type(value) is uuid.UUID else uuid.UUID(bytes=value.bytes)


async def insert_deliveries(
    engine: AsyncEngine, deliveries: Sequence[NewDelivery], now: datetime, lease_until: datetime
) -> set[uuid.UUID]:
    """Creates the deliveries not created yet; returns the ids of those it created.

    Held ones are `delivering` under a lease until `lease_until`, the others
    `pending` and due now.
    """
    if not deliveries:
        return set()
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:  # one statement: atomic by itself
            driver = (await conn.get_raw_connection()).driver_connection
            return await postgres.insert_deliveries(
                driver, _key_order(deliveries), now, lease_until
            )
    # In key order, so two dispatchers inserting overlapping batches take
    # their index locks in the same order (no deadlock on PostgreSQL).
    ordered = _key_order(deliveries)
    rows = [
        {
            "id": n.id,
            "organization_id": n.organization_id,
            "callback_id": n.callback_id,
            "message_id": n.message_id,
            "state": "delivering" if n.held else "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "lease_until": lease_until if n.held else None,
            "created_at": now,
            "updated_at": now,
        }
        for n in ordered
    ]
    stmt = upsert(engine.dialect.name, d).on_conflict_do_nothing(
        index_elements=["callback_id", "message_id"]
    )
    async with engine.begin() as conn:
        result = await conn.execute(stmt.returning(d.c.id), rows)
        return {_uuid(row[0]) for row in result}


def _key_order(deliveries: Sequence[NewDelivery]) -> list[NewDelivery]:
    return sorted(deliveries, key=lambda n: (str(n.callback_id), str(n.message_id)))


async def create_deliveries(
    engine: AsyncEngine, pairs: Iterable[tuple[uuid.UUID, uuid.UUID, uuid.UUID]], now: datetime
) -> int:
    """Pending deliveries of (callback id, organization id, message id); how many are new."""
    deliveries = [
        NewDelivery(uuid7(), callback_id, organization_id, message_id)
        for callback_id, organization_id, message_id in pairs
    ]
    return len(await insert_deliveries(engine, deliveries, now, now))


async def claim(
    engine: AsyncEngine,
    now: datetime,
    *,
    limit: int,
    per_callback: int,
    lease_until: datetime,
    busy: Sequence[uuid.UUID] = (),
) -> list[Claimed]:
    """Leases up to `limit` due deliveries, at most `per_callback` of each callback."""
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:  # one statement: atomic by itself
            driver = (await conn.get_raw_connection()).driver_connection
            return await postgres.claim(
                driver, now, limit=limit, per_callback=per_callback,
                lease_until=lease_until, busy=busy,
            )  # fmt: skip
    due = sa.or_(
        sa.and_(d.c.state == "pending", d.c.next_attempt_at <= now),
        sa.and_(d.c.state == "delivering", d.c.lease_until < now),
    )
    usable = sa.and_(
        c.c.enabled.is_(True),
        c.c.deleted_at.is_(None),
        sa.or_(c.c.paused_until.is_(None), c.c.paused_until <= now),
    )
    candidates = (
        sa.select(d.c.id, d.c.callback_id, d.c.next_attempt_at)
        .join(c, c.c.id == d.c.callback_id)
        .where(due, usable)
        .order_by(d.c.next_attempt_at)
        .limit(limit * 4)
    )
    if busy:
        candidates = candidates.where(d.c.callback_id.not_in(list(busy)))
    if engine.dialect.name == "postgresql":
        candidates = candidates.with_for_update(of=d, skip_locked=True)
    inner = candidates.subquery("candidates")
    ranked = sa.select(
        inner.c.id,
        sa.func.row_number()
        .over(partition_by=inner.c.callback_id, order_by=inner.c.next_attempt_at)
        .label("rank"),
        inner.c.next_attempt_at,
    ).subquery("ranked")
    chosen = (
        sa.select(ranked.c.id)
        .where(ranked.c.rank <= per_callback)
        .order_by(ranked.c.next_attempt_at)
        .limit(limit)
    )
    stmt = (
        sa.update(d)
        .where(d.c.id.in_(chosen))
        .values(state="delivering", lease_until=lease_until, updated_at=now)
        .returning(d.c.id, d.c.callback_id, d.c.message_id, d.c.organization_id, d.c.attempts)
    )
    async with engine.begin() as conn:
        rows = (await conn.execute(stmt)).all()
    return [Claimed(_uuid(r[0]), _uuid(r[1]), _uuid(r[2]), _uuid(r[3]), int(r[4])) for r in rows]


async def release(engine: AsyncEngine, delivery_ids: Sequence[uuid.UUID], now: datetime) -> None:
    """Gives leased deliveries back untouched (not an attempt): due again at once."""
    if not delivery_ids:
        return
    stmt = (
        sa.update(d)
        .where(d.c.id.in_(sorted(delivery_ids)), d.c.state == "delivering")
        .values(state="pending", lease_until=None, updated_at=now)
    )
    async with engine.begin() as conn:
        await conn.execute(stmt)


async def renew(
    engine: AsyncEngine, delivery_ids: Sequence[uuid.UUID], lease_until: datetime
) -> None:
    """Extends the lease of deliveries still held (`delivering`) by their dispatcher."""
    ids = sorted(delivery_ids)
    for start in range(0, len(ids), RENEW_CHUNK):
        stmt = (
            sa.update(d)
            .where(d.c.id.in_(ids[start : start + RENEW_CHUNK]), d.c.state == "delivering")
            .values(lease_until=lease_until)
        )
        async with engine.begin() as conn:
            await conn.execute(stmt)


async def health(engine: AsyncEngine, callback_ids: Iterable[uuid.UUID]) -> list[CallbackHealth]:
    wanted = sorted(set(callback_ids))
    if not wanted:
        return []
    query = sa.select(c.c.id, c.c.version, c.c.failure_streak, c.c.paused_until).where(
        c.c.id.in_(wanted)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [CallbackHealth(_uuid(r[0]), int(r[1]), int(r[2]), r[3]) for r in rows]


async def take_probe(
    engine: AsyncEngine, callback_id: uuid.UUID, now: datetime, pause_until: datetime, streak: int
) -> bool:
    """Lets one request through a tripped breaker; True if this caller got the turn.

    Pushing `paused_until` forward first means no other dispatcher (nor a
    later claim of this one) sends to the endpoint while the probe is out.
    """
    stmt = (
        sa.update(c)
        .where(
            c.c.id == callback_id,
            c.c.failure_streak >= streak,
            sa.or_(c.c.paused_until.is_(None), c.c.paused_until <= now),
        )
        .values(paused_until=pause_until)
    )
    async with engine.begin() as conn:
        return bool((await conn.execute(stmt)).rowcount)


async def load_messages(
    engine: AsyncEngine, message_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    """The messages, with their device's name, serial number and label."""
    wanted = sorted(set(message_ids))
    if not wanted:
        return {}
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            return await postgres.load_messages(driver, wanted)
    return await portable_load_messages(engine, wanted)


async def portable_load_messages(
    engine: AsyncEngine, wanted: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    """`load_messages` through SQLAlchemy, on any database (tests compare the two)."""
    m, dev = t.messages, t.devices
    query = (
        sa.select(
            m,
            dev.c.name.label("device_name"),
            dev.c.serial.label("device_serial"),
            dev.c.label.label("device_label"),
        )
        .join(dev, dev.c.id == m.c.device_id, isouter=True)
        .where(m.c.id.in_(wanted))
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).mappings().all()
    return {_uuid(row["id"]): dict(row) for row in rows}


async def load_devices(
    engine: AsyncEngine, device_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    """Name, serial number and label of these devices (deleted ones are missing)."""
    wanted = sorted(set(device_ids))
    if not wanted:
        return {}
    dev = t.devices
    query = sa.select(dev.c.id, dev.c.name, dev.c.serial, dev.c.label).where(dev.c.id.in_(wanted))
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {_uuid(row[0]): {"name": row[1], "serial": row[2], "label": row[3]} for row in rows}


async def record(
    engine: AsyncEngine,
    outcomes: Sequence[Outcome],
    *,
    breaker_failures: int,
    breaker_pause: timedelta,
) -> dict[uuid.UUID, datetime | None]:
    """Writes attempts, delivery states and callback health in one transaction.

    Returns `paused_until` of every callback whose health changed.
    """
    if not outcomes:
        return {}
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            driver = await driver_of(conn)
            await postgres.copy_attempts(driver, outcomes)
            await postgres.update_deliveries(driver, outcomes)
        else:
            await conn.execute(_attempt_insert(), [_attempt_row(o) for o in outcomes])
            await _update_deliveries(conn, outcomes)
        return await _update_health(conn, outcomes, breaker_failures, breaker_pause)


def _attempt_insert() -> Any:
    """The attempts INSERT (SQLite), with the JSON columns bound as text made by orjson.

    The logged request and response are most of an attempt row, and the
    standard library's encoder (SQLAlchemy's default) costs several times
    orjson's on them.
    """

    def text(name: str) -> Any:
        return sa.bindparam(name, type_=sa.Text())

    return sa.insert(t.delivery_attempts).values(
        delivery_id=sa.bindparam("delivery_id"),
        callback_id=sa.bindparam("callback_id"),
        at=sa.bindparam("at"),
        duration_ms=sa.bindparam("duration_ms"),
        outcome=sa.bindparam("outcome"),
        request=text("request"),
        response=text("response"),
        error=sa.bindparam("error"),
    )


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, default=str).decode()


def _attempt_row(outcome: Outcome) -> dict[str, Any]:
    return {
        "delivery_id": outcome.delivery_id,
        "callback_id": outcome.callback_id,
        "at": outcome.at,
        "duration_ms": outcome.duration_ms,
        "outcome": outcome.outcome,
        "request": _json_text(outcome.request),
        "response": _json_text(outcome.response),
        "error": _cut(outcome.error),
    }


def _cut(text: str | None) -> str | None:
    return None if text is None else text[:ERROR_CHARS]


async def _update_deliveries(conn: AsyncConnection, outcomes: Sequence[Outcome]) -> None:
    stmt = (
        sa.update(d)
        # A delivery whose lease ran out and that another dispatcher finished
        # meanwhile keeps that other outcome.
        .where(d.c.id == sa.bindparam("b_id"), d.c.state == "delivering")
        .values(
            state=sa.bindparam("b_state"),
            attempts=sa.bindparam("b_attempts"),
            next_attempt_at=sa.bindparam("b_next"),
            lease_until=None,
            last_status=sa.bindparam("b_status"),
            last_error=sa.bindparam("b_error"),
            updated_at=sa.bindparam("b_at"),
        )
    )
    params = [
        {
            "b_id": o.delivery_id,
            "b_state": o.state,
            "b_attempts": o.attempts,
            "b_next": o.next_attempt_at,
            "b_status": o.status,
            "b_error": _cut(o.error),
            "b_at": o.at,
        }
        for o in sorted(outcomes, key=lambda o: str(o.delivery_id))
    ]
    await conn.execute(stmt, params)


@dataclass(slots=True)
class _HealthChange:
    succeeded: bool = False
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    trailing_failures: int = 0  # after the last success in the batch


def _health_changes(outcomes: Sequence[Outcome]) -> dict[uuid.UUID, _HealthChange]:
    changes: dict[uuid.UUID, _HealthChange] = {}
    for o in sorted(outcomes, key=lambda o: o.at):
        if o.outcome == "skipped":
            continue
        change = changes.setdefault(o.callback_id, _HealthChange())
        if o.outcome == "success":
            change.succeeded, change.last_success_at = True, o.at
            change.trailing_failures = 0
        else:
            change.last_failure_at = o.at
            change.trailing_failures += 1 if o.endpoint else 0
    return changes


async def _update_health(
    conn: AsyncConnection,
    outcomes: Sequence[Outcome],
    breaker_failures: int,
    breaker_pause: timedelta,
) -> dict[uuid.UUID, datetime | None]:
    """One UPDATE per callback of the batch (a batch names few callbacks)."""
    paused: dict[uuid.UUID, datetime | None] = {}
    for callback_id, change in sorted(_health_changes(outcomes).items(), key=lambda i: str(i[0])):
        at = change.last_failure_at or change.last_success_at
        assert at is not None
        base = sa.literal(0) if change.succeeded else c.c.failure_streak
        streak = base + change.trailing_failures
        values: dict[str, Any] = {"failure_streak": streak}
        if change.last_success_at is not None:
            values["last_success_at"] = change.last_success_at
        if change.last_failure_at is not None:
            values["last_failure_at"] = change.last_failure_at
        if change.trailing_failures:
            tripped = sa.case(
                (streak >= breaker_failures, sa.literal(at + breaker_pause, t.UTCDateTime())),
                else_=sa.null() if change.succeeded else c.c.paused_until,
            )
            values["paused_until"] = tripped
        elif change.succeeded:
            values["paused_until"] = None
        stmt = sa.update(c).where(c.c.id == callback_id).values(values).returning(c.c.paused_until)
        row = (await conn.execute(stmt)).first()
        if row is not None:
            paused[callback_id] = row[0]
    return paused


async def replay(
    engine: AsyncEngine,
    now: datetime,
    *,
    delivery_id: uuid.UUID | None = None,
    callback_id: uuid.UUID | None = None,
) -> int:
    """Failed deliveries (one, or all of a callback) back to pending, due now.

    As the API's replay (`services.deliveries.replay`): the attempt counter
    starts over, so a replayed delivery gets the whole retry schedule again;
    the attempt log keeps every earlier attempt.
    """
    if delivery_id is None and callback_id is None:
        raise ValueError("replay needs a delivery or a callback")
    stmt = sa.update(d).where(d.c.state == "failed")
    if delivery_id is not None:
        stmt = stmt.where(d.c.id == delivery_id)
    if callback_id is not None:
        stmt = stmt.where(d.c.callback_id == callback_id)
    stmt = stmt.values(
        state="pending", attempts=0, next_attempt_at=now, lease_until=None, updated_at=now
    )
    async with engine.begin() as conn:
        return int((await conn.execute(stmt)).rowcount or 0)


async def next_due(engine: AsyncEngine, now: datetime) -> datetime | None:
    """When the next pending delivery falls due after `now` (None: none waits)."""
    query = sa.select(sa.func.min(d.c.next_attempt_at)).where(
        d.c.state == "pending", d.c.next_attempt_at > now
    )
    async with engine.connect() as conn:
        value: datetime | None = (await conn.execute(query)).scalar()
    return value
