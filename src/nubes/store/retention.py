"""Retention: what is older than its organization keeps is deleted, in small batches.

Each organization keeps messages `message_retention_days` days (90 unless
changed). The same horizon applies to what belongs to those messages or to
the same traffic, since a user who is told "we keep 90 days" expects the
whole trail to go:

- messages, with the callback deliveries of each deleted message and every
  attempt of those deliveries (they name the message loosely, without a
  foreign key, so nothing else would remove them);
- the communication log (`session_log`) by the time of the packet;
- sessions whose last activity is older, except a device's current one
  (`devices.session_id`; it also keeps the largest session id in the table,
  from which gateways continue numbering after a restart);
- downlinks that are finished (delivered, cancelled, expired) and were
  created before the horizon; open ones are the gateways' business.

The audit log is kept: it records who changed what, not device traffic.

On PostgreSQL, once `messages` is partitioned by month (`partitions`), a
month past every organization's horizon is dropped whole: the deliveries
of its messages go in batches first (nothing else would find them), then
the table, which spares deleting its rows one batch at a time. The same
run makes the months ahead. Months not wholly expired are trimmed per
organization as before.

Why batches: one `DELETE` of a million rows holds its locks and its WAL for
minutes and competes with the pipeline's inserts for the whole time. Every
batch here is one short transaction of at most `batch_size` rows per
statement (found through the `(organization_id, created_at, id)` index, or
`(device_id, at)` for the log), followed by a short pause that lets other
work in. A run ends when nothing is left or its time budget is spent; the
next run (once a minute, from the workers' housekeeping) goes on from there.
Interrupting a run loses at most the uncommitted batch, which is rolled back.

One run at a time: on PostgreSQL a session advisory lock, tried and not
waited for, so that when several workers tidy at once one deletes and the
others skip. The database is what every worker shares anyway (the cache may
be the in-process one), and the lock goes away with the connection if a
process dies. SQLite is one process (the embedded setup): an asyncio lock
per engine does the same, and SQLite's single writer serializes the rest.
Even without the lock, concurrent runs would not delete twice: each
statement deletes what still exists and the counts come from the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from weakref import WeakKeyDictionary

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from nubes.store import partitions
from nubes.store import tables as t

__all__ = ["DEFAULT_BATCH_SIZE", "Retention", "RetentionReport"]

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 5_000
# Between batches: enough for waiting inserts to take their turn, short
# enough that 200k rows (40 batches) cost two seconds of pauses.
PAUSE_SECONDS = 0.05
# A run stops after this long; housekeeping runs once a minute.
BUDGET_SECONDS = 45.0
FINISHED_DOWNLINKS = ("delivered", "cancelled", "expired")
# "nubes" in ASCII, plus one: the migrations' advisory lock is 0x6E75626573.
RETENTION_LOCK_KEY = 0x6E75626574

_LOCAL_TURNS: WeakKeyDictionary[AsyncEngine, asyncio.Lock] = WeakKeyDictionary()


@dataclass
class RetentionReport:
    """What one run deleted: rows and DELETE statements, by table."""

    deleted: Counter[str] = field(default_factory=Counter)
    statements: Counter[str] = field(default_factory=Counter)
    # Another run held the lock, so this one did nothing.
    skipped: bool = False
    # The time budget ran out before everything expired was deleted.
    unfinished: bool = False
    # Partitions of `messages` dropped whole, and months made ahead (PostgreSQL).
    dropped: list[str] = field(default_factory=list)
    months_added: list[str] = field(default_factory=list)


class Retention:
    """Deletes expired rows of every organization, `batch_size` rows per statement."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        pause_seconds: float = PAUSE_SECONDS,
        budget_seconds: float = BUDGET_SECONDS,
    ) -> None:
        if batch_size < 1:
            raise ValueError("the batch size must be at least 1")
        self._engine = engine
        self._batch_size = batch_size
        self._pause = pause_seconds
        self._budget = budget_seconds
        self._deadline = 0.0

    async def run(self, now: datetime | None = None) -> RetentionReport:
        """One pass over every organization; skipped if another run is going on."""
        now = now or datetime.now(UTC)
        report = RetentionReport()
        self._deadline = time.monotonic() + self._budget
        async with self._turn() as conn:
            if conn is None:
                report.skipped = True
                return report
            retentions = await _retentions(conn)
            if self._engine.dialect.name == "postgresql":
                await self._partitions(conn, now, retentions, report)
            for organization_id, days in retentions:
                cutoff = now - timedelta(days=days)
                before = Counter(report.deleted)
                await self._organization(conn, organization_id, cutoff, report)
                _log_deleted(organization_id, days, report.deleted - before)
                if report.unfinished:
                    break
        return report

    async def _organization(
        self,
        conn: AsyncConnection,
        organization_id: uuid.UUID,
        cutoff: datetime,
        report: RetentionReport,
    ) -> None:
        await self._messages(conn, organization_id, cutoff, report)
        devices = sa.select(t.devices.c.id).where(t.devices.c.organization_id == organization_id)
        for table, doomed in (
            (t.session_log, _log_rows(devices, cutoff)),
            (t.sessions, _sessions(organization_id, devices, cutoff)),
            (t.downlinks, _downlinks(devices, cutoff)),
        ):
            await self._drain(conn, table, doomed.limit(self._batch_size), report)

    async def _partitions(
        self,
        conn: AsyncConnection,
        now: datetime,
        retentions: Sequence[tuple[uuid.UUID, int]],
        report: RetentionReport,
    ) -> None:
        """Months made ahead, and months past every organization's horizon dropped whole."""
        db = await partitions.raw_driver(conn)
        if not await partitions.is_partitioned(db):
            return
        report.months_added = await partitions.add_months_ahead(db, now)
        if not retentions:
            return
        horizon = now - timedelta(days=max(days for _, days in retentions))
        for partition in await partitions.expired(db, horizon):
            if not await self._time_left(report):
                return
            await self._drop_partition(conn, db, partition, report)

    async def _drop_partition(
        self,
        conn: AsyncConnection,
        db: partitions.Driver,
        partition: partitions.Partition,
        report: RetentionReport,
    ) -> None:
        """The deliveries of its messages first (nothing else names them), then the table."""
        if not await self._delete_deliveries_in(conn, partition, report):
            return  # out of time: the next run goes on
        rows = int(await db.fetchval(f"SELECT count(*) FROM {partition.name}"))
        await partitions.drop(db, partition)
        report.dropped.append(partition.name)
        if rows:
            report.deleted["messages"] += rows
        log.info("retention: dropped partition %s (%d messages)", partition.name, rows)

    async def _delete_deliveries_in(
        self, conn: AsyncConnection, partition: partitions.Partition, report: RetentionReport
    ) -> bool:
        """Deliveries and their attempts of the partition's messages; True once none is left."""
        d, a = t.deliveries, t.delivery_attempts
        month = sa.table(partition.name, sa.column("id", sa.Uuid()))
        doomed = (
            sa.select(d.c.id)
            .where(d.c.message_id.in_(sa.select(month.c.id)))
            .limit(self._batch_size)
        )
        while await self._time_left(report):
            async with conn.begin():
                ids = list((await conn.execute(doomed)).scalars())
                if ids:
                    await _delete(conn, a, a.c.delivery_id.in_(ids), report)
                    await _delete(conn, d, d.c.id.in_(ids), report)
            if len(ids) < self._batch_size:
                return True
            await asyncio.sleep(self._pause)
        return False

    async def _messages(
        self,
        conn: AsyncConnection,
        organization_id: uuid.UUID,
        cutoff: datetime,
        report: RetentionReport,
    ) -> None:
        m = t.messages
        oldest = (
            sa.select(m.c.id)
            .where(m.c.organization_id == organization_id, m.c.created_at < cutoff)
            .order_by(m.c.created_at, m.c.id)
            .limit(self._batch_size)
        )
        while await self._time_left(report):
            async with conn.begin():
                ids = list((await conn.execute(oldest)).scalars())
                if ids:
                    await _delete_messages(conn, ids, report)
            if len(ids) < self._batch_size:
                return
            await asyncio.sleep(self._pause)

    async def _drain(
        self,
        conn: AsyncConnection,
        table: sa.Table,
        doomed: sa.Select[Any],
        report: RetentionReport,
    ) -> None:
        """Deletes what `doomed` (the ids of one batch) finds until it finds nothing."""
        while await self._time_left(report):
            async with conn.begin():
                count = await _delete(conn, table, table.c.id.in_(doomed), report)
            if count < self._batch_size:
                return
            await asyncio.sleep(self._pause)

    async def _time_left(self, report: RetentionReport) -> bool:
        if time.monotonic() < self._deadline:
            return True
        report.unfinished = True
        return False

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[AsyncConnection | None]:
        """A connection while this run has the turn; None when another run has it."""
        if self._engine.dialect.name != "postgresql":
            turn = _LOCAL_TURNS.setdefault(self._engine, asyncio.Lock())
            if turn.locked():
                yield None
                return
            async with turn, self._engine.connect() as conn:
                yield conn
            return
        async with self._engine.connect() as conn, _advisory_lock(conn) as locked:
            yield conn if locked else None


