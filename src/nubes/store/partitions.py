"""Monthly partitions of `messages` on PostgreSQL, made and converted online.

Why partitions: `messages` takes nearly every row Nubes writes, and
retention removes as many. Deleting expired rows one batch at a time leaves
dead tuples that vacuum must then find; a month whose rows are all past
every organization's retention is instead dropped as a table, at once
(bench/partitions.py: a month of 200k messages goes in 0.65-1.06 s, its
`DROP TABLE` 40-120 ms and the rest its deliveries, against 6.4-10.3 s of
batched deletes), and inserts land in a small, hot table whose indexes
stay in memory. SQLite (the embedded mode) has no partitions; nothing here runs
there.

The partitioned `messages` is range-partitioned by `created_at` (the time
the gateway received the packet, so rows arrive in time order). Its primary
key must contain the partition key, so it is `(id, created_at)`; ids are
still unique because the pipeline gives a message its id and its time
together, and a batch the broker delivers twice carries both again. The
workers insert with `ON CONFLICT DO NOTHING` without naming a key, which
works on both shapes of the table.

Partitions:

- `messages_legacy`, `[MINVALUE, boundary)`: the table as it was before the
  conversion, attached whole (on a new database it is empty and ends at
  the current month);
- `messages_YYYY_MM`, one per month from the boundary on, made ahead of
  time by the workers' housekeeping (`maintain`), always `MONTHS_AHEAD`
  months past the current one;
- `messages_default`: rows of a month not made yet, so that an insert never
  fails for lack of a partition. It stays empty while housekeeping runs;
  a month whose rows already sit there cannot be attached, which is logged.

The conversion (`convert`) is a "post-deploy" step: workers of the release
before insert with `ON CONFLICT (id)`, which no key of the partitioned
table matches, so it runs only once every process runs this release
(`nubes migrate --post-deploy`), or at once on a database migrated from
empty, where no older process can be serving. It keeps inserts going:

1. a unique index on `(id, created_at)`, built `CONCURRENTLY`;
2. `CHECK (created_at < boundary)` added `NOT VALID` (a moment's lock) and
   validated (reads the table, blocks no writes); the boundary is the first
   day of the month after next, far enough that no insert meets it before
   the conversion ends (an empty table skips this step: its boundary is the
   current month, and the attach checks it under the lock);
3. one short transaction: rename the table and its indexes, create the
   partitioned `messages` with the indexes of `tables.messages`, attach the
   old table (the validated check spares the scan, the index of step 1
   becomes the primary key's partition), create the default partition and
   the months ahead.

Every statement that takes a lock others wait for runs under `lock_timeout`
and is retried, so a long query elsewhere delays the conversion instead of
queueing every insert behind it. Months are added with `CREATE TABLE …
(LIKE messages)` then `ATTACH PARTITION`, which takes SHARE UPDATE
EXCLUSIVE on `messages` (inserts go on); `CREATE TABLE … PARTITION OF`
would take ACCESS EXCLUSIVE. A session advisory lock makes concurrent
conversions take turns; every step checks what is already done, so an
interrupted conversion is finished by the next one.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from nubes.store import tables as t

__all__ = [
    "MONTHS_AHEAD",
    "ConversionReport",
    "Partition",
    "convert",
    "drop",
    "expired",
    "include_name",
    "is_partition_name",
    "is_partitioned",
    "maintain",
    "partitions",
]

log = logging.getLogger(__name__)

MONTHS_AHEAD = 2
LEGACY = "messages_legacy"
DEFAULT = "messages_default"
UNIQUE_INDEX = "messages_legacy_id_created_at_key"
BOUND_CHECK = "messages_legacy_bound"
PRIMARY_KEY = "pk_messages"  # the metadata's naming convention
LOCK_TIMEOUT = "2s"
LOCK_ATTEMPTS = 5
# "nubes" in ASCII, plus two (migrations +0, retention +1).
CONVERSION_LOCK_KEY = 0x6E75626575

_PARTITION_NAME = re.compile(r"^messages_(legacy|default|\d{4}_\d{2})$")
_BOUND = re.compile(r"FROM \((.+?)\) TO \((.+?)\)")
_LOCK_NOT_AVAILABLE = "55P03"

# The asyncpg connection under a SQLAlchemy one: DDL, explicit transactions
# and the simple query protocol without SQLAlchemy's bookkeeping.
Driver = Any
T = TypeVar("T")


@dataclass(frozen=True)
class Partition:
    """One partition of `messages`; `lower` None is MINVALUE, both None is the default."""

    name: str
    lower: datetime | None
    upper: datetime | None

    @property
    def is_default(self) -> bool:
        return self.lower is None and self.upper is None


@dataclass
class ConversionReport:
    converted: bool = False
    boundary: datetime | None = None
    months_added: list[str] = field(default_factory=list)


def is_partition_name(name: str) -> bool:
    """True for the names partitions of `messages` get (schema comparisons skip them)."""
    return _PARTITION_NAME.match(name) is not None


def include_name(name: str | None, type_: str, _parents: object) -> bool:
    """Alembic's filter: autogenerate compares tables with `tables.py`, which has no partitions."""
    return not (type_ == "table" and name is not None and is_partition_name(name))


