"""Partitions benchmark: `messages` plain or partitioned by month, on PostgreSQL.

    .venv/bin/python bench/partitions.py                 # the defaults, about a minute
    .venv/bin/python bench/partitions.py --convert 200000 --insert 50000 --month 50000
    .venv/bin/python bench/partitions.py --phases convert   # one phase (insert, convert, retention)

Every phase works in scratch databases created here and dropped at the end,
even on failure or time-out (`--time-limit`, 600 s). A plain `messages` is
what an upgrade finds (migrated to 0005, then to head); a partitioned one is
converted with `partitions.convert`, as the post-deploy step does.

1. insert: the workers' write path (`Ingest.apply`, batches of 500 rows
   over 100 devices, one transaction each) into a plain and a partitioned
   table, `--warmup` rows each, then `--insert` rows each in `--rounds`
   rounds that alternate which table goes first. Only `apply` is timed.
2. convert: a plain table filled on the server with `--convert` rows over
   the last 60 days (`INSERT ... SELECT generate_series`, then `VACUUM
   (ANALYZE)`) is converted by `partitions.convert` while a writer inserts
   batches of 500 through `Ingest.apply`. The call is timed whole and its
   steps by wrapping the module's step functions for the run (a retried
   step shows once per attempt). Figures: the writer's rows/s before and
   during, its slowest transaction (overall and per step), its errors; then
   every row it wrote is looked for. Lost rows or errors fail the run.
3. retention: one expired month of `--month` messages (one in ten with a
   delivery and two attempts, like bench/retention.py) and `--kept` recent
   ones. On the partitioned table that month is `messages_2026_03`
   (converted "on 2026-01-15", months made up to "2026-07-15"); `Retention`
   runs "on 2026-07-15" (90 days: horizon 2026-04-16), drops it and the
   empty partitions before it (`messages_legacy`, `_2026_01`, `_2026_02`)
   after deleting their deliveries. The same rows in a plain table are deleted in batches. Both
   runs use the workers' settings (batches of 5,000, the default pause)
   while a writer inserts July rows; then nothing of the month may be left,
   nor its deliveries or their attempts, and every other row must be.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from retention import FILL_ATTEMPTS, organization  # the retention benchmark's owner and fill
from storage import pg_admin, pg_url  # the scratch databases of the storage benchmark

from nubes.store import partitions
from nubes.store.database import Database
from nubes.store.ingest import Changes, Ingest
from nubes.store.retention import DEFAULT_BATCH_SIZE, PAUSE_SECONDS, Retention, RetentionReport

BATCH = 500
DEVICES = 100
TIME_LIMIT = 600.0  # seconds for the whole run
CONVERTED_AT = datetime(2026, 1, 15, tzinfo=UTC)  # an empty table: months from 2026-01 on
EXPIRED_MONTH = datetime(2026, 3, 1, tzinfo=UTC)
RETAINED_AT = datetime(2026, 7, 15, tzinfo=UTC)  # horizon 2026-04-16 at 90 days
STEPS = (
    "_build_unique_index",
    "_add_bound_check",
    "_validate_bound_check",
    "_swap",
    "add_months_ahead",
)

FILL = """
INSERT INTO messages (id, created_at, organization_id, group_id, device_id, session_id,
                      type, direction, body, raw, decode_state)
SELECT gen_random_uuid(), CAST(:start AS timestamptz) + (g - 1) * CAST(:step AS interval),
       :organization, :group, (CAST(:devices AS uuid[]))[1 + g % 100], NULL, 'data', 'up',
       jsonb_build_object('temperature', 20 + g % 10, 'n', g), '\\x0102030405'::bytea, 'decoded'
FROM generate_series(1, CAST(:rows AS integer)) AS g
"""
# Exactly one expired message in ten (by its number in the fill) has a delivery.
FILL_DELIVERIES = """
INSERT INTO deliveries (id, organization_id, callback_id, message_id, state, attempts,
                        created_at, updated_at)
