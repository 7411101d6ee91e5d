"""The production layout: `nubes gateway` and two `nubes worker` processes
between RabbitMQ, PostgreSQL and Redis of this machine, driven by `nubes sim`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import aio_pika
import pytest

from conftest import scratch_pg_database

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.fixture
def production_env(amqp_url: str, redis_url: str, unique_prefix: str) -> Iterator[dict[str, str]]:
    with scratch_pg_database("e2e") as database_url:
        yield {
            "NUBES_DATABASE_URL": database_url,
            "NUBES_BROKER_URL": amqp_url,
            "NUBES_REDIS_URL": redis_url,
            "NUBES_BROKER_PREFIX": unique_prefix,
            "NUBES_CACHE_PREFIX": unique_prefix,
        }
        asyncio.run(_drop_topology(amqp_url, unique_prefix))


async def _drop_topology(url: str, prefix: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(f"{prefix}.store")
        await channel.exchange_delete(prefix)


def test_gateway_and_workers_as_separate_processes(
    production_env: dict[str, str], nubes_factory: Any
) -> None:
    # production_env first: torn down last, once the processes are stopped
    # (a running worker would declare its queue again after the clean-up).
    nubes = nubes_factory(production_env)
    nubes.run("migrate")
    nubes.start("worker")
    nubes.start("worker")
    nubes.start("gateway")
    summary = nubes.json_lines(
        "sim",
        "--serial",
        "500000001",
        "--devices",
        "5",
        "--add",
        "--messages",
        "4",
        "--rate",
        "50",
        "--timeout",
        "5",
    )[-1]
    assert summary["data_acked"] == 20
    raw = nubes.json_lines(
        "sim",
        "--raw",
        "--port",
        nubes.env["NUBES_FLAP_RAW_PORT"],
        "--serial",
        "500000001",
        "--messages",
        "1",
        "--timeout",
        "5",
    )[-1]
    assert raw["data_acked"] == 1

    deadline = time.monotonic() + 30
    while True:
        counts = [
            len(nubes.json_lines("messages", "--serial", str(500000001 + i), "--type", "data"))
            for i in range(5)
        ]
        if counts == [5, 4, 4, 4, 4] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert counts == [5, 4, 4, 4, 4]
    message = nubes.json_lines("messages", "--serial", "500000002", "--limit", "1")[0]
    assert message["decode_state"] == "decoded"
    sessions = nubes.json_lines("sessions", "--serial", "500000001")
    assert [s["envelope"] for s in sessions] == ["raw", "base64"]
    assert sessions[0]["id"] != sessions[1]["id"]

    nubes.run("downlink", "config", "--serial", "500000003", "app config interval-sample 5")
    shown = nubes.json_lines("downlink", "list", "--serial", "500000003")
    assert shown[0]["state"] == "pending"
