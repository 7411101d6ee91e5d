"""Callback benchmark: deliveries/s, JSONata evaluations/s, isolation from a hanging endpoint.

    .venv/bin/python bench/callbacks.py                  # 20,000 deliveries, SQLite
    .venv/bin/python bench/callbacks.py --postgres       # the same on a scratch PostgreSQL,
                                                         # then 2 dispatcher processes
    .venv/bin/python bench/callbacks.py --quick          # 2,000 deliveries, a smoke test

What it answers (issue 4), each figure with its target and PASS or MISS:

1. transform evaluations/s on one core: the cloud.md example payload over a
   CHESTER-like message document (target >= 50,000/s);
2. deliveries/s, end to end in one dispatcher: `message.stored` events of
   256 messages each go through the in-process broker (intake: deliveries
   inserted), the dispatcher claims, loads, transforms with that payload,
   POSTs to a fast receiver and records every attempt (target >= 3,000/s);
3. the same healthy callback's deliveries/s while a second callback of the
   same group points at an endpoint that accepts connections and never
   answers (target: within 10 % of figure 2);
4. with `--postgres`: figure 2 again in the production layout, with
   `--dispatchers` (default 2) dispatcher processes consuming the events
   from RabbitMQ (`dispatchers.py`), as `nubes dispatcher` scales out.

The receiver is a separate process (raw asyncio HTTP/1.1 with keep-alive on
two loopback ports: one answers 200 at once, one hangs), so on a two-core
machine the dispatcher has one core and the receiver the other. Each phase
gets a fresh scratch database (SQLite file, or a PostgreSQL database created
and dropped here); settings are the defaults (16 requests per callback,
200 in all) except that private addresses are allowed. A phase checks that
every delivery ended `succeeded`, once; anything else is an error (exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import secrets
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dispatchers
from storage import pg_admin, pg_url

from nubes.callbacks.dispatcher import Dispatcher
from nubes.callbacks.sender import Sender
from nubes.callbacks.transform import compile_payload, message_document
from nubes.config import Settings
from nubes.ids import uuid7
from nubes.pipeline.broker import MESSAGE_STORED, MemoryBroker
from nubes.pipeline.rows import stored_event
from nubes.services import devices
from nubes.store import tables as t
from nubes.store.database import Database

PAYLOAD = """{"external_temperature": data.hygrometer.temperature,
 "external_humidity": data.hygrometer.humidity,
 "device_orientation": data.accelerometer.orientation}"""
EVENT_BATCH = 256
PACE = float(os.environ.get("PACE", "0"))
TARGET_DELIVERIES = 3_000.0
TARGET_EVALUATIONS = 50_000.0
TARGET_ISOLATION = 0.10
ANSWER = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'
)


def say(text: str) -> None:
    print(text, flush=True)


# -- the receiver process -------------------------------------------------------------------


class _Answer(asyncio.Protocol):
    """A fast endpoint: answers 200 to each request of a keep-alive connection.

    A bare protocol rather than asyncio streams, so that the receiver takes
    as little as possible of the machine the dispatcher is measured on.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\r\n\r\n")) >= 0:
            head = self._buffer[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(self._buffer) < end + 4 + length:
                return
            self._buffer = self._buffer[end + 4 + length :]
            assert self._transport is not None
            self._transport.write(ANSWER)


async def _hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while await reader.read(65536):
            pass
    writer.close()


async def _receive(pipe: Connection) -> None:
    loop = asyncio.get_running_loop()
    fast = await loop.create_server(_Answer, "127.0.0.1", 0, backlog=1024)
    hang = await asyncio.start_server(_hang, "127.0.0.1", 0, backlog=1024)
    pipe.send((fast.sockets[0].getsockname()[1], hang.sockets[0].getsockname()[1]))
    await asyncio.get_running_loop().run_in_executor(None, pipe.recv)


def receiver_main(pipe: Connection) -> None:
    uvloop.run(_receive(pipe))


@contextlib.contextmanager
def receiver() -> Any:
    """(fast URL, hanging URL) of a receiver process, stopped after."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=receiver_main, args=(theirs,), daemon=True)
    process.start()
    fast, hang = ours.recv()
    try:
        yield f"http://127.0.0.1:{fast}/in", f"http://127.0.0.1:{hang}/in"
    finally:
        ours.send("stop")
        process.join(5)
        if process.is_alive():
            process.kill()


# -- seeding --------------------------------------------------------------------------------


def body(index: int) -> dict[str, Any]:
    """A CHESTER-like decoded body (~400 bytes of JSON)."""
    return {
        "message": {"sequence": index},
        "system": {"uptime": 86_400 + index, "voltage_rest": 3.61, "voltage_load": 3.48},
        "network": {"imei": 351234567890123, "parameter": {"rsrp": -95, "rsrq": -10, "snr": 7}},
        "hygrometer": {
            "temperature": {"measurements": [{"avg": 21.5, "min": 21.1, "max": 21.9}]},
            "humidity": {"measurements": [{"avg": 45.0, "min": 44.0, "max": 46.0}]},
        },
        "accelerometer": {"orientation": 1 + index % 6},
        "thermometer": {"temperature": 22.43},
    }


def message_rows(device: dict[str, Any], count: int) -> list[dict[str, Any]]:
    now = time.time()
    return [
        {
            "id": uuid7(now + i / 100_000),
            "created_at": datetime.fromtimestamp(now + i / 100_000, UTC),
            "organization_id": device["organization_id"],
            "group_id": device["group_id"],
            "device_id": device["id"],
            "session_id": None,
            "type": "data",
            "direction": "up",
            "body": body(i),
            "raw": os.urandom(60),
            "codec_hash": "0123456789abcdef",
            "decode_state": "decoded",
            "decode_error": None,
            "downlink_id": None,
        }
        for i in range(count)
    ]


async def seed(
    engine: Any, count: int, urls: list[str]
) -> tuple[list[dict[str, Any]], list[uuid.UUID]]:
    device = await devices.add_device(
        engine, serial=123_456_789, claim_token=os.urandom(16), name="bench"
    )
    rows = message_rows(device, count)
    async with engine.begin() as conn:
        for start in range(0, count, 2_000):
            await conn.execute(sa.insert(t.messages), rows[start : start + 2_000])
    now = datetime.now(UTC)
    ids = [uuid.uuid4() for _ in urls]
    async with engine.begin() as conn:
        for callback_id, url in zip(ids, urls, strict=True):
            await conn.execute(
                sa.insert(t.callbacks).values(
                    id=callback_id,
                    organization_id=device["organization_id"],
                    group_id=device["group_id"],
                    name="bench",
                    method="POST",
                    url=url,
                    query_params=[],
                    headers=[{"name": "Authorization", "value": "Bearer bench"}],
                    content_type="application/json",
                    payload=PAYLOAD,
                    triggers=["data"],
                    timeout=10.0,
                    retry_delays=[10, 30, 60],
                    created_at=now,
                    updated_at=now,
                )
            )
    return rows, ids


@contextlib.asynccontextmanager
async def scratch(postgres: bool) -> AsyncIterator[Database]:
    """A migrated scratch database, dropped after."""
    if postgres:
        name = f"nubes_bench_callbacks_{os.getpid()}_{secrets.token_hex(3)}"
        await pg_admin(f'CREATE DATABASE "{name}"')
        database = Database(pg_url(name))
        try:
            await database.migrate()
            yield database
        finally:
            await database.dispose()
            await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    with tempfile.TemporaryDirectory() as folder:
        database = Database(f"sqlite+aiosqlite:///{folder}/bench.db")
        try:
            await database.migrate()
            yield database
        finally:
            await database.dispose()


# -- the phases -----------------------------------------------------------------------------


def evaluations(seconds: float) -> float:
    payload = compile_payload(PAYLOAD)
    row = message_rows({"id": uuid.uuid4(), "organization_id": uuid.uuid4(), "group_id": None}, 1)
    document = message_document(row[0], {"id": uuid.uuid4(), "name": "b", "serial": 1})
    for _ in range(200):  # warm-up
        payload.apply(document)
    done, began = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - began) < seconds:
        for _ in range(500):
            payload.apply(document)
        done += 500
    return done / elapsed


async def scaled_out(count: int, fast: str, processes: int) -> tuple[float, int, float]:
    """As `deliveries`, with `processes` dispatcher processes behind RabbitMQ (PostgreSQL)."""
    async with scratch(True) as database:
        engine = database.engine
        rows, ids = await seed(engine, count, [fast])
        bodies = [
            _events([stored_event(row) for row in rows[start : start + EVENT_BATCH]])
            for start in range(0, count, EVENT_BATCH)
        ]
        url = database.engine.url.render_as_string(hide_password=False)
        rate, cpu_us = await dispatchers.scaled(url, engine, ids[0], bodies, count, processes)
        wrong = await _wrong(engine, ids[0], count)
    return rate, wrong, cpu_us


async def deliveries(
    postgres: bool, count: int, fast: str, hang: str | None
) -> tuple[float, int, float]:
    """Deliveries/s of the healthy callback, how many ended wrong, CPU µs per delivery.

    The CPU time is this process's (dispatcher, SQLite's thread, the event
    publishing), not the receiver's nor PostgreSQL's.
    """
    urls = [fast] if hang is None else [fast, hang]
    async with scratch(postgres) as database:
        engine = database.engine
        rows, ids = await seed(engine, count, urls)
        broker = MemoryBroker()
        settings = Settings(
            callback_allow_private=True, callback_concurrency=int(os.environ.get("CC", "8"))
        )
        sender = Sender(
            allow_private=True, max_connections=settings.dispatcher_concurrency, user_agent="b"
        )
        dispatcher = Dispatcher(engine, broker, settings, sender)
        await dispatcher.start()
        try:
            began, cpu, busy = time.perf_counter(), time.process_time(), machine_busy()
            for start in range(0, count, EVENT_BATCH):
                events = [stored_event(row) for row in rows[start : start + EVENT_BATCH]]
                await broker.publish(MESSAGE_STORED, _events(events))
                if PACE:
                    await asyncio.sleep(
                        max(0.0, began + (start + EVENT_BATCH) / PACE - time.perf_counter())
                    )
            while dispatcher.delivered < count:  # noqa: ASYNC110 - a plain counter, polled
                await asyncio.sleep(0.005)
            rate = count / (time.perf_counter() - began)
            cpu_us = (time.process_time() - cpu) / count * 1e6
            machine_us = (machine_busy() - busy) / count * 1e6
            say(f"   (the whole machine's CPU: {machine_us:,.0f} us per delivery)")
        finally:
            await dispatcher.close()
            await broker.close()
            await sender.close()
        wrong = await _wrong(engine, ids[0], count)
    return rate, wrong, cpu_us


def _events(events: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"v": 1, "messages": events}, default=str)


async def _wrong(engine: Any, callback_id: uuid.UUID, count: int) -> int:
    d = t.deliveries
    query = sa.select(sa.func.count()).where(
        d.c.callback_id == callback_id, d.c.state == "succeeded"
    )
    async with engine.connect() as conn:
        succeeded = int((await conn.scalar(query)) or 0)
    return count - succeeded


def machine_busy() -> float:
    """CPU seconds all processes of the machine have used (Linux /proc/stat)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[:7])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


