"""DTLS benchmark: handshakes/s, FLAP uplinks/s over DTLS, memory per association.

    .venv/bin/python bench/dtls.py            # 10,000 handshakes and associations
    .venv/bin/python bench/dtls.py --quick    # 1,000 and short phases (a smoke test)

The server is `nubes serve` on embedded defaults (SQLite file, in-process
broker), started here with free ports and with its devices and PSKs
written to the database first. The devices are simulated by one client
process (multiprocessing, spawn) over real UDP on loopback: python-mbedtls
clients with the simulator's configuration (`nubes.sim.dtls`: PSK
`nubes.sim.runner.psk_for(serial)`, CCM_8, DTLS 1.2), driven by one event
loop, each device with its own socket from its own loopback address
(127.1.x.y). One address would not do: the kernel hands out the ports of
closed sockets again, and a new ClientHello from an address ends the
association the server keeps for it.

What it prints, each figure with its target and PASS or MISS:

a. full PSK handshakes/s (cookie exchange included): `--handshakes`
   devices, `--concurrency` at a time, each from a fresh socket closed once
   established (target >= 1,000/s); and the server's CPU per handshake;
b. answered FLAP uplinks/s (single-fragment UPLOAD_DATA, one in flight per
   device, closed loop) over `--devices` established DTLS sessions, with the
   same client code against a plain UDP echo server (bench/echo_server.py)
   and against the raw MAC envelope of the same server, measured in the same
   run; the ratios and the server's CPU per uplink, storage included (no
   target: it says what DTLS costs);
c. memory per established association: the RSS of the server before and
   after phase a, which leaves `--handshakes` associations in the server
   (a closed client socket does not end one; only idle expiry would)
   (target <= 30 KB each).

Every phase counts failures and resends; a failed handshake is an error
(exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path

import sqlalchemy as sa
import uvloop
from mbedtls.exceptions import TLSError
from mbedtls.tls import ClientContext, TLSWrappedBuffer, WantReadError, WantWriteError

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import demo_data

from nubes import flap
from nubes.dtls import identity_of
from nubes.gateway.handshakes import HOLD_SECONDS
from nubes.sim.dtls import client_configuration
from nubes.sim.runner import claim_token_for, psk_for
from nubes.store import tables as t
from nubes.store.database import Database

ROOT = Path(__file__).resolve().parents[1]
NUBES = str(Path(sys.executable).with_name("nubes"))
FIRST_SERIAL = 3_100_000_000
TARGET_HANDSHAKES = 1_000.0
TARGET_BYTES = 30 * 1024
RETRANSMIT = 1.0  # seconds: the clients' first handshake retransmission
RESEND_AFTER = 1.0  # seconds: an unanswered uplink is sent again
HANDSHAKE_TIMEOUT = 20.0


def say(text: str) -> None:
    print(text, flush=True)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# -- the server ---------------------------------------------------------------------------


def free_port(kind: socket.SocketKind = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def prepare(url: str, serials: list[int]) -> None:
    """A migrated database with the bench devices, each with its claim token and PSK."""
    database = Database(url)
    await database.migrate()
    now = datetime.now(UTC)
    org, group = uuid.uuid4(), uuid.uuid4()
    rows = [
        {
            "id": uuid.uuid4(),
            "organization_id": org,
            "group_id": group,
            "serial": serial,
            "claim_token": claim_token_for(serial),
            "psk": psk_for(serial),
            "name": f"bench {serial}",
            "enabled": True,
            "created_at": now,
            "changed_at": now,
        }
        for serial in serials
    ]
    async with database.engine.begin() as conn:
        await conn.execute(sa.insert(t.organizations).values(id=org, name="bench", created_at=now))
        await conn.execute(
            sa.insert(t.groups).values(id=group, organization_id=org, name="bench", created_at=now)
        )
        for start in range(0, len(rows), 5_000):
            await conn.execute(sa.insert(t.devices), rows[start : start + 5_000])
    await database.dispose()


@dataclass(frozen=True)
class Server:
    pid: int
    dtls: int
    raw: int


@contextmanager
def nubes_serve(folder: Path) -> Iterator[Server]:
    """`nubes serve` on embedded defaults and free ports, until the block ends."""
    dtls, raw = free_port(), free_port()
    env = {
        **os.environ,
        "NUBES_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'nubes.db'}",
        "NUBES_BIND": "127.0.0.1",
        "NUBES_DTLS_PORT": str(dtls),
        "NUBES_FLAP_RAW_PORT": str(raw),
        "NUBES_FLAP_BASE64_PORT": str(free_port()),
        "NUBES_HTTP_PORT": str(free_port(socket.SOCK_STREAM)),
    }
    log_path = folder / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([NUBES, "serve"], env=env, stdout=log, stderr=log, cwd=folder)
    try:
        deadline = time.monotonic() + 60
        while " running (" not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nubes serve did not start:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield Server(proc.pid, dtls, raw)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def settled_rss(pid: int, patience: float = 8.0) -> int:
    """The RSS once it stops moving (the log records of the handshakes are being stored)."""
    previous, deadline = rss_bytes(pid), time.monotonic() + patience
    while time.monotonic() < deadline:
        time.sleep(0.5)
        current = rss_bytes(pid)
        if abs(current - previous) < 64 * 1024:
            return current
        previous = current
    return previous


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the client process: devices on one event loop ------------------------------------------


def source_address(index: int) -> str:
    """A loopback address of its own for device `index` (up to 64,000 of them)."""
    return f"127.1.{index // 250}.{1 + index % 250}"


@dataclass
class Tally:
    """What a client phase did; `elapsed` covers the counted part only."""

    done: int = 0
    failed: int = 0
    resent: int = 0
    resets: int = 0
    elapsed: float = 0.0
    cpu: float = 0.0
    """CPU seconds of the client process over `elapsed`."""
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed else 0.0


class Device:
    """One device socket: a DTLS handshake (for "dtls"), then closed-loop FLAP uplinks.

    `envelope` is "dtls", "raw" (MAC envelope) or "plain" (the FLAP packet as
    is, for the echo server, whose answer counts as the ack).
    """

    def __init__(self, fleet: Fleet, index: int, serial: int, envelope: str) -> None:
        self.fleet, self.serial, self.envelope = fleet, serial, envelope
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.bind((source_address(index), 0))
        self.sock.connect(fleet.server)
        fleet.loop.add_reader(self.sock.fileno(), self.readable)
        self.tls: TLSWrappedBuffer | None = None
        self.established = False
        self.last_sent = time.monotonic()
        self.seq = 0
        self.in_flight: bytes | None = None
        self.payload = demo_data(serial % 1000)
        self.token = claim_token_for(serial)

    def close(self) -> None:
        self.fleet.loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def readable(self) -> None:
        try:
            data = self.sock.recv(65_536)
        except OSError:  # nothing after all, or ICMP unreachable
            return
        if self.envelope == "dtls" and not self.established:
            assert self.tls is not None
            self.tls.receive_from_network(data)
            self.handshake_step()
        else:
            self.answer(data)

    # -- the handshake ------------------------------------------------------------------

    def start_handshake(self) -> None:
        configuration = client_configuration(
            identity_of(self.serial), psk_for(self.serial), RETRANSMIT
        )
        self.tls = ClientContext(configuration).wrap_buffers(None)
        self.handshake_step()

    def handshake_step(self) -> None:
        tls = self.tls
        assert tls is not None
        try:
            while tls._handshake_state.name != "HANDSHAKE_OVER":
                try:
                    tls.do_handshake()
                except WantReadError:
                    break
                except WantWriteError:
                    continue
        except TLSError as err:
            self.fleet.on_handshake(self, str(err))
            return
        self.flush()
        if tls._handshake_state.name == "HANDSHAKE_OVER":
            self.established = True
            self.fleet.on_handshake(self, None)

    def flush(self) -> None:
        assert self.tls is not None
        data = self.tls.peek_outgoing(1 << 16)
        if data:
            self.tls.consume_outgoing(len(data))
            self.send(data)

    def send(self, datagram: bytes) -> None:
        self.last_sent = time.monotonic()
        with contextlib.suppress(OSError):  # a full buffer or ICMP: the timers send again
            self.sock.send(datagram)

    # -- uplinks ------------------------------------------------------------------------

    def uplink(self) -> None:
        self.in_flight = flap.Packet(flap.F | flap.L, self.seq, self.payload).encode()
        self.transmit(self.in_flight)

    def transmit(self, packet: bytes) -> None:
        if self.envelope == "dtls":
            assert self.tls is not None
            self.tls.write(packet)
            self.flush()
        elif self.envelope == "raw":
            self.send(flap.seal(self.token, self.serial, packet))
        else:
            self.send(packet)

    def answer(self, datagram: bytes) -> None:
        packet = self.open(datagram)
        if packet is None or self.in_flight is None or len(packet) < 2:
            return
        header = int.from_bytes(packet[:2], "big")
        if self.envelope == "plain":
            header = flap.A << 12 | flap.next_seq(self.seq)
        if header == 0:  # reset: start over at sequence 0
            self.fleet.tally.resets += 1
            self.seq = 0
            self.uplink()
        elif header >> 12 == flap.A and header & 0xFFF == flap.next_seq(self.seq):
            self.in_flight = None
            self.seq = flap.next_seq(self.seq, 2)
            self.fleet.on_answer(self)

    def open(self, datagram: bytes) -> bytes | None:
        if self.envelope == "dtls":
            assert self.tls is not None
            self.tls.receive_from_network(datagram)
            try:
                return self.tls.read(65_536)
            except TLSError:  # WantReadError included
                return None
        if self.envelope == "raw":
            try:
                envelope = flap.open_envelope(datagram)
            except Exception:
                return None
            return envelope.packet if flap.verify(envelope, self.token) else None
        return datagram


class Fleet:
    """The devices of one phase, their event loop and what they did."""

    def __init__(self, port: int, envelope: str) -> None:
        self.loop = asyncio.get_running_loop()
        self.server = ("127.0.0.1", port)
        self.envelope = envelope
        self.tally = Tally()
        self.devices: list[Device] = []
        self.handshaking: set[Device] = set()
        self.running = False
        self.changed = asyncio.Event()
        self.keep = True
        """Whether established devices stay (for uplinks) or are closed at once."""

    def on_handshake(self, device: Device, error: str | None) -> None:
        self.handshaking.discard(device)
        if error is None:
            self.tally.done += 1
        else:
            self.tally.failed += 1
            if len(self.tally.errors) < 3:
                self.tally.errors.append(f"hsn:{device.serial}: {error}")
        if error is not None or not self.keep:
            device.close()  # a closed socket leaves the association to the server
            device.tls = None
        else:
            self.devices.append(device)
        self.changed.set()

    def on_answer(self, device: Device) -> None:
        if self.running:
            self.tally.done += 1
            device.uplink()

    def handshake(self, index: int, serial: int) -> None:
        device = Device(self, index, serial, "dtls")
        self.handshaking.add(device)
        device.start_handshake()

    async def settle(self, limit: int) -> None:
        """Waits until at most `limit` handshakes are under way."""
        while len(self.handshaking) > limit:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), HANDSHAKE_TIMEOUT)

    def tick(self) -> None:
        """Lets the clients' handshake timers fire, resends stale uplinks."""
        now = time.monotonic()
        for device in list(self.handshaking):
            if now - device.last_sent >= RETRANSMIT:
                sent = device.last_sent
                device.handshake_step()
                self.tally.resent += device.last_sent != sent
        if self.running:
            for device in self.devices:
                if device.in_flight is not None and now - device.last_sent >= RESEND_AFTER:
                    self.tally.resent += 1
                    device.transmit(device.in_flight)

    def close(self) -> None:
        for device in [*self.devices, *self.handshaking]:
            device.close()
        self.devices.clear()
        self.handshaking.clear()


