"""Storage benchmark: reads at 10 million messages, and batched inserts.

    .venv/bin/python bench/storage.py            # the full run, 3 to 5 minutes
    .venv/bin/python bench/storage.py --rows 1000000   # a quick look

What it answers: do the message indexes of `nubes.store.tables` keep the
API's reads fast at 10 million messages, and how many message rows per
second does the pipeline's batched insert reach on each backend.

In a scratch PostgreSQL database (created here, dropped at the end, even on
failure or timeout) it migrates to head, fills `messages` with ~10 million
rows over 10,000 devices in 100 groups, one message every 0.26 s for 30
days, devices interleaved as they would arrive. The rows are made on the
server (`INSERT ... SELECT generate_series`, two connections at once) with
the indexes dropped, which are then rebuilt from the same `tables.metadata`;
that is much faster than maintaining five B-trees row by row, and gives the
same indexes. Then `VACUUM ANALYZE`, as autovacuum would have done.

Reads go through the application's path (a `Database`, SQLAlchemy Core,
asyncpg) on one connection, and are timed from execute to the 50th row
decoded: latest 50 of a device, latest 50 of a group, and the next page
after a cursor `(created_at, id) < (x, y)` at a random point in time.

Inserts: 100,000 message rows in batches of 500 dicts, one transaction per
batch, as `insert(messages)` with the list (SQLAlchemy sends an executemany,
which asyncpg pipelines); for comparison 20,000 rows as
`insert(messages).values(list)` (one multi-row statement per batch). On
PostgreSQL into the empty table and into the full one, and on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from nubes.store.database import Database
from nubes.store.tables import messages

PG_HOST, PG_PORT, PG_USER, PG_ADMIN_DATABASE = "127.0.0.1", 5432, "postgres", "test"
DEVICES, GROUPS, ORGANIZATIONS = 10_000, 100, 10
START = datetime(2025, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=30)
PAGE = 50
FILL_CHUNK = 1_000_000
FILL_CONNECTIONS = 2
BATCH = 500
TIME_LIMIT = 570.0  # seconds; the run must stay under ten minutes
# notes/performance.md, same kind of machine: asyncpg executemany of 1000 rows.
BASELINE_EXECUTEMANY = 29_000

DEVICES_TABLE = sa.text(
    "CREATE TABLE bench_devices AS SELECT d AS n,"
    " md5('device' || d)::uuid AS device_id,"
    " md5('group' || d % :groups)::uuid AS group_id,"
    " md5('organization' || d % :groups % :organizations)::uuid AS organization_id"
    " FROM generate_series(0, :devices - 1) AS d"
)
FILL = sa.text(
    "INSERT INTO messages (id, created_at, organization_id, group_id, device_id,"
    " session_id, type, direction, body, raw, codec_hash, decode_state)"
    " SELECT gen_random_uuid(), CAST(:start AS timestamptz) + g.n * CAST(:step AS interval),"
    " d.organization_id, d.group_id, d.device_id, d.n, 'data', 'up',"
    " jsonb_build_object('temperature', 20 + (g.n % 100) / 10.0, 'counter', g.n),"
    " '\\x000102030405060708090a0b0c0d0e0f'::bytea, '0123456789abcdef', 'decoded'"
    " FROM generate_series(CAST(:low AS bigint), CAST(:high AS bigint)) AS g(n)"
    " JOIN bench_devices AS d ON d.n = g.n % :devices"
)


@dataclass
class Timings:
    name: str
    milliseconds: list[float]

    def line(self) -> str:
        values = sorted(self.milliseconds)
        p99 = statistics.quantiles(values, n=100)[98]
        return f"{self.name:<34} median {statistics.median(values):6.2f} ms   p99 {p99:6.2f} ms"


def pg_url(database: str) -> str:
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


async def pg_admin(statement: str) -> None:
    connection = await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, database=PG_ADMIN_DATABASE, timeout=10
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


# Filling ---------------------------------------------------------------------


async def drop_message_indexes(connection: AsyncConnection) -> None:
    for index in messages.indexes:
        await connection.run_sync(index.drop)
    await connection.execute(sa.schema.DropConstraint(messages.primary_key))


async def create_message_indexes(connection: AsyncConnection) -> None:
    """The primary key and indexes again; partitioned, the key includes `created_at`."""
    await connection.execute(sa.text("SET maintenance_work_mem = '1GB'"))
    await connection.execute(sa.text("SET max_parallel_maintenance_workers = 2"))
    partitioned = (
        await connection.execute(
            sa.text(
                "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table "
                "WHERE partrelid = to_regclass('messages'))"
            )
        )
    ).scalar()
    columns = "id, created_at" if partitioned else "id"
    name = messages.primary_key.name
    await connection.execute(
        sa.text(f"ALTER TABLE messages ADD CONSTRAINT {name} PRIMARY KEY ({columns})")
    )
    for index in messages.indexes:
        await connection.run_sync(index.create)


async def fill_range(database: Database, low: int, high: int, rows: int) -> None:
    step = SPAN / rows
    for chunk_low in range(low, high, FILL_CHUNK):
        chunk_high = min(chunk_low + FILL_CHUNK, high) - 1
        params = {"start": START, "step": step, "low": chunk_low, "high": chunk_high}
        began = time.perf_counter()
        async with database.engine.begin() as connection:
            await connection.execute(FILL, {**params, "devices": DEVICES})
        print(f"  rows {chunk_low:>10,} to {chunk_high:>10,}: {time.perf_counter() - began:.1f} s")


async def fill(database: Database, rows: int) -> None:
    async with database.engine.begin() as connection:
        await connection.execute(
            DEVICES_TABLE,
            {"devices": DEVICES, "groups": GROUPS, "organizations": ORGANIZATIONS},
        )
        await drop_message_indexes(connection)
    share = -(-rows // FILL_CONNECTIONS)
    ranges = [(low, min(low + share, rows)) for low in range(0, rows, share)]
    await asyncio.gather(*(fill_range(database, low, high, rows) for low, high in ranges))
    began = time.perf_counter()
    async with database.engine.begin() as connection:
        await create_message_indexes(connection)
    print(f"  primary key and indexes built in {time.perf_counter() - began:.0f} s")
    began = time.perf_counter()
    async with database.engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(sa.text("VACUUM (ANALYZE) messages"))
    print(f"  VACUUM (ANALYZE) in {time.perf_counter() - began:.0f} s")


# Reading ---------------------------------------------------------------------


def latest(
    column: sa.Column[Any], key: uuid.UUID, before: datetime | None = None
) -> sa.Select[Any]:
    query = sa.select(messages).where(column == key)
    if before is not None:
        cursor = sa.tuple_(before, uuid.UUID(int=0))  # strictly before `before`
        query = query.where(sa.tuple_(messages.c.created_at, messages.c.id) < cursor)
    return query.order_by(messages.c.created_at.desc(), messages.c.id.desc()).limit(PAGE)


async def time_queries(
    connection: AsyncConnection, name: str, queries: list[sa.Select[Any]]
) -> Timings:
    spent = []
    for query in queries:
        began = time.perf_counter()
        rows = (await connection.execute(query)).all()
        spent.append((time.perf_counter() - began) * 1000)
        assert rows, f"{name}: no rows"
    return Timings(name, spent)


async def explain(connection: AsyncConnection, query: sa.Select[Any]) -> str:
    sql = query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True})
    result = await connection.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
    return "\n".join("    " + line for line in result.scalars())


def read_queries(keys: list[tuple[uuid.UUID, uuid.UUID]], samples: int) -> dict[str, list[Any]]:
    pick = random.Random(1)
    devices = [pick.choice(keys)[0] for _ in range(samples)]
    groups = [pick.choice(keys)[1] for _ in range(samples)]
    # A cursor somewhere in the first 90 % of the span, so that a full page follows.
    cursors = [START + SPAN * (0.05 + 0.9 * pick.random()) for _ in range(samples)]
    return {
        "latest 50 of a device": [latest(messages.c.device_id, d) for d in devices],
        "latest 50 of a group": [latest(messages.c.group_id, g) for g in groups],
        "device page after a cursor": [
            latest(messages.c.device_id, d, c) for d, c in zip(devices, cursors, strict=True)
        ],
        "group page after a cursor": [
            latest(messages.c.group_id, g, c) for g, c in zip(groups, cursors, strict=True)
        ],
    }


async def measure_reads(database: Database, samples: int) -> list[Timings]:
    async with database.engine.connect() as connection:
        result = await connection.execute(sa.text("SELECT device_id, group_id FROM bench_devices"))
        keys = [(row.device_id, row.group_id) for row in result]
        timings = []
        for name, queries in read_queries(keys, samples).items():
            timings.append(await time_queries(connection, name, queries))
            print(f"\n  plan of '{name}':\n{await explain(connection, queries[0])}")
    return timings


# Inserting -------------------------------------------------------------------


def message_rows(count: int) -> list[dict[str, Any]]:
    pick = random.Random(2)
    devices = [uuid.uuid4() for _ in range(DEVICES)]
    groups = [uuid.uuid4() for _ in range(GROUPS)]
    organization = uuid.uuid4()
    now = datetime.now(UTC)
    return [
        {
            "id": uuid.uuid4(),
            "created_at": now + timedelta(microseconds=n),
            "organization_id": organization,
            "group_id": groups[n % GROUPS],
            "device_id": pick.choice(devices),
            "session_id": n % 4_000_000_000,
            "type": "data",
            "direction": "up",
            "body": {"temperature": 21.5, "humidity": 40.2, "counter": n},
            "raw": pick.randbytes(24),
            "codec_hash": "0123456789abcdef",
            "decode_state": "decoded",
        }
        for n in range(count)
    ]


InsertBatch = Callable[[AsyncConnection, list[dict[str, Any]]], Awaitable[Any]]


async def executemany(connection: AsyncConnection, batch: list[dict[str, Any]]) -> Any:
    return await connection.execute(sa.insert(messages), batch)


async def multi_values(connection: AsyncConnection, batch: list[dict[str, Any]]) -> Any:
    return await connection.execute(sa.insert(messages).values(batch))


async def insert_rate(database: Database, rows: list[dict[str, Any]], form: InsertBatch) -> float:
    began = time.perf_counter()
    for start in range(0, len(rows), BATCH):
        async with database.engine.begin() as connection:
            await form(connection, rows[start : start + BATCH])
    return len(rows) / (time.perf_counter() - began)


async def measure_inserts(database: Database, label: str, count: int) -> dict[str, float]:
    # The multi-row form is several times slower: a fifth of the rows tells as much.
    forms = (("executemany", executemany, count), ("multi-row VALUES", multi_values, count // 5))
    rates = {}
    for name, form, rows in forms:
        rate = await insert_rate(database, message_rows(rows), form)
        rates[f"{label}, {name} ({rows:,} rows)"] = rate
        print(f"  {label}, {name}: {rate:,.0f} rows/s")
    return rates


async def sqlite_inserts(count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        database = Database(f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}")
        try:
            await database.migrate()
            return await measure_inserts(database, "SQLite (WAL, synchronous=NORMAL)", count)
        finally:
            await database.dispose()


# The run ---------------------------------------------------------------------


async def postgres_run(
    url: str, args: argparse.Namespace
) -> tuple[list[Timings], dict[str, float]]:
    database = Database(url, pool_size=FILL_CONNECTIONS, max_overflow=0)
    try:
        await database.migrate()
        print(f"inserting {args.insert_rows:,} rows into the empty table")
        rates = await measure_inserts(database, "PostgreSQL, empty table", args.insert_rows)
        async with database.engine.begin() as connection:
            await connection.execute(sa.text("TRUNCATE messages"))
        began = time.perf_counter()
        print(f"filling {args.rows:,} messages")
        await fill(database, args.rows)
        print(f"  filled, indexed and analyzed in {time.perf_counter() - began:.0f} s")
        timings = await measure_reads(database, args.samples)
        print(f"inserting {args.insert_rows:,} rows into the full table")
        label = f"PostgreSQL, {args.rows / 1e6:g} M rows"
        rates |= await measure_inserts(database, label, args.insert_rows)
        return timings, rates
    finally:
        await database.dispose()


async def main(args: argparse.Namespace) -> None:
    name = f"nubes_bench_{os.getpid()}"
    await pg_admin(f'CREATE DATABASE "{name}"')
    began = time.perf_counter()
    try:
        async with asyncio.timeout(TIME_LIMIT):
            timings, rates = await postgres_run(pg_url(name), args)
            rates |= await sqlite_inserts(args.insert_rows)
    finally:
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    report(timings, rates, args, time.perf_counter() - began)


def report(
    timings: list[Timings], rates: dict[str, float], args: argparse.Namespace, seconds: float
) -> None:
    print(f"\nReads at {args.rows:,} messages, {args.samples} random keys each:")
    for timing in timings:
        print(f"  {timing.line()}")
    print(f"\nBatched inserts, {BATCH} rows per transaction:")
    for name, rate in rates.items():
        print(f"  {name:<66} {rate:>7,.0f} rows/s")
    print(f"  baseline (notes/performance.md): asyncpg executemany {BASELINE_EXECUTEMANY:,} rows/s")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"\nwhole run: {seconds:.0f} s; load average at the end: {load} ({os.cpu_count()} CPUs)")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=10_000_000, help="messages to fill")
    parser.add_argument("--samples", type=int, default=200, help="queries of each kind")
    parser.add_argument("--insert-rows", type=int, default=100_000, help="rows per insert test")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(arguments()))
