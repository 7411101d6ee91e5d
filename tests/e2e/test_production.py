"""The production layout: `nubes gateway` and two `nubes worker` processes
between RabbitMQ, PostgreSQL and Redis of this machine, driven by `nubes sim`.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import aio_pika
import httpx
import pytest

from conftest import scratch_pg_database
from e2e.conftest import free_tcp_port
from metrics_kit import total, value

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


def _scrape(instance: Any) -> str:
    answer = httpx.get(f"http://127.0.0.1:{instance.env['NUBES_OPS_PORT']}/metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    return answer.text


def _check_metrics(processes: dict[str, Any]) -> None:
    """Every process's /metrics, after 2 devices sent 3 data messages each."""
    scraped = {name: _scrape(instance) for name, instance in processes.items()}
    for name, text in scraped.items():
        process = name.split("-")[0]
        assert total(text, "nubes_build_info", process=process) == 1, name
        assert total(text, "process_resident_memory_bytes") > 0, name
    gateway = scraped["gateway"]
    assert total(gateway, "nubes_gateway_packets_total", direction="in", outcome="accepted") >= 8
    assert value(gateway, "nubes_gateway_messages_total", type="data") == 6
    assert value(gateway, "nubes_gateway_sessions_started_total") == 2
    assert value(gateway, "nubes_gateway_devices_in_memory") == 2
    assert total(gateway, "nubes_gateway_datagrams_received_total") >= 8
    workers = [scraped["worker"], scraped["worker-2"]]
    stored = "nubes_worker_messages_stored_total"
    assert sum(total(text, stored, type="data", direction="up") for text in workers) == 6
    assert sum(total(text, "nubes_worker_pipeline_lag_seconds_count") for text in workers) >= 6
    dispatcher = scraped["dispatcher"]
    assert total(dispatcher, "nubes_dispatcher_attempts_total", outcome="success") == 6
    assert total(dispatcher, "nubes_dispatcher_attempt_duration_seconds_count") == 6
    assert value(dispatcher, "nubes_dispatcher_callbacks_paused") == 0
    api = scraped["api"]
    requests = "nubes_api_requests_total"
    assert value(api, requests, method="GET", route="/v1/groups", status="2xx") == 1
    route = "/v1/groups/{group_id}/callbacks"
    assert value(api, requests, method="POST", route=route, status="2xx") == 1
    assert total(api, "nubes_api_request_duration_seconds_count") >= 3
    assert "nubes_gateway" not in api
    assert "nubes_api" not in gateway


class _Receiver(http.server.BaseHTTPRequestHandler):
    """A customer's webhook endpoint: records each JSON body it is sent."""

    bodies: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


def _get_json(url: str) -> tuple[int, dict[str, Any]]:
    answer = httpx.get(url, timeout=10)
    return answer.status_code, answer.json()


def test_every_process_type_as_its_own_process(
    production_env: dict[str, str], nubes_factory: Any
) -> None:
    """The compose.yaml layout without containers: api, gateway, two workers and
    a dispatcher, each its own process with its own ops port, in production mode
    with JSON logs, on this machine's PostgreSQL, RabbitMQ and Redis.

    `nubes sim` goes through the gateway; the workers store; the dispatcher
    delivers the transformed payload to a webhook; every process is ready.
    """
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.bodies = []
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    env = {
        **production_env,
        "NUBES_LOG_FORMAT": "json",
        "NUBES_CALLBACK_ALLOW_PRIVATE": "true",
    }
    processes = {
        name: nubes_factory({**env, "NUBES_OPS_PORT": str(free_tcp_port())})
        for name in ("api", "gateway", "worker", "worker-2", "dispatcher")
    }
    api, gateway = processes["api"], processes["gateway"]
    api.run("migrate")
    for name, instance in processes.items():
        instance.start(name.split("-")[0])
    key = api.run("apikey", "create", "--scope", "write").strip()
    client = httpx.Client(
        base_url=api.api_url, headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    group = client.get("/v1/groups").json()[0]
    created = client.post(
        f"/v1/groups/{group['id']}/callbacks",
        json={
            "name": "webhook",
            "url": f"http://127.0.0.1:{receiver.server_port}/hook",
            "payload": '{"serial": device.serial_number, "label": label, "kind": type}',
        },
    )
    assert created.status_code == 201, created.text

    summary = gateway.json_lines(
        "sim", "--serial", "500000201", "--devices", "2", "--add", "--messages", "3"
    )[-1]
    assert summary["data_acked"] == 6

    deadline = time.monotonic() + 30
    while len(_Receiver.bodies) < 6 and time.monotonic() < deadline:
        time.sleep(0.2)
    receiver.shutdown()
    assert sorted(body["serial"] for body in _Receiver.bodies) == [500000201] * 3 + [500000202] * 3
    assert all(body["label"] == f"hsn:{body['serial']}" for body in _Receiver.bodies)
    assert {body["kind"] for body in _Receiver.bodies} == {"data"}
    stored = client.get("/v1/messages", params={"type": "data"}).json()
    assert len(stored) == 6

    for name, instance in processes.items():
        status, body = _get_json(f"http://127.0.0.1:{instance.env['NUBES_OPS_PORT']}/ready")
        assert status == 200, (name, body)
        assert body["process"] == name.split("-")[0]
        assert body["checks"]["database"] == "ok"
    _check_metrics(processes)
    logs = [line for line in api.logs().splitlines() if line.strip()]
    entries = [json.loads(line) for line in logs]  # every line is one JSON object
    assert any("running" in entry["message"] for entry in entries)
    assert not any(key in line for line in logs)  # the API key printed by the CLI is not logged
    probe = json.loads(processes["dispatcher"].run("healthcheck", "--ready"))
    assert probe["process"] == "dispatcher"
    assert probe["status"] == "ready"
    processes["dispatcher"].stop_all()
    with pytest.raises(AssertionError, match="Connection refused"):
        processes["dispatcher"].run("healthcheck", "--ready")
