"""Callbacks end to end: a device's data reaches a webhook, transformed.

`nubes serve` (embedded) and the production layout (`nubes gateway`,
`nubes worker`, `nubes dispatcher` over RabbitMQ and PostgreSQL) each get a
callback through the REST API and a receiver in this test; `nubes sim` sends
data, and the receiver must get the JSONata result within seconds.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest

from conftest import scratch_pg_database

pytestmark = pytest.mark.e2e

PAYLOAD = (
    '{"temperature": data.thermometer.temperature, "sequence": data.message.sequence,'
    ' "serial": device.serial_number, "type": type}'
)


class _Hook(BaseHTTPRequestHandler):
    server: _HookServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.received.append((dict(self.headers.items()), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


class _HookServer(ThreadingHTTPServer):
    received: list[tuple[dict[str, str], bytes]]


@pytest.fixture
def hook() -> Iterator[_HookServer]:
    server = _HookServer(("127.0.0.1", 0), _Hook)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _configure(nubes: Any, hook: _HookServer) -> None:
    """An API key, the default group, and a callback through the API."""
    key = nubes.run("apikey", "create", "--scope", "write").strip()
    with httpx.Client(base_url=nubes.api_url, headers={"X-API-Key": key}, timeout=10) as api:
        groups = api.get("/v1/groups")
        assert groups.status_code == 200, groups.text
        (group,) = [g for g in groups.json() if g["name"] == "default"]
        created = api.post(
            f"/v1/groups/{group['id']}/callbacks",
            json={
                "name": "to the test",
                "url": f"http://127.0.0.1:{hook.server_address[1]}/in",
                "headers": [{"name": "Authorization", "value": "Bearer e2e"}],
                "payload": PAYLOAD,
                "retry_delays": [1, 1],
            },
        )
        assert created.status_code == 201, created.text


def _simulate(nubes: Any, serial: str, messages: int) -> dict[str, Any]:
    summary: dict[str, Any] = nubes.json_lines(
        "sim",
        "--serial",
        serial,
        "--add",
        "--messages",
        str(messages),
        "--rate",
        "20",
        "--timeout",
        "5",
        "--poll-interval",
        "0.5",
    )[-1]
    return summary


def _received(hook: _HookServer, count: int, timeout: float = 10) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while len(hook.received) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(hook.received) >= count, hook.received
    bodies = []
    for headers, body in hook.received:
        assert headers["Authorization"] == "Bearer e2e"
        assert headers["User-Agent"].startswith("nubes/")
        assert headers["X-Nubes-Delivery"]
        bodies.append(json.loads(body))
    return bodies


def _check(bodies: list[dict[str, Any]], serial: int, messages: int) -> None:
    assert sorted(b["sequence"] for b in bodies) == list(range(1, messages + 1))
    for body in bodies:
        assert body["serial"] == serial
        assert body["type"] == "data"
        assert isinstance(body["temperature"], float)


def test_serve_delivers_device_data_to_a_callback(
    nubes_factory: Any, tmp_path: Path, hook: _HookServer
) -> None:
    nubes = nubes_factory(
        {
            "NUBES_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/var/nubes.db",
            "NUBES_CALLBACK_ALLOW_PRIVATE": "true",
        }
    )
    nubes.start("serve")
    _configure(nubes, hook)
    time.sleep(1.5)  # the dispatcher's callback book refreshes every second
    summary = _simulate(nubes, "700000001", 3)
    assert summary["data_acked"] == 3
    _check(_received(hook, 3), 700000001, 3)
    time.sleep(0.5)
    assert len(hook.received) == 3
    assert "dispatcher=True" in nubes.logs()


@pytest.fixture
def production_env(amqp_url: str, redis_url: str, unique_prefix: str) -> Iterator[dict[str, str]]:
    with scratch_pg_database("e2e") as database_url:
        yield {
            "NUBES_DATABASE_URL": database_url,
            "NUBES_BROKER_URL": amqp_url,
            "NUBES_REDIS_URL": redis_url,
            "NUBES_BROKER_PREFIX": unique_prefix,
            "NUBES_CACHE_PREFIX": unique_prefix,
            "NUBES_CALLBACK_ALLOW_PRIVATE": "true",
        }
        asyncio.run(_drop_topology(amqp_url, unique_prefix))


async def _drop_topology(url: str, prefix: str) -> None:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        for queue in ("store", "callbacks"):
            await channel.queue_delete(f"{prefix}.{queue}")
        await channel.exchange_delete(prefix)


@pytest.mark.integration
def test_the_dispatcher_as_its_own_process(
    production_env: dict[str, str], nubes_factory: Any, hook: _HookServer
) -> None:
    nubes = nubes_factory(production_env)
    nubes.run("migrate")
    nubes.start("api")
    _configure(nubes, hook)
    nubes.start("dispatcher")
    nubes.start("worker")
    nubes.start("gateway")
    summary = _simulate(nubes, "700000101", 4)
    assert summary["data_acked"] == 4
    _check(_received(hook, 4), 700000101, 4)
