"""Retention benchmark: how fast expired messages are deleted on PostgreSQL.

    .venv/bin/python bench/retention.py                  # 200k expired, about a minute
    .venv/bin/python bench/retention.py --expired 50000  # a quick look

In a scratch PostgreSQL database (created here, dropped at the end, even on
failure or time-out) it migrates to head and fills `messages`, on the
server (`INSERT ... SELECT generate_series`), with `--expired` rows older
than the organization's 90 days and `--kept` younger ones, spread over 100
devices; one expired message in ten has a callback delivery with two
attempts. `VACUUM (ANALYZE)` then runs, as autovacuum would have.

It then runs `Retention` as the workers do (batches of `--batch` rows, the
default pause between batches), while a writer inserts message rows in
batches of 500, one transaction each, as the pipeline does: the figures
are the delete rate, the pause's share of the time, and the writer's rate
and slowest transaction during the deletion (does retention starve the
pipeline?). A second, identical fill is deleted without the writer and with
no pause, for the bare rate.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from storage import pg_admin, pg_url  # the scratch databases of the storage benchmark

from nubes.store import tables as t
from nubes.store.database import Database
from nubes.store.retention import PAUSE_SECONDS, Retention, RetentionReport

DEVICES = 100
TIME_LIMIT = 300.0  # seconds for the whole run

FILL = """
INSERT INTO messages (id, created_at, organization_id, group_id, device_id, session_id,
                      type, direction, body, raw, decode_state)
SELECT gen_random_uuid(),
       now() - make_interval(days => CAST(:age AS integer)) - g * interval '1 second',
       :organization, :group, (CAST(:devices AS uuid[]))[1 + g % 100], NULL, 'data', 'up',
       jsonb_build_object('temperature', 20 + g % 10, 'n', g), '\\x0102030405'::bytea, 'decoded'
FROM generate_series(1, CAST(:rows AS integer)) AS g
"""
FILL_DELIVERIES = """
INSERT INTO deliveries (id, organization_id, callback_id, message_id, state, attempts,
                        created_at, updated_at)
