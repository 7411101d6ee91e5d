"""DTLS devices behind two gateways: a remap costs a handshake, nothing else.

DTLS associations are not shared between gateways (their keys and record
numbers stay in the process that made them; see docs/deploy.md). A DTLS
device moved to the other gateway has its records dropped there, misses
one answer, and handshakes again, as it does after any server restart or
NAT rebinding; the FLAP link state shared through Redis then lets the
transfer go on where it was: no reset, no message stored twice or lost,
no second FLAP session.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from balancer_kit import BalancerThread
from e2e.test_gateways import _wait_stored
from e2e.test_production import production_env  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

FIRST = 500_000_401
DEVICES = 3
MESSAGES = 6
TOKEN = "00" * 16
PSK = "11" * 16


def test_a_dtls_device_moved_to_the_other_gateway_handshakes_and_goes_on(
    production_env: dict[str, str],  # noqa: F811
    nubes_factory: Any,
) -> None:
    env = {**production_env, "NUBES_GATEWAY_SHARED_STATE": "true"}
    first = nubes_factory(env)
    second = nubes_factory(env)
    first.run("migrate")
    first.start("worker")
    first.start("gateway")
    second.start("gateway")
    for serial in range(FIRST, FIRST + DEVICES):
        first.run("device", "add", "--serial", str(serial), "--claim-token", TOKEN, "--psk", PSK)
    first.run("downlink", "shell", "--serial", str(FIRST + 1), "app state")
    time.sleep(1.0)  # both directories know the devices, their keys and the downlink
    ports = [int(n.env["NUBES_DTLS_PORT"]) for n in (first, second)]
    # A handshake is 3 datagrams from the device; 17 leaves room for it
    # between two moves, and each device still moves a few times.
    balancer = BalancerThread([("127.0.0.1", p) for p in ports], "remap-after", 17)
    try:
        summary = first.json_lines(
            "sim",
            "--dtls",
            "--psk",
            PSK,
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
            "5",
            "--timeout",
            "2",
        )[-1]
    finally:
        balancer.close()
    stats = _wait_stored(production_env["NUBES_DATABASE_URL"], summary["data_acked"])
    counters = balancer.counters
    print(summary, stats, dict(counters))
    assert counters["remaps"] >= DEVICES
    assert summary["data_acked"] == DEVICES * MESSAGES
    assert stats["data"] == stats["data_distinct"] == DEVICES * MESSAGES
    assert summary["resets"] == 0
    assert stats["log"].get("out:reset", 0) == 0
    assert stats["types"]["up:shell"] == 1
    assert stats["downlinks"] == [("delivered", 1)]
    assert summary["sessions"] == DEVICES