async def main(args: argparse.Namespace) -> int:
    backend = "PostgreSQL" if args.postgres else "SQLite"
    say(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; database {backend}")
    per_core = evaluations(1.0 if args.quick else 3.0)
    say(
        f"1. transform evaluations/s (one core, cloud.md example): {per_core:,.0f}/s"
        f"  target >= {TARGET_EVALUATIONS:,.0f}/s  {verdict(per_core >= TARGET_EVALUATIONS)}"
    )
    errors = 0
    with receiver() as (fast, hang):
        healthy, wrong, cpu_us = await deliveries(args.postgres, args.deliveries, fast, None)
        errors += wrong
        say(
            f"2. deliveries/s, JSONata to a local receiver ({args.deliveries:,}): {healthy:,.0f}/s"
            f"  target >= {TARGET_DELIVERIES:,.0f}/s  {verdict(healthy >= TARGET_DELIVERIES)}"
            f"\n   (dispatcher process CPU: {cpu_us:,.0f} us per delivery)"
        )
        beside, wrong, beside_cpu_us = await deliveries(args.postgres, args.deliveries, fast, hang)
        errors += wrong
        ratio = beside / healthy
        say(
            f"3. healthy callback's deliveries/s beside a hanging one: {beside:,.0f}/s"
            f" ({ratio:.0%} of healthy-only)  target within {TARGET_ISOLATION:.0%}"
            f"  {verdict(ratio >= 1 - TARGET_ISOLATION)}"
            f"\n   (dispatcher process CPU: {beside_cpu_us:,.0f} us per healthy delivery)"
        )
        if args.postgres and args.dispatchers > 1:
            rate, wrong, cpu_us = await scaled_out(args.deliveries, fast, args.dispatchers)
            errors += wrong
            say(
                f"4. deliveries/s with {args.dispatchers} dispatcher processes behind RabbitMQ:"
                f" {rate:,.0f}/s  target >= {TARGET_DELIVERIES:,.0f}/s"
                f"  {verdict(rate >= TARGET_DELIVERIES)}"
                f"\n   (dispatchers' CPU: {cpu_us:,.0f} us per delivery in all)"
            )
    say(f"errors (deliveries not succeeded): {errors}")
    return 1 if errors else 0


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deliveries", type=int, default=20_000, help="per phase")
    parser.add_argument("--postgres", action="store_true", help="a scratch PostgreSQL database")
    parser.add_argument(
        "--dispatchers",
        type=int,
        default=2,
        help="with --postgres: dispatcher processes behind RabbitMQ in phase 4 (1: no phase 4)",
    )
    parser.add_argument("--quick", action="store_true", help="2,000 deliveries (smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.deliveries = 2_000
    return args


if __name__ == "__main__":
    sys.exit(uvloop.run(main(arguments())))
