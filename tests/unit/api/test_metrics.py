"""The API's request metrics: route templates, status classes, streams."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from prometheus_client.registry import CollectorRegistry

from metrics_kit import samples, value
from nubes import metrics
from nubes.api.app import create_app
from nubes.api.context import ApiContext
from nubes.api.metrics import HttpStats, RequestMetrics, families
from nubes.config import Settings
from nubes.pipeline.cache import MemoryCache
from nubes.pipeline.live import MemoryLive
from nubes.store.database import Database


def _scrape(stats: HttpStats) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics.Families(lambda: families(stats)))
    return metrics.exposition(registry)


def _app(stats: HttpStats, seen_open: list[int]) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/devices/{device_id}")
    async def device(device_id: int) -> dict[str, int]:
        return {"id": device_id}

    @app.post("/v1/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    @app.get("/v1/stream")
    async def stream() -> StreamingResponse:
        async def events() -> AsyncIterator[bytes]:
            seen_open.append(stats.streams_open)
            yield b"data: 1\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    app.add_middleware(RequestMetrics, stats=stats)
    return app


@pytest.fixture
def stats() -> HttpStats:
    return HttpStats()


async def test_requests_count_by_route_template_never_the_raw_path(stats: HttpStats) -> None:
    seen_open: list[int] = []
    transport = httpx.ASGITransport(app=_app(stats, seen_open), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for device_id in (1, 2, 3):
            assert (await client.get(f"/v1/devices/{device_id}")).status_code == 200
        assert (await client.get("/v1/devices/not-a-number")).status_code == 422
        assert (await client.get("/nowhere/42")).status_code == 404
        assert (await client.request("BREW", "/v1/devices/1")).status_code == 405
        assert (await client.post("/v1/boom")).status_code == 500
    text = _scrape(stats)
    requests = "nubes_api_requests_total"
    route = "/v1/devices/{device_id}"
    assert value(text, requests, method="GET", route=route, status="2xx") == 3
    assert value(text, requests, method="GET", route=route, status="4xx") == 1
    assert value(text, requests, method="GET", route="<none>", status="4xx") == 1
    assert value(text, requests, method="OTHER", route=route, status="4xx") == 1
    assert value(text, requests, method="POST", route="/v1/boom", status="5xx") == 1
    latency = "nubes_api_request_duration_seconds"
    assert value(text, f"{latency}_count", method="GET", route=route) == 4
    assert not any("42" in dict(labels).get("route", "") for _, labels in samples(text))


async def test_event_streams_are_gauged_not_timed(stats: HttpStats) -> None:
    seen_open: list[int] = []
    transport = httpx.ASGITransport(app=_app(stats, seen_open))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.get("/v1/stream")
    assert answer.text == "data: 1\n\n"
    assert seen_open == [1]
    text = _scrape(stats)
    assert value(text, "nubes_api_streams_open") == 0
    assert value(text, "nubes_api_requests_total", method="GET", route="/v1/stream", status="2xx")
    assert value(text, "nubes_api_request_duration_seconds_count", route="/v1/stream") is None


async def test_the_app_counts_through_its_whole_middleware_stack(
    migrated_sqlite: Database,
) -> None:
    stats = HttpStats()
    ctx = ApiContext(Settings(), migrated_sqlite.engine, MemoryCache(), MemoryLive())
    transport = httpx.ASGITransport(app=create_app(ctx, stats))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/health")).status_code == 200
        assert (await client.get(f"/v1/devices/{uuid.uuid4()}")).status_code == 401
        big = await client.post("/v1/auth/login", content=b"x" * (2 * 1024 * 1024))
        assert big.status_code == 413
    text = _scrape(stats)
    requests = "nubes_api_requests_total"
    assert value(text, requests, method="GET", route="/health", status="2xx") == 1
    assert value(text, requests, method="GET", route="/v1/devices/{device_id}", status="4xx") == 1
    # Refused by the body limit before routing: no route is known then.
    assert value(text, requests, method="POST", route="<none>", status="4xx") == 1