def month_start(at: datetime) -> datetime:
    return datetime(at.year, at.month, 1, tzinfo=UTC)


def add_months(month: datetime, count: int) -> datetime:
    index = month.year * 12 + month.month - 1 + count
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def month_name(month: datetime) -> str:
    return f"messages_{month.year:04d}_{month.month:02d}"


@asynccontextmanager
async def driver_of(engine: AsyncEngine) -> AsyncIterator[Driver]:
    """A pooled connection's asyncpg connection, outside any transaction."""
    async with engine.connect() as conn:
        yield await raw_driver(conn)


async def raw_driver(conn: AsyncConnection) -> Driver:
    raw = await conn.get_raw_connection()
    return raw.driver_connection


async def is_partitioned(db: Driver) -> bool:
    return bool(
        await db.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table "
            "WHERE partrelid = to_regclass('messages'))"
        )
    )


async def partitions(db: Driver) -> list[Partition]:
    """The partitions of `messages` with their bounds, oldest first, default last."""
    query = (
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = to_regclass('messages')"
    )
    # Bounds print in the session's time zone; UTC makes them parse alike everywhere.
    async with db.transaction():
        await db.execute("SET LOCAL TimeZone = 'UTC'")
        rows = await db.fetch(query)
    found = [_partition(name, bound) for name, bound in rows]
    return sorted(found, key=_oldest_first)


def _oldest_first(partition: Partition) -> tuple[int, datetime]:
    if partition.is_default:
        return (2, datetime.max.replace(tzinfo=UTC))
    return (1, partition.lower) if partition.lower else (0, datetime.min.replace(tzinfo=UTC))


def _partition(name: str, bound: str) -> Partition:
    match = _BOUND.search(bound)
    if match is None:  # "DEFAULT"
        return Partition(name, None, None)
    return Partition(name, _bound_value(match[1]), _bound_value(match[2]))


def _bound_value(text: str) -> datetime | None:
    if text == "MINVALUE":
        return None
    if text == "MAXVALUE":
        return datetime.max.replace(tzinfo=UTC)
    value = datetime.fromisoformat(text.strip("'").replace("+00", "+00:00", 1))
    return value.astimezone(UTC)


# -- conversion ---------------------------------------------------------------


async def convert(engine: AsyncEngine, now: datetime | None = None) -> ConversionReport:
    """Makes `messages` partitioned (if it is not yet) and the months ahead exist."""
    now = now or datetime.now(UTC)
    report = ConversionReport()
    if engine.dialect.name != "postgresql":
        return report
    async with driver_of(engine) as db, _conversion_turn(db):
        if not await is_partitioned(db):
            report.boundary = await _convert(db, now)
            report.converted = True
            log.info(
                "messages: now partitioned by month; rows before %s are in %s",
                report.boundary.date(),
                LEGACY,
            )
        report.months_added = await add_months_ahead(db, now)
    return report


