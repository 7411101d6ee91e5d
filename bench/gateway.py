"""`make bench`: the gateway's figures, with a baseline from the same run.

Prints, in this order:
1. a raw UDP echo server's replies/s (uvloop), the baseline;
2. answered single-fragment uplinks/s through the gateway alone
   (bench/gateway_only.py: no storage), and its ratio to the baseline;
3. ack latency p50/p99 at a steady 1,000 messages/s on the production
   stack (separate `nubes gateway` and `nubes worker` processes, RabbitMQ
   and PostgreSQL of this machine);
4. end to end on that stack: acked and stored messages/s over a sustained
   run, and lost messages (acked by the gateway but not in the database).

Everything runs on loopback and stops by itself. `--quick` shortens every
phase (used by the test suite to keep this script working).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import sqlalchemy as sa
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import Result, claim_token, run_load

from nubes.codec import codec_from_yaml, hash_hex, yaml_to_cbor
from nubes.store import tables as t
from nubes.store.database import Database

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
DEMO_DECODER = ROOT / "src" / "nubes" / "sim" / "codecs" / "demo.decoder.yaml"
FIRST_SERIAL = 3_000_000_000


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def process(
    args: list[str], env: dict[str, str] | None = None, ready: str | None = None
) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        args,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    try:
        if ready is not None:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if not line.startswith(ready):
                raise RuntimeError(f"{args[1]} did not start: {line!r}")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


async def prepare(url: str, serials: list[int]) -> None:
    """Migrates and fills a database with the bench devices and the demo decoder."""
    database = Database(url)
    await database.migrate()
    now = datetime.now(UTC)
    org, group = uuid.uuid4(), uuid.uuid4()
    cbor = yaml_to_cbor(DEMO_DECODER.read_text())
    codec = codec_from_yaml(DEMO_DECODER.read_text())
    from nubes.codec import codec_hash

    async with database.engine.begin() as conn:
        await conn.execute(sa.insert(t.organizations).values(id=org, name="bench", created_at=now))
        await conn.execute(
            sa.insert(t.groups).values(id=group, organization_id=org, name="bench", created_at=now)
        )
        await conn.execute(
            sa.insert(t.devices),
            [
                {
                    "id": uuid.uuid4(),
                    "organization_id": org,
                    "group_id": group,
                    "serial": serial,
                    "claim_token": claim_token(serial),
                    "name": f"bench {serial}",
                    "enabled": True,
                    "created_at": now,
                    "changed_at": now,
                }
                for serial in serials
            ],
        )
        await conn.execute(
            sa.insert(t.codecs).values(
                id=uuid.uuid4(),
                organization_id=org,
                hash=hash_hex(codec_hash(cbor)),
                kind="decoder",
                name=codec.name,
                document=codec.document,
                cbor=cbor,
                source="user",
                created_at=now,
                updated_at=now,
            )
        )
    await database.dispose()


async def stored_count(url: str) -> int:
    database = Database(url)
    try:
        async with database.engine.connect() as conn:
            query = (
                sa.select(sa.func.count())
                .select_from(t.messages)
                .where(t.messages.c.type == "data", t.messages.c.decode_state == "decoded")
            )
            return int((await conn.execute(query)).scalar() or 0)
    finally:
        await database.dispose()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(name: str, result: Result, baseline: float | None = None) -> None:
    line = f"{name}: {result.rate:,.0f}/s ({result.acked:,} in {result.elapsed:.1f} s"
    line += f", {result.resent} resent, {result.resets} resets)"
    if baseline:
        line += f"; {result.rate / baseline:.0%} of the UDP echo baseline"
    print(line, flush=True)


async def bench_baseline(devices: int, duration: float) -> float:
    port = free_port()
    serials = list(range(FIRST_SERIAL, FIRST_SERIAL + devices))
    prepared = _prepared(devices, duration)
    with process([PYTHON, "bench/echo_server.py", str(port)], ready="ready") as proc:
        before = cpu_seconds(proc.pid)
        result = await run_load(
            "127.0.0.1", port, serials, duration=duration, echo=True, prepare=prepared
        )
        cpu = (cpu_seconds(proc.pid) - before) / result.elapsed
    report("1. raw UDP echo baseline (uvloop)", result)
    print(f"   echo server CPU {cpu:.0%} of one core", flush=True)
    return result.rate


async def bench_gateway_alone(
    devices: int, duration: float, baseline: float, tmp: Path, redis_url: str | None = None
) -> float:
    url = f"sqlite+aiosqlite:///{tmp / 'gateway-only.db'}"
    serials = list(range(FIRST_SERIAL, FIRST_SERIAL + devices))
    await prepare(url, serials)
    port = free_port()
    args = [PYTHON, "bench/gateway_only.py", "--database-url", url, "--port", str(port)]
    if redis_url:
        args += ["--redis-url", redis_url]
    with process(args, ready="ready") as proc:
        await run_load("127.0.0.1", port, serials, duration=1.0)  # warm-up: links, downlink checks
        before = cpu_seconds(proc.pid)
        result = await run_load(
            "127.0.0.1", port, serials, duration=duration, prepare=_prepared(devices, duration)
        )
        cpu = (cpu_seconds(proc.pid) - before) / result.elapsed
    name = "2. gateway alone" + (", link state shared in Redis" if redis_url else "")
    report(f"{name}, answered single-fragment uplinks", result, baseline)
    print(
        f"   gateway CPU {cpu:.0%} of one core: {result.rate / max(cpu, 0.01):,.0f} uplinks/s "
        "per fully used core",
        flush=True,
    )
    return result.rate


def _prepared(devices: int, duration: float, ceiling: float = 40_000) -> int:
    """How many datagrams to seal in advance per device for a run."""
    return int(ceiling * duration / devices) + 1


async def _pg_admin(statement: str) -> None:
    conn = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres", database="test")
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def bench_end_to_end(
    devices: int, duration: float, workers: int, latency_seconds: float
) -> None:
    name = f"nubes_bench_{secrets.token_hex(3)}"
    await _pg_admin(f'CREATE DATABASE "{name}"')
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    prefix = f"bench{secrets.token_hex(3)}"
    serials = list(range(FIRST_SERIAL, FIRST_SERIAL + devices))
    try:
        await prepare(url, serials)
        port = free_port()
        env = {
            "NUBES_DATABASE_URL": url,
            "NUBES_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/",
            "NUBES_REDIS_URL": "redis://127.0.0.1:6379/0",
            "NUBES_BROKER_PREFIX": prefix,
            "NUBES_CACHE_PREFIX": prefix,
            "NUBES_BIND": "127.0.0.1",
            "NUBES_FLAP_BASE64_PORT": str(port),
            "NUBES_FLAP_RAW_PORT": str(free_port()),
            "NUBES_DTLS_PORT": str(free_port()),
            "NUBES_LOG_LEVEL": "WARNING",
        }
        nubes = str(Path(PYTHON).with_name("nubes"))
        with process([nubes, "worker"], env) as _w, process([nubes, "gateway"], env):
            extra = [process([nubes, "worker"], env) for _ in range(workers - 1)]
            for ctx in extra:
                ctx.__enter__()
            try:
                await wait_for_udp(port)
                # Latency first, on a settled stack: after the overload of the
                # sustained phase PostgreSQL is still vacuuming for a while.
                # Warm-up: each device's first packet makes the gateway read its
                # downlinks from the database once; then let storage settle.
                await run_load("127.0.0.1", port, serials, duration=2.0, rate=1000)
                await asyncio.sleep(3.0)
                await _latency_phase(port, serials, latency_seconds)
                await _end_to_end_phase(url, port, serials, duration)
            finally:
                for ctx in extra:
                    ctx.__exit__(None, None, None)
        await _drop_queue(prefix)
    finally:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def wait_for_udp(port: int, patience: float = 20.0) -> None:
    """Waits until the gateway answers (a datagram from an unknown serial gets none,
    so the gateway's readiness is seen from a short real load)."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        result = await run_load("127.0.0.1", port, [FIRST_SERIAL], duration=0.5, resend_after=0.2)
        if result.acked:
            return
    raise RuntimeError("the gateway did not answer")


async def _end_to_end_phase(url: str, port: int, serials: list[int], duration: float) -> None:
    before = await stored_count(url)
    start = time.perf_counter()
    result = await run_load("127.0.0.1", port, serials, duration=duration)
    report("4a. end to end, acked by the gateway", result)
    stored, last_change, previous = before, time.perf_counter(), -1
    while time.perf_counter() - last_change < 10:
        stored = await stored_count(url)
        if stored != previous:
            previous, last_change = stored, time.perf_counter()
        if stored - before >= result.acked:
            break
        await asyncio.sleep(0.5)
    elapsed = last_change - start
    new = stored - before
    lost = max(0, result.acked - new)
    print(
        f"4b. end to end, stored and decoded in PostgreSQL: {new / elapsed:,.0f}/s "
        f"({new:,} in {elapsed:.1f} s); lost: {lost}",
        flush=True,
    )


async def _latency_phase(port: int, serials: list[int], seconds: float) -> None:
    result = await run_load(
        "127.0.0.1", port, serials, duration=seconds, rate=1000, keep_latency=True
    )
    p50, p99 = result.percentile(0.5) * 1000, result.percentile(0.99) * 1000
    worst = max(result.latencies or [0.0]) * 1000
    print(
        f"3. ack latency at {result.rate:,.0f} msg/s end to end: "
        f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {worst:.1f} ms",
        flush=True,
    )


async def _drop_queue(prefix: str) -> None:
    import aio_pika

    connection = await aio_pika.connect("amqp://guest:guest@127.0.0.1:5672/")
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(f"{prefix}.store")
        await channel.exchange_delete(prefix)


async def main(args: argparse.Namespace) -> None:
    import tempfile

    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        baseline = await bench_baseline(args.devices, args.phase)
        await bench_gateway_alone(args.devices, args.phase, baseline, Path(tmp))
        if args.shared_state:
            redis = "redis://127.0.0.1:6379/0"
            shared = Path(tmp) / "shared"
            shared.mkdir()
            await bench_gateway_alone(args.devices, args.phase, baseline, shared, redis)
    await bench_end_to_end(args.devices, args.sustain, args.workers, args.latency)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--devices", type=int, default=500, help="simulated devices (one message in flight each)"
    )
    parser.add_argument("--phase", type=float, default=10.0, help="seconds of phases 1 and 2")
    parser.add_argument("--sustain", type=float, default=60.0, help="seconds of the end-to-end run")
    parser.add_argument("--latency", type=float, default=20.0, help="seconds of the latency run")
    parser.add_argument("--workers", type=int, default=1, help="`nubes worker` processes")
    parser.add_argument(
        "--shared-state",
        action="store_true",
        help="phase 2 again with link state shared in Redis (several gateways)",
    )
    parser.add_argument("--quick", action="store_true", help="2-second phases (smoke test)")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.phase, arguments.sustain, arguments.latency, arguments.devices = 2.0, 3.0, 2.0, 50
    uvloop.run(main(arguments))