SELECT gen_random_uuid(), organization_id, :callback, id, 'succeeded', 2, created_at, created_at
FROM messages WHERE created_at < now() - interval '90 days' AND random() < 0.1
"""
FILL_ATTEMPTS = """
INSERT INTO delivery_attempts (delivery_id, callback_id, at, outcome, response)
SELECT d.id, d.callback_id, d.created_at, o, '{"status": 200}'::jsonb
FROM deliveries d, unnest(ARRAY['failure', 'success']) AS o
"""


@dataclass
class Writer:
    """Inserts message rows in pipeline-sized transactions until stopped."""

    database: Database
    organization: dict[str, Any]
    rows: int = 0
    seconds: list[float] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            batch = [self._row() for _ in range(500)]
            started = time.perf_counter()
            async with self.database.engine.begin() as conn:
                await conn.execute(sa.insert(t.messages), batch)
            self.seconds.append(time.perf_counter() - started)
            self.rows += len(batch)

    def _row(self) -> dict[str, Any]:
        return {
            "id": uuid.uuid4(),
            "created_at": datetime.now(UTC),
            "organization_id": self.organization["id"],
            "group_id": self.organization["group"],
            "device_id": self.organization["devices"][self.rows % DEVICES],
            "type": "data",
            "direction": "up",
            "body": {"temperature": 21.5},
            "raw": b"\x01\x02\x03\x04\x05",
            "decode_state": "decoded",
        }


async def organization(database: Database) -> dict[str, Any]:
    now = datetime.now(UTC)
    org = {"id": uuid.uuid4(), "group": uuid.uuid4(), "callback": uuid.uuid4()}
    org["devices"] = [uuid.uuid4() for _ in range(DEVICES)]
    async with database.engine.begin() as conn:
        await conn.execute(
            sa.insert(t.organizations).values(id=org["id"], name="bench", created_at=now)
        )
        await conn.execute(
            sa.insert(t.groups).values(
                id=org["group"], organization_id=org["id"], name="default", created_at=now
            )
        )
        await conn.execute(
            sa.insert(t.callbacks).values(
                id=org["callback"], organization_id=org["id"], group_id=org["group"],
                name="hook", method="POST", url="https://example.com/", query_params=[],
                headers=[], content_type="application/json", payload="", triggers=["data"],
                timeout=5.0, retry_delays=[], created_at=now, updated_at=now,
            )
        )  # fmt: skip
    return org


async def fill(database: Database, org: dict[str, Any], expired: int, kept: int) -> None:
    common = {"organization": org["id"], "group": org["group"], "devices": org["devices"]}
    async with database.engine.begin() as conn:
        for age, rows in ((100, expired), (1, kept)):
            await conn.execute(sa.text(FILL), {**common, "age": age, "rows": rows})
        await conn.execute(sa.text(FILL_DELIVERIES), {"callback": org["callback"]})
        await conn.execute(sa.text(FILL_ATTEMPTS))
    async with database.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql("VACUUM (ANALYZE)")


async def timed_run(retention: Retention) -> tuple[RetentionReport, float]:
    started = time.perf_counter()
    report = await retention.run()
    return report, time.perf_counter() - started


async def with_writer(database: Database, org: dict[str, Any], batch: int) -> dict[str, Any]:
    writer, stop = Writer(database, org), asyncio.Event()
    writing = asyncio.create_task(writer.run(stop))
    await asyncio.sleep(2.0)  # the writer's rate alone, for comparison
    alone = writer.rows / 2.0
    rows_before = writer.rows
    retention = Retention(database.engine, batch_size=batch, budget_seconds=TIME_LIMIT)
    report, seconds = await timed_run(retention)
    stop.set()
    await writing
    during = writer.seconds[int(alone * 2.0 / 500) :]
    return {
        "report": report,
        "seconds": seconds,
        "writer_alone": alone,
        "writer_during": (writer.rows - rows_before) / seconds,
        "writer_median_ms": statistics.median(during) * 1000 if during else 0.0,
        "writer_max_ms": max(during) * 1000 if during else 0.0,
    }


async def postgres_run(url: str, args: argparse.Namespace) -> None:
    database = Database(url, pool_size=4, max_overflow=0)
    try:
        await database.migrate()
        org = await organization(database)
        await fill(database, org, args.expired, args.kept)
        paced = await with_writer(database, org, args.batch)
        await fill(database, org, args.expired, 0)
        bare = await timed_run(
            Retention(database.engine, batch_size=args.batch, pause_seconds=0, budget_seconds=300)
        )
    finally:
        await database.dispose()
    print_report(args, paced, bare)


def print_report(
    args: argparse.Namespace, paced: dict[str, Any], bare: tuple[RetentionReport, float]
) -> None:
    report, seconds = paced["report"], paced["seconds"]
    messages = report.deleted["messages"]
    batches = report.statements["messages"]
    print(f"PostgreSQL, {args.expired:,} expired + {args.kept:,} kept messages, batch {args.batch}")
    print(f"  deleted: {dict(report.deleted)} in {batches} batches")
    print(
        f"  with pauses ({PAUSE_SECONDS * 1000:.0f} ms) and a writer: {messages / seconds:,.0f}"
        f" messages/s ({seconds:.1f} s, of which pauses {batches * PAUSE_SECONDS:.1f} s)"
    )
    print(
        f"  writer (500 rows/txn): alone {paced['writer_alone']:,.0f} rows/s, during"
        f" {paced['writer_during']:,.0f} rows/s; txn median {paced['writer_median_ms']:.1f} ms,"
        f" max {paced['writer_max_ms']:.1f} ms"
    )
    bare_report, bare_seconds = bare
    print(
        f"  bare (no pause, no writer): {bare_report.deleted['messages'] / bare_seconds:,.0f}"
        f" messages/s ({bare_seconds:.1f} s, {dict(bare_report.deleted)})"
    )


async def main(args: argparse.Namespace) -> None:
    name = f"nubes_bench_retention_{os.getpid()}"
    await pg_admin(f'CREATE DATABASE "{name}"')
    try:
        await asyncio.wait_for(postgres_run(pg_url(name), args), TIME_LIMIT)
    finally:
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--expired", type=int, default=200_000, help="messages to delete")
    parser.add_argument("--kept", type=int, default=200_000, help="younger messages that stay")
    parser.add_argument("--batch", type=int, default=5_000, help="rows per DELETE")
    return parser.parse_args()


if __name__ == "__main__":
    started = time.perf_counter()
    asyncio.run(main(arguments()))
    print(f"total {time.perf_counter() - started:.0f} s")