async def _convert(db: Driver, now: datetime) -> datetime:
    """The three steps; returns the boundary, the end of `messages_legacy`.

    An empty table (a new database) ends at the current month, so that
    months start at once; the attach's check of the old table then costs
    nothing, and if rows came in meanwhile that belong past that boundary,
    the attach fails and the long way is taken.
    """
    await _build_unique_index(db)
    if await db.fetchval("SELECT NOT EXISTS (SELECT 1 FROM messages)"):
        boundary = month_start(now)
        try:
            await _retry_on_lock(partial(_swap, db, boundary, now), "the conversion")
            return boundary
        except asyncpg.CheckViolationError:
            log.info("messages: rows arrived during the conversion; converting the long way")
    boundary = add_months(month_start(now), 2)
    await _retry_on_lock(partial(_add_bound_check, db, boundary), "adding the bound check")
    await _retry_on_lock(partial(_validate_bound_check, db), "validating the bound check")
    await _retry_on_lock(partial(_swap, db, boundary, now), "the conversion")
    return boundary


@asynccontextmanager
async def _conversion_turn(db: Driver) -> AsyncIterator[None]:
    await db.execute(f"SELECT pg_advisory_lock({CONVERSION_LOCK_KEY})")
    try:
        yield
    finally:
        await db.execute(f"SELECT pg_advisory_unlock({CONVERSION_LOCK_KEY})")


async def _build_unique_index(db: Driver) -> None:
    """`(id, created_at)` unique, built without blocking writes; a failed build is redone."""
    valid = await db.fetchval(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)", UNIQUE_INDEX
    )
    if valid is False:  # an interrupted CONCURRENTLY build leaves an invalid index
        await db.execute(f"DROP INDEX CONCURRENTLY {UNIQUE_INDEX}")
    if valid is not True:
        await db.execute(
            f"CREATE UNIQUE INDEX CONCURRENTLY {UNIQUE_INDEX} ON messages (id, created_at)"
        )


async def _add_bound_check(db: Driver, boundary: datetime) -> None:
    async with db.transaction():
        await _lock_timeout(db)
        await db.execute(f"ALTER TABLE messages DROP CONSTRAINT IF EXISTS {BOUND_CHECK}")
        await db.execute(
            f"ALTER TABLE messages ADD CONSTRAINT {BOUND_CHECK} "
            f"CHECK (created_at < {_literal(boundary)}) NOT VALID"
        )


async def _validate_bound_check(db: Driver) -> None:
    async with db.transaction():
        await _lock_timeout(db)
        await db.execute(f"ALTER TABLE messages VALIDATE CONSTRAINT {BOUND_CHECK}")