SELECT gen_random_uuid(), organization_id, :callback, id, 'succeeded', 2, created_at, created_at
FROM messages WHERE created_at < :before AND (body->>'n')::integer % 10 = 0
"""

Org = dict[str, Any]


class Failed(Exception):
    """Rows lost, an insert failed, or something was not done: the run fails."""


Span = tuple[str, float, float]  # what, started, ended (perf_counter)


def rows_of(
    org: Org, count: int, number: int = 0, at: datetime | None = None
) -> list[dict[str, Any]]:
    """Message rows as the pipeline makes them: every column, stamped now (or `at`)."""
    now = at or datetime.now(UTC)
    return [
        {
            "id": uuid.uuid4(),
            "created_at": now,
            "organization_id": org["id"],
            "group_id": org["group"],
            "device_id": org["devices"][(number + i) % DEVICES],
            "session_id": None,
            "type": "data",
            "direction": "up",
            "body": {"temperature": 21.5, "n": number + i},
            "raw": b"\x01\x02\x03\x04\x05",
            "codec_hash": None,
            "decode_state": "decoded",
            "decode_error": None,
            "downlink_id": None,
        }
        for i in range(count)
    ]


class Scratch:
    """Scratch databases of this run; `drop_all` removes them, whatever happened."""

    def __init__(self) -> None:
        self.names: list[str] = []

    @asynccontextmanager
    async def database(self, what: str, *, partitioned: bool) -> AsyncIterator[Database]:
        name = f"nubes_bench_partitions_{os.getpid()}_{what}"
        self.names.append(name)
        await pg_admin(f'CREATE DATABASE "{name}"')
        database = Database(pg_url(name), pool_size=4, max_overflow=0)
        try:
            if partitioned:
                await database.migrate()  # from empty: converted at once
            else:
                await database.migrate("0005")  # an older release's table
                await database.migrate()
            yield database
        finally:
            await database.dispose()

    async def drop_all(self) -> None:
        for name in self.names:
            await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def fill(database: Database, org: Org, start: datetime, span: timedelta, rows: int) -> None:
    params = {"organization": org["id"], "group": org["group"], "devices": org["devices"]}
    async with database.engine.begin() as conn:
        step = span / max(rows, 1)
        await conn.execute(sa.text(FILL), {**params, "start": start, "step": step, "rows": rows})


async def vacuum(database: Database) -> None:
    async with database.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql("VACUUM (ANALYZE)")


async def count(database: Database, query: str, **params: Any) -> int:
    async with database.engine.connect() as conn:
        return int((await conn.execute(sa.text(query), params)).scalar_one())


# 1. Insert rate -----------------------------------------------------------------


async def write(ingest: Ingest, org: Org, rows: int) -> float:
    """Seconds spent in `apply` to insert `rows` rows in batches."""
    seconds = 0.0
    for number in range(0, rows, BATCH):
        batch = rows_of(org, min(BATCH, rows - number), number)
        started = time.perf_counter()
        stored = await ingest.apply(Changes(messages=batch))
        seconds += time.perf_counter() - started
        assert len(stored) == len(batch), f"{len(batch) - len(stored)} rows not stored"
    return seconds


async def insert_phase(scratch: Scratch, args: argparse.Namespace) -> None:
    async with (
        scratch.database("plain", partitioned=False) as plain,
        scratch.database("partitioned", partitioned=True) as parted,
    ):
        org = await organization(plain)
        tables = {"plain": Ingest(plain.engine), "partitioned": Ingest(parted.engine)}
        for ingest in tables.values():
            await write(ingest, org, args.warmup)
        rates: dict[str, list[float]] = {name: [] for name in tables}
        per_round = args.insert // args.rounds
        for round_ in range(args.rounds):
            order = list(tables) if round_ % 2 == 0 else list(reversed(tables))
            for name in order:
                rates[name].append(per_round / await write(tables[name], org, per_round))
    print(f"1. insert, Ingest.apply, {BATCH} rows/txn, {per_round:,} rows x {args.rounds} rounds")
    for name, values in rates.items():
        rounds = ", ".join(f"{rate:,.0f}" for rate in values)
        print(f"  {name:<12} {statistics.mean(values):8,.0f} rows/s (rounds: {rounds})")
    ratio = statistics.mean(rates["partitioned"]) / statistics.mean(rates["plain"])
    print(f"  partitioned / plain: {ratio:.2f}")


# 2. Online conversion -----------------------------------------------------------


@dataclass
class Writer:
    """Inserts batches through `Ingest.apply` until stopped; remembers every txn."""

    ingest: Ingest
    org: Org
    at: datetime | None = None  # the rows' time; None is now
    written: list[uuid.UUID] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            batch = rows_of(self.org, BATCH, len(self.written), self.at)
            started = time.perf_counter()
            try:
                stored = await self.ingest.apply(Changes(messages=batch))
            except Exception as err:  # counted, reported, and the run fails
                self.errors.append(repr(err))
                await asyncio.sleep(0.05)
                continue
            self.spans.append(("txn", started, time.perf_counter()))
            self.written.extend(stored)
            if len(stored) != len(batch):
                self.errors.append(f"{len(batch) - len(stored)} new rows not stored")

    def rate(self, start: float, end: float) -> float:
        return sum(BATCH for _, _, ended in self.spans if start <= ended < end) / (end - start)

    def slowest(self, start: float, end: float) -> float:
        during = [e - s for _, s, e in self.spans if s < end and e > start]
        return max(during, default=0.0)


@contextmanager
def timed_steps(spans: list[Span]) -> Iterator[None]:
    """Each step of `partitions.convert` timed, by wrapping the module's functions."""
    originals = {name: getattr(partitions, name) for name in STEPS}

    def timed(name: str, step: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def run(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await step(*args, **kwargs)
            finally:
                spans.append((name, started, time.perf_counter()))

        return run

    for name, step in originals.items():
        setattr(partitions, name, timed(name, step))
    try:
        yield
    finally:
        for name, step in originals.items():
            setattr(partitions, name, step)


async def convert_phase(scratch: Scratch, args: argparse.Namespace) -> None:
    async with scratch.database("convert", partitioned=False) as database:
        org = await organization(database)
        now = datetime.now(UTC)
        began = time.perf_counter()
        await fill(database, org, now - timedelta(days=60), timedelta(days=60), args.convert)
        await vacuum(database)
        filled = time.perf_counter() - began
        writer, stop, steps = Writer(Ingest(database.engine), org), asyncio.Event(), []
        writing = asyncio.create_task(writer.run(stop))
        try:
            await asyncio.sleep(args.before)
            started = time.perf_counter()
            with timed_steps(steps):
                report = await partitions.convert(database.engine, now=datetime.now(UTC))
            ended = time.perf_counter()
            await asyncio.sleep(1.0)  # a few batches into the partitioned table
        finally:
            stop.set()
            await writing
        found = await count(
            database, "SELECT count(*) FROM messages WHERE id = ANY(:ids)", ids=writer.written
        )
        total = await count(database, "SELECT count(*) FROM messages")
    print(f"2. online conversion of {args.convert:,} rows (filled in {filled:.0f} s)")
    print(f"  convert: {ended - started:.2f} s, converted {report.converted}, boundary"
          f" {report.boundary:%Y-%m-%d}; steps (s, writer's slowest txn meanwhile):")  # fmt: skip
    for name, step_start, step_end in steps:
        slowest = writer.slowest(step_start, step_end) * 1000
        print(f"    {name:<22} {step_end - step_start:6.2f} s   writer max {slowest:6.0f} ms")
    before = writer.rate(started - args.before, started)
    print(f"  writer: before {before:,.0f} rows/s, during {writer.rate(started, ended):,.0f}"
          f" rows/s, slowest txn during {writer.slowest(started, ended) * 1000:.0f} ms,"
          f" errors {len(writer.errors)}")  # fmt: skip
    lost = len(writer.written) - found
    print(f"  rows written by the writer {len(writer.written):,}, found {found:,}, lost: {lost}")
    print(f"  rows in messages {total:,} (expected {args.convert + len(writer.written):,})")
    if writer.errors or lost or total != args.convert + len(writer.written):
        raise Failed(f"errors {writer.errors[:3]}, {lost} rows lost")
    if not report.converted:
        raise Failed("the table was not converted")


# 3. Retention of an expired month -------------------------------------------------


async def retention_db(database: Database, args: argparse.Namespace) -> Org:
    org = await organization(database)
    month_end = partitions.add_months(EXPIRED_MONTH, 1)
    await fill(database, org, EXPIRED_MONTH, month_end - EXPIRED_MONTH, args.month)
    await fill(database, org, RETAINED_AT - timedelta(days=14), timedelta(days=14), args.kept)
    async with database.engine.begin() as conn:
        await conn.execute(
            sa.text(FILL_DELIVERIES), {"callback": org["callback"], "before": month_end}
        )
        await conn.execute(sa.text(FILL_ATTEMPTS))
    await vacuum(database)
    return org


@dataclass
class Retained:
    report: RetentionReport
    seconds: float
    drops: list[Span]
    writer: Writer
    started: float


@contextmanager
def timed_drops(drops: list[Span]) -> Iterator[None]:
    """Each `partitions.drop` (the DROP TABLE, with its lock wait) timed."""
    drop = partitions.drop

    async def timed(db: Any, partition: partitions.Partition) -> None:
        started = time.perf_counter()
        await drop(db, partition)
        drops.append((partition.name, started, time.perf_counter()))

    partitions.drop = timed  # type: ignore[assignment]
    try:
        yield
    finally:
        partitions.drop = drop  # type: ignore[assignment]


async def retained(database: Database, org: Org, args: argparse.Namespace) -> Retained:
    """`Retention.run` while a writer inserts recent rows; checks what is left."""
    writer, stop, drops = Writer(Ingest(database.engine), org, RETAINED_AT), asyncio.Event(), []
    writing = asyncio.create_task(writer.run(stop))
    try:
        await asyncio.sleep(1.0)
        started = time.perf_counter()
        with timed_drops(drops):
            report = await Retention(database.engine, budget_seconds=TIME_LIMIT).run(RETAINED_AT)
        seconds = time.perf_counter() - started
    finally:
        stop.set()
        await writing
    left = {
        table: await count(database, f"SELECT count(*) FROM {table}")
        for table in ("messages", "deliveries", "delivery_attempts")
    }
    expected = {"messages": args.kept + len(writer.written), "deliveries": 0}
    expected["delivery_attempts"] = 0
    if left != expected or report.unfinished or writer.errors:
        raise Failed(f"left {left}, expected {expected}, writer {writer.errors[:3]}")
    return Retained(report, seconds, drops, writer, started)


async def retention_phase(scratch: Scratch, args: argparse.Namespace) -> None:
    results = {}
    for name in ("partitioned", "plain"):
        async with scratch.database(f"retention_{name}", partitioned=False) as database:
            if name == "partitioned":
                await partitions.convert(database.engine, now=CONVERTED_AT)
                await partitions.maintain(database.engine, now=RETAINED_AT)
            org = await retention_db(database, args)
            results[name] = await retained(database, org, args)
    print(f"3. retention of {args.month:,} expired messages of {EXPIRED_MONTH:%Y-%m}"
          f" ({args.kept:,} kept), Retention.run on {RETAINED_AT:%Y-%m-%d}")  # fmt: skip
    for name, run in results.items():
        report, writer, end = run.report, run.writer, run.started + run.seconds
        # A pause follows each full batch: of messages (plain), of deliveries (a dropped month).
        batched = report.deleted["deliveries" if report.dropped else "messages"]
        pauses = batched // DEFAULT_BATCH_SIZE * PAUSE_SECONDS
        print(f"  {name:<12} {run.seconds:6.2f} s (of which pauses {pauses:.2f} s)")
        print(f"  {'':<12} deleted {dict(report.deleted)}")
        print(f"  {'':<12} DELETE statements {dict(report.statements)}")
        for partition, started, ended in run.drops:
            slowest = writer.slowest(started, ended) * 1000
            print(f"  {'':<12} dropped {partition} in {(ended - started) * 1000:.0f} ms,"
                  f" writer max {slowest:.0f} ms")  # fmt: skip
        print(f"  {'':<12} writer: before {writer.rate(run.started - 1.0, run.started):,.0f}"
              f" rows/s, during {writer.rate(run.started, end):,.0f} rows/s, slowest txn"
              f" {writer.slowest(run.started, end) * 1000:.0f} ms, errors {len(writer.errors)},"
              f" lost: 0")  # fmt: skip
    ratio = results["plain"].seconds / results["partitioned"].seconds
    print(f"  plain / partitioned: {ratio:.1f}x")


# Main ---------------------------------------------------------------------------


PHASES = {"insert": insert_phase, "convert": convert_phase, "retention": retention_phase}


async def main(args: argparse.Namespace) -> None:
    scratch = Scratch()
    try:
        for phase in args.phases.split(","):
            await asyncio.wait_for(PHASES[phase](scratch, args), args.deadline - time.monotonic())
    finally:
        await scratch.drop_all()


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--phases", default="insert,convert,retention", help="which, in order")
    parser.add_argument("--insert", type=int, default=200_000, help="rows timed per table")
    parser.add_argument("--warmup", type=int, default=20_000, help="untimed rows per table first")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds of inserts")
    parser.add_argument(
        "--convert", type=int, default=1_000_000, help="rows in the converted table"
    )
    parser.add_argument("--before", type=float, default=5.0, help="s of writer before converting")
    parser.add_argument("--month", type=int, default=200_000, help="messages in the expired month")
    parser.add_argument("--kept", type=int, default=200_000, help="recent messages that stay")
    parser.add_argument("--time-limit", type=float, default=TIME_LIMIT, help="s for the whole run")
    args = parser.parse_args()
    if not set(args.phases.split(",")) <= set(PHASES):
        parser.error(f"--phases: a comma-separated list of {', '.join(PHASES)}")
    args.deadline = time.monotonic() + args.time_limit
    return args


if __name__ == "__main__":
    started = time.perf_counter()
    try:
        asyncio.run(main(arguments()))
    except Failed as err:
        raise SystemExit(f"FAILED: {err}") from None
    print(f"total {time.perf_counter() - started:.0f} s")