async def _ticking(fleet: Fleet) -> None:
    while True:
        await asyncio.sleep(0.05)
        fleet.tick()


async def _handshakes(port: int, serials: list[int], first: int, concurrency: int) -> Tally:
    fleet = Fleet(port, "dtls")
    fleet.keep = False
    started, cpu = time.perf_counter(), time.process_time()
    ticker = asyncio.create_task(_ticking(fleet))
    try:
        for index, serial in enumerate(serials, start=first):
            await fleet.settle(concurrency - 1)
            fleet.handshake(index, serial)
        await fleet.settle(0)
        fleet.tally.elapsed = time.perf_counter() - started
        fleet.tally.cpu = time.process_time() - cpu
    finally:
        ticker.cancel()
        fleet.close()
    return fleet.tally


async def _uplinks(
    port: int, serials: list[int], first: int, envelope: str, seconds: float
) -> Tally:
    fleet = Fleet(port, envelope)
    ticker = asyncio.create_task(_ticking(fleet))
    try:
        if envelope == "dtls":
            for index, serial in enumerate(serials, start=first):
                fleet.handshake(index, serial)
            await fleet.settle(0)
            failed = fleet.tally.failed
        else:
            fleet.devices = [
                Device(fleet, index, serial, envelope)
                for index, serial in enumerate(serials, start=first)
            ]
            failed = 0
        fleet.tally = Tally(failed=failed)
        fleet.running = True
        started, cpu = time.perf_counter(), time.process_time()
        for device in fleet.devices:
            device.uplink()
        await asyncio.sleep(seconds)
        fleet.tally.elapsed = time.perf_counter() - started
        fleet.tally.cpu = time.process_time() - cpu
        fleet.running = False
    finally:
        ticker.cancel()
        fleet.close()
    return fleet.tally