@asynccontextmanager
async def _advisory_lock(conn: AsyncConnection) -> AsyncIterator[bool]:
    """PostgreSQL's session lock for retention, if free; released at the end.

    If the run fails or is cancelled, the connection is closed instead of
    going back to the pool: that releases the lock for sure.
    """
    lock = sa.text("SELECT pg_try_advisory_lock(:key)")
    locked = bool((await conn.execute(lock, {"key": RETENTION_LOCK_KEY})).scalar())
    await conn.commit()
    if not locked:
        yield False
        return
    try:
        yield True
    except BaseException:
        await conn.invalidate()
        raise
    await conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": RETENTION_LOCK_KEY})
    await conn.commit()


async def _retentions(conn: AsyncConnection) -> list[tuple[uuid.UUID, int]]:
    o = t.organizations
    query = sa.select(o.c.id, o.c.message_retention_days).order_by(o.c.id)
    rows = (await conn.execute(query)).all()
    await conn.commit()
    return [(row[0], row[1]) for row in rows]


async def _delete_messages(
    conn: AsyncConnection, ids: Sequence[uuid.UUID], report: RetentionReport
) -> None:
    """Messages by id, with their deliveries and the deliveries' attempts."""
    d, a = t.deliveries, t.delivery_attempts
    deliveries = sa.select(d.c.id).where(d.c.message_id.in_(ids))
    await _delete(conn, a, a.c.delivery_id.in_(deliveries), report)
    await _delete(conn, d, d.c.message_id.in_(ids), report)
    await _delete(conn, t.messages, t.messages.c.id.in_(ids), report)


