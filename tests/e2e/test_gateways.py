"""Two `nubes gateway` processes behind a UDP balancer (tests/balancer_kit.py).

Two gateways, two workers, the real PostgreSQL, RabbitMQ and Redis; `nubes
sim` talks to the balancer, which moves the simulated devices (they share
one socket, so one client address) from one gateway to the other every few
datagrams: a NAT rebinding in the middle of a session, many times over.
Every message must be stored exactly once, the remaps must cause no reset,
and a shell downlink must reach the device, and be answered, exactly once.
The same holds for DTLS devices (a socket each), at the price of a
handshake per remap.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa

from balancer_kit import BalancerThread
from e2e.test_production import production_env  # noqa: F401  (a fixture)
from nubes.store import tables as t
from nubes.store.database import Database

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

FIRST = 500_000_301
DEVICES = 4
MESSAGES = 10
TOKEN = "00" * 16
PSK = "11" * 16


async def _stats(url: str) -> dict[str, Any]:
    database = Database(url)
    try:
        async with database.engine.connect() as conn:
            m, log, d = t.messages, t.session_log, t.downlinks
            rows = (await conn.execute(sa.select(m.c.type, m.c.direction, m.c.raw))).all()
            outcomes = (
                await conn.execute(
                    sa.select(log.c.direction, log.c.outcome, sa.func.count()).group_by(
                        log.c.direction, log.c.outcome
                    )
                )
            ).all()
            states = (await conn.execute(sa.select(d.c.state, d.c.attempts))).all()
    finally:
        await database.dispose()
    data = [r.raw for r in rows if r.type == "data"]
    return {
        "data": len(data),
        "data_distinct": len(set(data)),
        "types": Counter(f"{r.direction}:{r.type}" for r in rows),
        "log": {f"{o.direction}:{o.outcome}": o[2] for o in outcomes},
        "downlinks": [(s.state, s.attempts) for s in states],
    }


def _wait_stored(url: str, expected: int, patience: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + patience
    while True:
        stats = asyncio.run(_stats(url))
        settled = stats["data"] >= expected and stats["types"]["up:shell"] >= 1
        if settled or time.monotonic() > deadline:
            time.sleep(1.0)  # late duplicates would show now
            return asyncio.run(_stats(url))
        time.sleep(0.5)


def _run(
    production_env: dict[str, str],  # noqa: F811
    nubes_factory: Any,
    mode: str,
    every: int,
    *,
    dtls: bool = False,
) -> Any:
    env = {**production_env, "NUBES_GATEWAY_SHARED_STATE": "true"}
    first = nubes_factory(env)
    second = nubes_factory(env)
    first.run("migrate")
    first.start("worker")
    second.start("worker")
    first.start("gateway")
    second.start("gateway")
    keys = ["--psk", PSK] if dtls else []
    for serial in range(FIRST, FIRST + DEVICES):
        first.run("device", "add", "--serial", str(serial), "--claim-token", TOKEN, *keys)
    first.run("downlink", "shell", "--serial", str(FIRST + 1), "app state")
    time.sleep(1.0)  # both directories know the devices, their keys and the downlink
    port = "NUBES_DTLS_PORT" if dtls else "NUBES_FLAP_BASE64_PORT"
    ports = [int(n.env[port]) for n in (first, second)]
    balancer = BalancerThread([("127.0.0.1", p) for p in ports], mode, every)
    try:
        summary = first.json_lines(
            "sim",
            *(["--dtls", *keys] if dtls else []),
            "--port",
            str(balancer.port),
            "--serial",
            str(FIRST),
            "--claim-token",
            TOKEN,
            "--devices",
            str(DEVICES),
            "--messages",
            str(MESSAGES),
            "--rate",
            "20",
            "--timeout",
            "2",
        )[-1]
    finally:
        balancer.close()
    stats = _wait_stored(production_env["NUBES_DATABASE_URL"], summary["data_acked"])
    return summary, stats, balancer.counters


@pytest.mark.parametrize(("mode", "every"), [("remap-after", 13)])
def test_remaps_between_two_gateways_lose_and_repeat_nothing(
    production_env: dict[str, str],  # noqa: F811
    nubes_factory: Any,
    mode: str,
    every: int,
) -> None:
    summary, stats, counters = _run(production_env, nubes_factory, mode, every)
    print(mode, summary, stats, dict(counters))
    assert counters["remaps"] >= 5
    assert summary["data_acked"] == DEVICES * MESSAGES
    assert stats["data"] == stats["data_distinct"] == DEVICES * MESSAGES
    assert summary["resets"] == 0
    assert stats["log"].get("out:reset", 0) == 0
    assert stats["types"]["down:shell"] == 1
    assert stats["types"]["up:shell"] == 1
    assert stats["downlinks"] == [("delivered", 1)]
    assert summary["sessions"] == DEVICES


def test_a_dtls_device_moved_to_the_other_gateway_handshakes_and_goes_on(
    production_env: dict[str, str],  # noqa: F811
    nubes_factory: Any,
) -> None:
    """DTLS associations are not shared (their keys and record numbers stay in
    the gateway that made them; docs/deploy.md). A moved DTLS device has its
    records dropped by the other gateway, misses one answer and handshakes
    again, as after a gateway restart or a NAT rebinding; the shared link
    state then lets its transfer go on: no reset, nothing lost or repeated,
    no second session. A handshake is 3 datagrams from the device; moving
    every 17 leaves it room."""
    summary, stats, counters = _run(production_env, nubes_factory, "remap-after", 17, dtls=True)
    print(summary, stats, dict(counters))
    assert counters["remaps"] >= DEVICES
    assert summary["handshakes"] >= DEVICES + 1
    assert summary["data_acked"] == DEVICES * MESSAGES
    assert stats["data"] == stats["data_distinct"] == DEVICES * MESSAGES
    assert summary["resets"] == 0
    assert stats["log"].get("out:reset", 0) == 0
    assert stats["types"]["up:shell"] == 1
    assert stats["downlinks"] == [("delivered", 1)]
    assert summary["sessions"] == DEVICES