def handshakes(port: int, serials: list[int], first: int, concurrency: int) -> Tally:
    """Client process: full handshakes, `concurrency` at a time; sockets closed after."""
    return uvloop.run(_handshakes(port, serials, first, concurrency))


def uplinks(port: int, serials: list[int], first: int, envelope: str, seconds: float) -> Tally:
    """Client process: closed-loop uplinks of `serials` for `seconds` (DTLS: after handshakes)."""
    return uvloop.run(_uplinks(port, serials, first, envelope, seconds))


# -- the phases ---------------------------------------------------------------------------


@dataclass
class Plan:
    handshakes: int
    concurrency: int
    devices: int
    seconds: float
    warmup: int

    def serials(self) -> tuple[list[int], list[int], list[int]]:
        """(warm-up, phase a, phase b) serial numbers, never shared."""
        warm = list(range(FIRST_SERIAL, FIRST_SERIAL + self.warmup))
        main = list(range(warm[-1] + 1, warm[-1] + 1 + self.handshakes))
        load = list(range(main[-1] + 1, main[-1] + 1 + self.devices))
        return warm, main, load


def echo_baseline(pool: ProcessPoolExecutor, plan: Plan, load: list[int]) -> Tally:
    port = free_port()
    args = [sys.executable, str(ROOT / "bench" / "echo_server.py"), str(port)]
    with subprocess.Popen(args, stdout=subprocess.PIPE, text=True) as echo:
        try:
            assert echo.stdout is not None
            echo.stdout.readline()  # "ready"
            return pool.submit(uplinks, port, load, 0, "plain", plan.seconds).result()
        finally:
            echo.terminate()