async def _delete(
    conn: AsyncConnection, table: sa.Table, where: sa.ColumnElement[bool], report: RetentionReport
) -> int:
    result = await conn.execute(sa.delete(table).where(where))
    count = max(result.rowcount, 0)
    report.statements[table.name] += 1
    if count:
        report.deleted[table.name] += count
    return count


def _log_rows(devices: sa.Select[Any], cutoff: datetime) -> sa.Select[Any]:
    log_ = t.session_log
    return sa.select(log_.c.id).where(log_.c.device_id.in_(devices), log_.c.at < cutoff)


def _sessions(
    organization_id: uuid.UUID, devices: sa.Select[Any], cutoff: datetime
) -> sa.Select[Any]:
    s, dev = t.sessions, t.devices
    current = sa.select(dev.c.session_id).where(
        dev.c.organization_id == organization_id, dev.c.session_id.is_not(None)
    )
    return sa.select(s.c.id).where(
        s.c.device_id.in_(devices),
        s.c.started_at < cutoff,
        s.c.last_activity_at < cutoff,
        s.c.id.not_in(current),
    )


def _downlinks(devices: sa.Select[Any], cutoff: datetime) -> sa.Select[Any]:
    dl = t.downlinks
    return sa.select(dl.c.id).where(
        dl.c.device_id.in_(devices),
        dl.c.state.in_(FINISHED_DOWNLINKS),
        dl.c.created_at < cutoff,
    )


def _log_deleted(organization_id: uuid.UUID, days: int, deleted: Counter[str]) -> None:
    if not deleted:
        return
    what = ", ".join(f"{count} {table}" for table, count in sorted(deleted.items()))
    log.info(
        "retention: deleted %s of organization %s (older than %d days)",
        what,
        organization_id,
        days,
        extra={"organization_id": str(organization_id)},
    )
