"""The operations port over real TCP: probes, metrics, failing checks, bad requests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from metrics_kit import samples, value
from nubes import __version__
from nubes.errors import BrokerError
from nubes.metrics import exposition, registry
from nubes.ops import OpsServer


async def _ok() -> None:
    return None


async def _down() -> None:
    raise BrokerError("not connected to RabbitMQ")


async def _hangs() -> None:
    await asyncio.sleep(60)


async def _exchange(port: int, raw: bytes) -> tuple[int, bytes, bytes]:
    """(status, head, body) of one request."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"Content-Length: %d" % len(body) in head
    return int(head.split(b" ", 2)[1]), head, body


async def _request(port: int, raw: bytes) -> tuple[int, dict[str, Any]]:
    status, head, body = await _exchange(port, raw)
    assert b"Content-Type: application/json" in head
    return status, json.loads(body)


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


@pytest.fixture
async def serving() -> AsyncIterator[Callable[..., Any]]:
    servers: list[OpsServer] = []

    async def start(**checks: Any) -> int:
        server = OpsServer("worker", checks)
        await server.start("127.0.0.1", 0)
        servers.append(server)
        assert server.port is not None
        return server.port

    yield start
    for server in servers:
        await server.close()


async def test_health_answers_while_the_loop_turns(serving: Callable[..., Any]) -> None:
    port = await serving(database=_down)
    status, body = await _request(port, _get("/health"))
    assert status == 200
    assert body["status"] == "ok"
    assert body["process"] == "worker"


async def test_ready_when_every_check_passes(serving: Callable[..., Any]) -> None:
    port = await serving(database=_ok, broker=_ok)
    status, body = await _request(port, _get("/ready?verbose=1"))
    assert status == 200
    assert body == {
        "status": "ready",
        "process": "worker",
        "checks": {"database": "ok", "broker": "ok"},
    }


async def test_not_ready_names_what_failed(serving: Callable[..., Any]) -> None:
    port = await serving(database=_ok, broker=_down)
    status, body = await _request(port, _get("/ready"))
    assert status == 503
    assert body["status"] == "not_ready"
    assert body["checks"] == {"database": "ok", "broker": "not connected to RabbitMQ"}


async def test_a_hanging_dependency_is_reported_not_waited_for(
    serving: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("nubes.ops.CHECK_TIMEOUT", 0.2)
    port = await serving(cache=_hangs)
    status, body = await asyncio.wait_for(_request(port, _get("/ready")), 5)
    assert status == 503
    assert body["checks"]["cache"].startswith("no answer within 0.2 s")


async def test_metrics_in_the_prometheus_text_format() -> None:
    own = registry("worker")
    server = OpsServer("worker", {"database": _ok}, lambda: exposition(own))
    await server.start("127.0.0.1", 0)
    try:
        assert server.port is not None
        status, head, body = await _exchange(server.port, _get("/metrics"))
    finally:
        await server.close()
    assert status == 200
    assert b"Content-Type: text/plain; version=0.0.4; charset=utf-8" in head
    assert value(body, "nubes_build_info", version=__version__, process="worker") == 1
    assert ("process_cpu_seconds_total", frozenset()) in samples(body)


async def test_metrics_without_a_registry_still_tell_the_build(
    serving: Callable[..., Any],
) -> None:
    port = await serving(database=_ok)
    status, _, body = await _exchange(port, _get("/metrics?x=1"))
    assert status == 200
    assert value(body, "nubes_build_info", version=__version__, process="worker") == 1


async def test_an_unknown_path_lists_the_paths(serving: Callable[..., Any]) -> None:
    port = await serving(database=_ok)
    status, body = await _request(port, _get("/nowhere"))
    assert status == 404
    assert body["paths"] == ["/health", "/ready", "/metrics"]


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (_get("/metrics/../secrets"), 404),
        (b"POST /ready HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
        (b"DELETE /metrics HTTP/1.1\r\n\r\n", 405),
        (b"\x00\xff garbage\r\n\r\n", 404),
        (b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\n\r\n", 400),
    ],
)
async def test_bad_requests_get_an_answer_and_the_server_stays_up(
    serving: Callable[..., Any], raw: bytes, status: int
) -> None:
    port = await serving(database=_ok)
    assert (await _request(port, raw))[0] == status
    assert (await _request(port, _get("/health")))[0] == 200


async def test_a_client_that_never_finishes_its_request_is_dropped(
    serving: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("nubes.ops.READ_TIMEOUT", 0.2)
    port = await serving(database=_ok)
    status, _ = await asyncio.wait_for(_request(port, b"GET /health HTTP/1.1\r\n"), 5)
    assert status == 400