@dataclass(frozen=True)
class Memory:
    """The server's settled RSS around phase a, and its log's DTLS outcomes after."""

    before: int
    after: int
    outcomes: dict[str, int]


def phase_a(
    pool: ProcessPoolExecutor, server: Server, plan: Plan, folder: Path
) -> tuple[Tally, Memory]:
    """Warm-up, then phase a: what it did, and what it left in the server."""
    warm, main, _ = plan.serials()
    warmup = pool.submit(handshakes, server.dtls, warm, 0, plan.concurrency).result()
    quiet(server.pid)
    before, cpu = settled_rss(server.pid), cpu_seconds(server.pid)
    tally = pool.submit(handshakes, server.dtls, main, len(warm), plan.concurrency).result()
    cpu = cpu_seconds(server.pid) - cpu
    tally.failed += warmup.failed
    say(
        f"a. full PSK handshakes/s ({tally.done:,} devices, {plan.concurrency} at a time, each "
        f"from its own address): {tally.rate:,.0f}/s  target >= {TARGET_HANDSHAKES:,.0f}/s  "
        f"{verdict(tally.rate >= TARGET_HANDSHAKES)}"
    )
    per_handshake = cpu / max(1, tally.done) * 1e6
    say(
        f"   (server CPU {cpu / tally.elapsed:.0%} of one core, {per_handshake:,.0f} us per "
        f"handshake, its two log records included; client CPU {tally.cpu / tally.elapsed:.0%}; "
        f"{tally.failed} failed, {tally.resent} flights sent again)"
    )
    for error in [*warmup.errors, *tally.errors]:
        say(f"   failed: {error}")
    # The gateway holds a handshake's log records for the session it may open
    # (HOLD_SECONDS); then they are stored and their memory is free again.
    time.sleep(HOLD_SECONDS + 0.5)
    quiet(server.pid)
    after = settled_rss(server.pid)
    return tally, Memory(before, after, log_counts(folder / "nubes.db"))


