"""API benchmark: reading messages through HTTP with 1 million messages stored.

    .venv/bin/python bench/api.py             # the full run, 4 to 6 minutes
    .venv/bin/python bench/api.py --quick     # 20,000 messages, a smoke test
    .venv/bin/python bench/api.py --json      # figures as one JSON document

What it answers (issue 3): how long do "latest 100 messages of a device"
and "page 50 of a group's messages" take through the HTTP API of a real
`nubes api` process, p50/p99; the target is p99 < 20 ms for the first.

In a scratch PostgreSQL database (created here, dropped at the end, even on
failure or timeout) it migrates to head, adds one organization with 10
groups of 100 devices, and copies 1,000,000 messages in with COPY, spread
over the past 30 days, devices taking turns in a shuffled order as they
would arrive: UUIDv7 ids of their `created_at`, mostly data messages with a
CHESTER-like JSON body of about 250 bytes and 60 raw bytes. The indexes are
dropped for the copy and rebuilt after it (as bench/storage.py does), then
`VACUUM (ANALYZE)`, as autovacuum would have done.

`nubes api` then runs as its own process on a free loopback port, and a
small HTTP/1.1 client (raw asyncio streams, keep-alive; lighter than httpx,
so that on two cores the client takes less from the server) times each
request from its first byte sent to the last byte of the answer. Every
scenario: warm-up requests, then a fixed count, at concurrency 1 and 4:

- baselines: `GET /health` (HTTP and framework alone) and
  `GET /v1/auth/me` (plus the API key's check in the database);
- latest 100 of a random device: `?device_id=...&limit=100`;
- page 50 of a random group by offset: `?group_id=...&offset=4900&limit=100`;
- page 50 by cursor: each group's page-49 answer names the cursor of page
  50 (`x-next-cursor`), fetched once up front; then page 50 is timed.

Each line gives p50/p90/p99/max, requests/s, and how much of one core the
`nubes api` process used meanwhile (near 100 %: the API's Python is the
limit, not PostgreSQL). Every answer, warm-up included, must be 200 with
100 messages; anything else counts as an error and makes the exit status
1. The p99 target, judged at concurrency 1 (at 4 the latency is mostly
queueing behind the busy API process), only prints PASS or MISS: a shared
two-core machine is noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import secrets
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

import asyncpg
import orjson
import sqlalchemy as sa
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from storage import (
    PG_HOST,
    PG_PORT,
    PG_USER,
    create_message_indexes,
    drop_message_indexes,
    pg_admin,
    pg_url,
)

from nubes.ids import uuid7
from nubes.services.auth import create_api_key
from nubes.store import tables as t
from nubes.store.database import Database

ROOT = Path(__file__).resolve().parents[1]
NUBES = str(Path(sys.executable).with_name("nubes"))
FIRST_SERIAL = 2_159_000_000
SPAN = timedelta(days=30)
COPY_CHUNK = 50_000
PAGE, PAGE_NUMBER = 100, 50
TARGET_P99_MS = 20.0
REQUEST_TIMEOUT = 10.0  # seconds, per request
TIME_LIMIT = 900.0  # seconds, the whole run
COLUMNS = ["id", "created_at", "organization_id", "group_id", "device_id", "session_id"]
COLUMNS += ["type", "direction", "body", "raw", "codec_hash", "decode_state"]
CODEC_HASH = "5c1e8a0f3b2d4e67"
HEALTH_SCENARIO, ME_SCENARIO = "GET /health (baseline)", "GET /v1/auth/me (baseline)"
DEVICE_SCENARIO = "latest 100 of a device"

# Seeding ---------------------------------------------------------------------


@dataclass(frozen=True)
class Fleet:
    organization_id: uuid.UUID
    groups: list[uuid.UUID]
    devices: list[tuple[uuid.UUID, uuid.UUID]]  # (device id, group id)


async def add_fleet(database: Database, groups: int, per_group: int) -> Fleet:
    now, org = datetime.now(UTC), uuid.uuid4()
    fleet = Fleet(org, [uuid.uuid4() for _ in range(groups)], [])
    for n in range(groups * per_group):
        fleet.devices.append((uuid.uuid4(), fleet.groups[n // per_group]))
    rows = [
        {"id": device, "organization_id": org, "group_id": group,
         "serial": FIRST_SERIAL + n, "claim_token": os.urandom(16),
         "name": f"CHESTER {FIRST_SERIAL + n}", "label": f"hsn:{FIRST_SERIAL + n}",
         "enabled": True, "created_at": now, "changed_at": now}
        for n, (device, group) in enumerate(fleet.devices)
    ]  # fmt: skip
    group_rows = [
        {"id": group, "organization_id": org, "name": f"group {n:02}", "created_at": now}
        for n, group in enumerate(fleet.groups)
    ]  # fmt: skip
    async with database.engine.begin() as conn:
        await conn.execute(sa.insert(t.organizations).values(id=org, name="bench", created_at=now))
        await conn.execute(sa.insert(t.groups), group_rows)
        await conn.execute(sa.insert(t.devices), rows)
    return fleet


def clime_body(pick: random.Random, sequence: int) -> bytes:
    """A CHESTER clime-like decoded body, about 250 bytes of JSON."""
    temperature = round(18 + 6 * pick.random(), 2)
    return orjson.dumps(
        {
            "message": {"version": 1, "sequence": sequence, "uptime": sequence * 900},
            "system": {"voltage_rest": 3.61, "voltage_load": 3.52, "current_load": 41},
            "thermometer": {"temperature": temperature},
            "hygrometer": {"temperature": temperature, "humidity": round(30 + 40 * pick.random())},
            "network": {"parameter": {"rsrp": -pick.randint(70, 110), "snr": pick.randint(-3, 15)}},
        }
    )


def turns(devices: int, pick: random.Random) -> Iterator[int]:
    """Device indexes: every device once per round, in a new order each round."""
    order = list(range(devices))
    while True:
        pick.shuffle(order)
        yield from order


def record(fleet: Fleet, index: int, at: float, sequence: int, pick: random.Random) -> Any:
    """One COPY record: 95 % data messages, the rest statistics."""
    device, group = fleet.devices[index]
    head = (uuid7(at), datetime.fromtimestamp(at, UTC), fleet.organization_id, group, device)
    session = index * 1000 + sequence // 48  # a new session every 48 messages
    if pick.random() < 0.95:
        body, decoded = clime_body(pick, sequence), (CODEC_HASH, "decoded")
    else:
        body, decoded = orjson.dumps({"uptime": sequence * 900, "rx": sequence}), (None, None)
    return (*head, session, "data" if decoded[0] else "stats", "up", body.decode(),
            pick.randbytes(60), *decoded)  # fmt: skip


def message_records(fleet: Fleet, total: int, pick: random.Random) -> Iterator[list[Any]]:
    """Chunks of COPY records, oldest first, the newest a minute ago."""
    step = SPAN.total_seconds() / total
    start = time.time() - 60 - SPAN.total_seconds()
    devices = len(fleet.devices)
    chunk = []
    for n, index in zip(range(total), turns(devices, pick), strict=False):
        chunk.append(record(fleet, index, start + n * step, n // devices, pick))
        if len(chunk) == COPY_CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def copy_messages(name: str, fleet: Fleet, total: int) -> None:
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=name)
    try:
        for chunk in message_records(fleet, total, random.Random(7)):
            await conn.copy_records_to_table("messages", records=chunk, columns=COLUMNS)
    finally:
        await conn.close()


async def seed(name: str, args: argparse.Namespace) -> tuple[Fleet, str, dict[str, float]]:
    """Migrates, adds the fleet and the messages; returns them, a read API key and timings."""
    database = Database(pg_url(name))
    seconds: dict[str, float] = {}
    try:
        began = time.perf_counter()
        await database.migrate()
        fleet = await add_fleet(database, args.groups, args.devices_per_group)
        key = await create_api_key(database.engine, organization_id=fleet.organization_id)
        async with database.engine.begin() as conn:
            await drop_message_indexes(conn)
        seconds["migrate and fleet"] = time.perf_counter() - began
        for step, action in (
            ("COPY", lambda: copy_messages(name, fleet, args.messages)),
            ("indexes", lambda: rebuild_indexes(database)),
            ("VACUUM (ANALYZE)", lambda: vacuum(database)),
        ):
            began = time.perf_counter()
            await action()
            seconds[step] = time.perf_counter() - began
        return fleet, str(key["key"]), seconds
    finally:
        await database.dispose()


async def rebuild_indexes(database: Database) -> None:
    async with database.engine.begin() as conn:
        await create_message_indexes(conn)


async def vacuum(database: Database) -> None:
    async with database.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(sa.text("VACUUM (ANALYZE)"))


# HTTP --------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class Client:
    """One keep-alive HTTP/1.1 connection to the API on loopback."""

    def __init__(self, port: int, key: str) -> None:
        self.port = port
        self.auth = f"Authorization: Bearer {key}\r\n"
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, target: str) -> Reply:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            if self.streams is None:
                self.streams = await asyncio.open_connection("127.0.0.1", self.port)
            reader, writer = self.streams
            head = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n{self.auth}\r\n"
            writer.write(head.encode())
            reply = await self._read(reader)
        if reply.headers.get("connection", "").lower() == "close":
            await self.close()
        return reply

    async def _read(self, reader: asyncio.StreamReader) -> Reply:
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            return Reply(status, headers, await self._chunks(reader))
        return Reply(status, headers, await reader.readexactly(int(headers["content-length"])))

    @staticmethod
    async def _chunks(reader: asyncio.StreamReader) -> bytes:
        body = bytearray()
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        await reader.readuntil(b"\r\n")  # the end of the (empty) trailer
        return bytes(body)

    async def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def api_process(url: str, log: TextIO) -> AsyncIterator[tuple[int, int]]:
    """`nubes api` on a free loopback port; yields (port, pid) once it answers."""
    port = free_tcp_port()
    env = {
        **os.environ,
        "NUBES_DATABASE_URL": url,
        "NUBES_HTTP_PORT": str(port),
        "NUBES_BIND": "127.0.0.1",
        "NUBES_REDIS_URL": "memory://",
        "NUBES_BROKER_URL": "memory://",
        "NUBES_LOG_LEVEL": "WARNING",
    }
    proc = await asyncio.create_subprocess_exec(
        NUBES, "api", env=env, cwd=ROOT, stdout=log, stderr=log
    )
    try:
        await wait_healthy(port, proc)
        yield port, proc.pid
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def wait_healthy(port: int, proc: asyncio.subprocess.Process, patience: float = 60) -> None:
    deadline = time.monotonic() + patience
    client = Client(port, "")
    while time.monotonic() < deadline and proc.returncode is None:
        try:
            if (await client.get("/health")).status == 200:
                await client.close()
                return
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            await client.close()
        await asyncio.sleep(0.1)
    raise RuntimeError("`nubes api` did not answer GET /health")


# Measuring -----------------------------------------------------------------------


@dataclass
class Figures:
    name: str
    concurrency: int
    requests: int
    p50: float
    p90: float
    p99: float
    max: float
    per_second: float
    api_cpu: float  # share of one core the API process used
    errors: int
    first_error: str = ""


@dataclass(frozen=True)
class Scenario:
    name: str
    targets: list[str]  # the pool a run draws from
    items: int | None  # messages every answer must hold; None: no check

    def problem(self, reply: Reply) -> str | None:
        if reply.status != 200:
            return f"HTTP {reply.status}: {reply.body[:200]!r}"
        if self.items is not None and (found := len(orjson.loads(reply.body))) != self.items:
            return f"{found} messages, not {self.items}"
        return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(
    clients: Sequence[Client], scenario: Scenario, count: int, pick: random.Random
) -> tuple[list[float], list[str]]:
    """`count` requests over the clients at once: milliseconds of each, and problems."""
    targets = iter([pick.choice(scenario.targets) for _ in range(count)])
    spent: list[float] = []
    problems: list[str] = []

    async def one_connection(client: Client) -> None:
        for target in targets:
            began = time.perf_counter()
            reply = await client.get(target)
            spent.append((time.perf_counter() - began) * 1000)
            if (problem := scenario.problem(reply)) is not None:
                problems.append(problem)

    await asyncio.gather(*(one_connection(client) for client in clients))
    return spent, problems


async def measure(
    port: int, key: str, pid: int, scenario: Scenario, concurrency: int, args: argparse.Namespace
) -> Figures:
    """Warm-up, then the timed requests; wrong answers of both count as errors."""
    clients = [Client(port, key) for _ in range(concurrency)]
    pick = random.Random(f"{scenario.name} {concurrency}")
    try:
        _, problems = await drive(clients, scenario, args.warmup, pick)
        cpu, began = cpu_seconds(pid), time.perf_counter()
        spent, more = await drive(clients, scenario, args.requests, pick)
        elapsed = time.perf_counter() - began
        cpu = (cpu_seconds(pid) - cpu) / elapsed
    finally:
        for client in clients:
            await client.close()
    problems += more
    cuts = statistics.quantiles(spent, n=100, method="inclusive")
    return Figures(
        scenario.name, concurrency, len(spent), statistics.median(spent), cuts[89], cuts[98],
        max(spent), len(spent) / elapsed, cpu, len(problems), problems[0] if problems else "",
    )  # fmt: skip


def messages_path(**query: str | int) -> str:
    return "/v1/messages?" + "&".join(f"{k}={quote(str(v), safe='')}" for k, v in query.items())


async def page_fifty(client: Client, group: uuid.UUID) -> tuple[str, bool]:
    """Walks a group's pages by cursor; returns page 50's path and page 50 by offset."""
    path = messages_path(group_id=group, limit=PAGE)
    for page in range(1, PAGE_NUMBER):
        reply = await client.get(path)
        cursor = reply.headers.get("x-next-cursor")
        if reply.status != 200 or not cursor:
            problem = f"HTTP {reply.status}, x-next-cursor {cursor!r}: {reply.body[:300]!r}"
            raise RuntimeError(f"GET /v1/messages, page {page} of group {group}: {problem}")
        path = messages_path(group_id=group, limit=PAGE, cursor=cursor)
    offset = (PAGE_NUMBER - 1) * PAGE
    by_offset = await client.get(messages_path(group_id=group, offset=offset, limit=PAGE))
    by_cursor = await client.get(path)
    return path, _ids(by_offset.body) == _ids(by_cursor.body)


def _ids(body: bytes) -> list[str]:
    try:
        return [item["id"] for item in orjson.loads(body)]
    except (orjson.JSONDecodeError, TypeError, KeyError):
        return []


async def scenarios(port: int, key: str, fleet: Fleet) -> tuple[list[Scenario], int]:
    """The scenarios, and for how many groups page 50 by offset and by cursor agree."""
    client = Client(port, key)
    try:
        walked = [await page_fifty(client, group) for group in fleet.groups]
    finally:
        await client.close()
    offset = (PAGE_NUMBER - 1) * PAGE
    return [
        Scenario(HEALTH_SCENARIO, ["/health"], None),
        Scenario(ME_SCENARIO, ["/v1/auth/me"], None),
        Scenario(
            DEVICE_SCENARIO,
            [messages_path(device_id=device, limit=PAGE) for device, _ in fleet.devices],
            PAGE,
        ),
        Scenario(
            "page 50 of a group, offset",
            [messages_path(group_id=g, offset=offset, limit=PAGE) for g in fleet.groups],
            PAGE,
        ),
        Scenario("page 50 of a group, cursor", [path for path, _ in walked], PAGE),
    ], sum(agree for _, agree in walked)


# The run -----------------------------------------------------------------------


@dataclass
class Result:
    messages: int
    groups: int
    devices: int
    requests: int
    warmup: int
    seeding_seconds: dict[str, float]
    table_megabytes: float
    page50_agree: str
    figures: list[Figures]

    @property
    def errors(self) -> int:
        return sum(f.errors for f in self.figures)


async def benchmark(name: str, args: argparse.Namespace, log: TextIO) -> Result:
    say(f"seeding {args.messages:,} messages over {args.groups} x {args.devices_per_group} devices")
    fleet, key, seconds = await seed(name, args)
    say("  " + ", ".join(f"{step} {s:.1f} s" for step, s in seconds.items()))
    async with api_process(pg_url(name), log) as (port, pid):
        say(f"nubes api (pid {pid}) answers on 127.0.0.1:{port}")
        found, agree = await scenarios(port, key, fleet)
        figures = []
        for scenario in found:
            for concurrency in args.concurrency:
                figures.append(await measure(port, key, pid, scenario, concurrency, args))
                say(figure_line(figures[-1]))
    size, devices = await table_megabytes(name), len(fleet.devices)
    return Result(
        args.messages, args.groups, devices, args.requests, args.warmup, seconds, size,
        f"{agree}/{len(fleet.groups)}", figures,
    )  # fmt: skip


async def table_megabytes(name: str) -> float:
    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=name)
    try:
        size = await conn.fetchval("SELECT pg_total_relation_size('messages')")
    finally:
        await conn.close()
    return float(size) / 1e6


def say(line: str) -> None:
    print(line, flush=True)  # to stderr with --json: see run()


def figure_line(f: Figures) -> str:
    line = (
        f"  {f.name:<28} c={f.concurrency}  p50 {f.p50:6.2f}  p90 {f.p90:6.2f}  "
        f"p99 {f.p99:6.2f}  max {f.max:6.1f} ms  {f.per_second:6.0f} req/s  "
        f"API CPU {f.api_cpu:4.0%}  errors {f.errors}"
    )
    return line + (f" (first: {f.first_error})" if f.errors else "")


def report(result: Result, seconds: float) -> None:
    say(
        f"\nAPI reads at {result.messages:,} messages ({result.table_megabytes:,.0f} MB with "
        f"indexes), {result.devices:,} devices in {result.groups} groups;\n{result.requests:,} "
        f"requests per line after {result.warmup} warm-up; milliseconds, send to last byte:"
    )
    for figures in result.figures:
        say(figure_line(figures))
    say(f"\nseeding: {sum(result.seeding_seconds.values()):.1f} s")
    say(verdict(result.figures))
    say(overhead(result.figures))
    say(f"page 50 by offset and by cursor: the same messages in {result.page50_agree} groups")
    say(f"errors (not 200, or not {PAGE} messages): {result.errors}")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    say(f"whole run: {seconds:.0f} s; load average at the end: {load} ({os.cpu_count()} CPUs)")


def lowest(figures: list[Figures], name: str) -> Figures:
    """The figures of a scenario at its lowest concurrency (one client by default)."""
    return min((f for f in figures if f.name == name), key=lambda f: f.concurrency)


def verdict(figures: list[Figures]) -> str:
    device = lowest(figures, DEVICE_SCENARIO)
    passed = "PASS" if device.p99 < TARGET_P99_MS else "MISS"
    return (
        f"target: {DEVICE_SCENARIO}, p99 < {TARGET_P99_MS:g} ms at c={device.concurrency}: "
        f"{device.p99:.2f} ms {passed}"
    )


def overhead(figures: list[Figures]) -> str:
    health, me = lowest(figures, HEALTH_SCENARIO), lowest(figures, ME_SCENARIO)
    device = lowest(figures, DEVICE_SCENARIO)
    return (
        f"overhead at c={device.concurrency}: GET /health p50 {health.p50:.2f} ms is "
        f"{health.p50 / device.p50:.0%} of the device read's p50 {device.p50:.2f} ms; "
        f"GET /v1/auth/me {me.p50:.2f} ms ({me.p50 / device.p50:.0%})"
    )


async def main(args: argparse.Namespace) -> Result:
    say(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}")
    name = f"nubes_bench_api_{os.getpid()}_{secrets.token_hex(3)}"
    await pg_admin(f'CREATE DATABASE "{name}"')
    began = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        try:
            async with asyncio.timeout(TIME_LIMIT):
                result = await benchmark(name, args, log)
        except Exception:
            log.seek(0)
            print(f"nubes api log:\n{log.read()[-4000:]}", file=sys.stderr)
            raise
        finally:
            await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    report(result, time.perf_counter() - began)
    return result


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1_000_000, help="messages to store")
    parser.add_argument("--groups", type=int, default=10, help="groups of devices")
    parser.add_argument("--devices-per-group", type=int, default=100, help="devices per group")
    parser.add_argument("--requests", type=int, default=2_000, help="timed requests per line")
    parser.add_argument("--warmup", type=int, default=100, help="untimed requests before each line")
    parser.add_argument(
        "--concurrency",
        type=lambda s: [int(c) for c in s.split(",")],
        default=[1, 4],
        help="connections at once, one line each (default 1,4)",
    )
    parser.add_argument("--quick", action="store_true", help="20,000 messages (smoke test)")
    parser.add_argument("--json", action="store_true", help="figures as JSON on stdout")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.groups, args.devices_per_group = 20_000, 2, 10
        args.requests, args.warmup = 100, 20
    devices = args.groups * args.devices_per_group
    if args.messages // devices < PAGE or args.messages // args.groups < PAGE * PAGE_NUMBER:
        parser.error(f"too few messages for {PAGE} per device and {PAGE_NUMBER} pages per group")
    return args


def run(args: argparse.Namespace) -> int:
    """Exit status 1 when an answer was wrong; with --json the text goes to stderr."""
    with contextlib.redirect_stdout(sys.stderr if args.json else sys.stdout):
        result = uvloop.run(main(args))
    if args.json:
        print(orjson.dumps(asdict(result), option=orjson.OPT_INDENT_2).decode())
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(run(arguments()))
