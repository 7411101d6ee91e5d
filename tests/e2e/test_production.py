"""The production layout: `nubes gateway` and two `nubes worker` processes
between RabbitMQ, PostgreSQL and Redis of this machine, driven by `nubes sim`.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import aio_pika
import httpx
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


def test_api_processes_stream_what_separate_workers_store(
    production_env: dict[str, str], nubes_factory: Any
) -> None:
    """Two `nubes api` processes each stream a message stored by a separate worker.

    Live messages reach every API process through Redis pub/sub; the
    message list is read through the other process, from PostgreSQL.
    """
    env = {**production_env, "NUBES_SSE_HEARTBEAT_SECONDS": "1"}
    nubes = nubes_factory(env)
    second = nubes_factory(env)  # its own HTTP port
    nubes.run("migrate")
    nubes.start("worker")
    nubes.start("gateway")
    nubes.start("api")
    second.start("api")
    key = nubes.run("apikey", "create", "--scope", "read").strip()
    nubes.run("device", "add", "--serial", "500000101", "--claim-token", "00" * 16)
    headers = {"Authorization": f"Bearer {key}"}

    received: dict[str, list[dict[str, Any]]] = {nubes.api_url: [], second.api_url: []}
    opened = [threading.Event(), threading.Event()]

    def listen(base_url: str, ready: threading.Event) -> None:
        with (
            httpx.Client(base_url=base_url, headers=headers, timeout=30) as client,
            client.stream("GET", "/v1/messages/stream") as response,
        ):
            assert response.status_code == 200
            for line in response.iter_lines():
                ready.set()
                if line.startswith("data: "):
                    message = json.loads(line.removeprefix("data: "))
                    received[base_url].append(message)
                    if message["type"] == "data":
                        return

    threads = [
        threading.Thread(target=listen, args=(url, ready), daemon=True)
        for url, ready in zip(received, opened, strict=True)
    ]
    for thread in threads:
        thread.start()
    for ready in opened:
        assert ready.wait(30), "a stream did not open"

    summary = nubes.json_lines(
        "sim",
        "--serial",
        "500000101",
        "--claim-token",
        "00" * 16,
        "--messages",
        "1",
        "--timeout",
        "5",
    )[-1]
    assert summary["data_acked"] == 1
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive(), "no data message arrived on a stream"
    first, other = (received[url][-1] for url in received)
    assert first == other
    assert first["label"] == "hsn:500000101"
    assert first["decode_state"] == "decoded"
    listed = httpx.get(
        f"{second.api_url}/v1/messages", params={"type": "data"}, headers=headers, timeout=10
    )
    assert listed.status_code == 200
    assert listed.json() == [first]
    assert listed.headers["x-total"] == "1"