def phase_c(established: int, memory: Memory) -> None:
    """Memory per association, from the RSS around phase a; the log shows that none ended."""
    before, after, counts = memory.before, memory.after, memory.outcomes
    each = (after - before) / max(1, established)
    say(
        f"c. memory per established association at {established:,}: {each / 1024:,.1f} KB "
        f"(server RSS {before / 2**20:,.1f} -> {after / 2**20:,.1f} MB)  "
        f"target <= {TARGET_BYTES // 1024} KB  {verdict(each <= TARGET_BYTES)}"
    )
    say(
        f"   (the server's log: {counts.get('dtls_established', 0):,} established, "
        f"{counts.get('dtls_closed', 0):,} closed, {counts.get('dtls_failed', 0):,} failed)"
    )


def log_counts(path: Path) -> dict[str, int]:
    """DTLS outcomes in the communication log (read-only, beside the running server)."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as db:
        query = "SELECT outcome, count(*) FROM session_log WHERE outcome LIKE 'dtls%' GROUP BY 1"
        return {str(outcome): int(count) for outcome, count in db.execute(query)}


def phase_b(pool: ProcessPoolExecutor, server: Server, plan: Plan, baseline: Tally) -> int:
    """MAC and DTLS loads in the order MAC, DTLS, DTLS, MAC, half of `seconds` each.

    The server's tables grow during the run and storing gets dearer; the
    symmetric order shares that drift out evenly. A 1-second load of each
    envelope first makes the gateway's device links and caches.
    """
    _, main, load = plan.serials()
    first = plan.warmup + len(main)
    ports = {"raw": server.raw, "dtls": server.dtls}
    for envelope in ("raw", "dtls"):
        server_load(pool, server, ports[envelope], envelope, load, first, 1.0)
    runs: dict[str, list[tuple[Tally, float]]] = {"raw": [], "dtls": []}
    for envelope in ("raw", "dtls", "dtls", "raw"):
        load_run = server_load(
            pool, server, ports[envelope], envelope, load, first, plan.seconds / 2
        )
        runs[envelope].append(load_run)
    mac, mac_us = combined(runs["raw"])
    dtls, dtls_us = combined(runs["dtls"])
    say(f"b. answered FLAP uplinks/s, {plan.devices} devices, one UPLOAD_DATA in flight each:")
    say(f"   plain UDP echo (bench/echo_server.py), same client: {baseline.rate:,.0f}/s")
    say(
        f"   MAC envelope (raw) through nubes serve: {mac.rate:,.0f}/s; server CPU "
        f"{mac_us:,.0f} us per uplink, storage included ({mac.resent} resent, {mac.resets} resets)"
    )
    say(
        f"   DTLS envelope through nubes serve: {dtls.rate:,.0f}/s; server CPU {dtls_us:,.0f} us "
        f"per uplink ({dtls.resent} resent, {dtls.resets} resets)"
    )
    say(
        f"   DTLS: {dtls.rate / max(baseline.rate, 1):.1%} of the UDP echo, "
        f"{dtls.rate / max(mac.rate, 1):.0%} of the MAC envelope, "
        f"{dtls_us - mac_us:+,.0f} us of server CPU per uplink  (no target)"
    )
    return dtls.failed


def combined(runs: list[tuple[Tally, float]]) -> tuple[Tally, float]:
    """One tally of several loads, and their server CPU seconds as us per uplink."""
    total = Tally()
    cpu = 0.0
    for tally, seconds in runs:
        total.done += tally.done
        total.failed += tally.failed
        total.resent += tally.resent
        total.resets += tally.resets
        total.elapsed += tally.elapsed
        cpu += seconds
    return total, cpu / max(1, total.done) * 1e6


def server_load(
    pool: ProcessPoolExecutor,
    server: Server,
    port: int,
    envelope: str,
    serials: list[int],
    first: int,
    seconds: float,
) -> tuple[Tally, float]:
    """A closed-loop load on the server: what it did, and the server's CPU seconds for it.

    The CPU is counted from a quiet server until it is quiet again, so the
    storage of every answered uplink is in it (and, for DTLS, the sessions'
    handshakes: a few percent).
    """
    quiet(server.pid)
    cpu = cpu_seconds(server.pid)
    tally = pool.submit(uplinks, port, serials, first, envelope, seconds).result()
    quiet(server.pid)
    return tally, cpu_seconds(server.pid) - cpu


def quiet(pid: int, patience: float = 20.0) -> None:
    """Waits until the server uses under 10 % of a core (its pipeline has drained)."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        cpu = cpu_seconds(pid)
        time.sleep(0.5)
        if cpu_seconds(pid) - cpu < 0.05:
            return