async def _swap(db: Driver, boundary: datetime, now: datetime) -> None:
    async with db.transaction():
        await _lock_timeout(db)
        await db.execute("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
        indexes = await db.fetch(
            "SELECT indexname FROM pg_indexes "
            "WHERE schemaname = current_schema() AND tablename = 'messages'"
        )
        await db.execute(f"ALTER TABLE messages RENAME TO {LEGACY}")
        for (name,) in indexes:  # the primary key's index renames its constraint too
            if name != UNIQUE_INDEX:
                await db.execute(f"ALTER INDEX {name} RENAME TO {name}_legacy")
        await db.execute(
            f"CREATE TABLE messages (LIKE {LEGACY} INCLUDING DEFAULTS) "
            "PARTITION BY RANGE (created_at)"
        )
        # A partition's primary key must be the parent's: the index of step 1 becomes it.
        await db.execute(f"ALTER TABLE {LEGACY} DROP CONSTRAINT {PRIMARY_KEY}_legacy")
        await db.execute(
            f"ALTER TABLE {LEGACY} ADD CONSTRAINT {PRIMARY_KEY}_legacy "
            f"PRIMARY KEY USING INDEX {UNIQUE_INDEX}"
        )
        await db.execute(
            f"ALTER TABLE messages ADD CONSTRAINT {PRIMARY_KEY} PRIMARY KEY (id, created_at)"
        )
        for statement in _index_statements():
            await db.execute(statement)
        await db.execute(
            f"ALTER TABLE messages ATTACH PARTITION {LEGACY} "
            f"FOR VALUES FROM (MINVALUE) TO ({_literal(boundary)})"
        )
        await db.execute(f"CREATE TABLE {DEFAULT} PARTITION OF messages DEFAULT")
        for month in _months_ahead(boundary, now):
            await db.execute(
                f"CREATE TABLE {month_name(month)} PARTITION OF messages "
                f"FOR VALUES FROM ({_literal(month)}) TO ({_literal(add_months(month, 1))})"
            )


def _index_statements() -> list[str]:
    """CREATE INDEX for every index `tables.messages` declares, as PostgreSQL spells it."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    return [
        str(sa.schema.CreateIndex(index).compile(dialect=dialect)) for index in t.messages.indexes
    ]


# -- months ahead -------------------------------------------------------------


def _months_ahead(first: datetime, now: datetime) -> list[datetime]:
    """Months from `first` on, up to and including MONTHS_AHEAD past the current one."""
    last = add_months(month_start(now), MONTHS_AHEAD)
    months = []
    month = first
    while month <= last:
        months.append(month)
        month = add_months(month, 1)
    return months


async def add_months_ahead(db: Driver, now: datetime) -> list[str]:
    """Attaches the months that are missing up to MONTHS_AHEAD; returns their names."""
    covered = [p.upper for p in await partitions(db) if p.upper is not None]
    if not covered:
        return []
    added = []
    for month in _months_ahead(max(covered), now):
        name = month_name(month)
        try:
            await _retry_on_lock(partial(_attach_month, db, month), f"adding {name}")
        except asyncpg.PostgresError as err:
            # e.g. the default partition already holds rows of that month
            log.warning("messages: could not add partition %s: %s", name, err)
            break
        added.append(name)
        log.info("messages: added partition %s", name)
    return added


async def _attach_month(db: Driver, month: datetime) -> None:
    name = month_name(month)
    async with db.transaction():
        await _lock_timeout(db)
        await db.execute(f"CREATE TABLE {name} (LIKE messages INCLUDING DEFAULTS)")
        await db.execute(
            f"ALTER TABLE messages ATTACH PARTITION {name} "
            f"FOR VALUES FROM ({_literal(month)}) TO ({_literal(add_months(month, 1))})"
        )


async def maintain(engine: AsyncEngine, now: datetime) -> list[str]:
    """The months ahead, if `messages` is partitioned (retention runs do it too)."""
    if engine.dialect.name != "postgresql":
        return []
    async with driver_of(engine) as db:
        if not await is_partitioned(db):
            return []
        return await add_months_ahead(db, now)


# -- retention ----------------------------------------------------------------


async def expired(db: Driver, cutoff: datetime) -> list[Partition]:
    """Partitions whose every row is older than `cutoff` (never the default one)."""
    return [p for p in await partitions(db) if p.upper is not None and p.upper <= cutoff]


async def drop(db: Driver, partition: Partition) -> None:
    """Drops one partition; the caller has removed what refers to its rows."""

    async def drop_it() -> None:
        async with db.transaction():
            await _lock_timeout(db)
            await db.execute(f"DROP TABLE {partition.name}")

    await _retry_on_lock(drop_it, f"dropping {partition.name}")


# -- helpers ------------------------------------------------------------------


def _literal(at: datetime) -> str:
    return f"'{at.astimezone(UTC).isoformat()}'::timestamptz"


async def _lock_timeout(db: Driver) -> None:
    await db.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")


async def _retry_on_lock(step: Callable[[], Awaitable[T]], what: str) -> T:
    """Runs `step`, again after a pause while its lock is not granted in time."""
    for attempt in range(1, LOCK_ATTEMPTS + 1):
        try:
            return await step()
        except asyncpg.PostgresError as err:
            if err.sqlstate != _LOCK_NOT_AVAILABLE or attempt == LOCK_ATTEMPTS:
                raise
            log.info("messages: %s waited too long for a lock; trying again", what)
            await asyncio.sleep(attempt * 0.5)
    raise AssertionError("unreachable")