def main(args: argparse.Namespace) -> int:
    plan = Plan(args.handshakes, args.concurrency, args.devices, args.seconds, args.warmup)
    say(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}")
    warm, main_serials, load = plan.serials()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        uvloop.run(prepare(f"sqlite+aiosqlite:///{folder}/nubes.db", warm + main_serials + load))
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            baseline = echo_baseline(pool, plan, load)
            with nubes_serve(folder) as server:
                tally, memory = phase_a(pool, server, plan, folder)
                failed = tally.failed + phase_b(pool, server, plan, baseline)
                phase_c(tally.done, memory)
    say(f"errors (failed handshakes): {failed}")
    return 1 if failed else 0


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--handshakes", type=int, default=10_000, help="phase a and c")
    parser.add_argument("--concurrency", type=int, default=128, help="handshakes at a time")
    parser.add_argument("--devices", type=int, default=200, help="sessions of phase b")
    parser.add_argument("--seconds", type=float, default=5.0, help="each load of phase b")
    parser.add_argument("--warmup", type=int, default=500, help="handshakes before phase a")
    parser.add_argument("--quick", action="store_true", help="1,000 handshakes, 2 s loads")
    args = parser.parse_args()
    if args.quick:
        args.handshakes, args.devices, args.seconds, args.warmup = 1_000, 50, 2.0, 100
    return args


if __name__ == "__main__":
    sys.exit(main(arguments()))
