"""The live stream (SSE) of routers/live.py, over a real HTTP connection.

httpx's ASGI transport answers only once the app has finished, which an
endless stream never does, so these tests serve the same app (same context,
same `MemoryLive`) with uvicorn on a free port and read it with httpx
streaming. Publishing on `api.ctx.live` plays the worker, after the rows are
inserted as the worker would have committed them.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
import sqlalchemy as sa
import uvicorn

from api_kit import Api, add_test_device, insert_messages, running_api
from helpers import eventually
from nubes.api.app import create_app
from nubes.ids import uuid7
from nubes.pipeline.live import SUBSCRIBER_QUEUE, MemoryLive
from nubes.store import tables as t
from nubes.store.database import Database

pytestmark = pytest.mark.integration

STREAM = "/v1/messages/stream"
WAIT = 5.0


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@asynccontextmanager
async def served(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    config = uvicorn.Config(
        _app_of(api),
        host="127.0.0.1",
        port=0,
        loop="none",
        lifespan="off",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(), name="test-api")
    await eventually(lambda: _started(server, task), bool, WAIT)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=WAIT) as client:
            yield client
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def _app_of(api: Api) -> Any:
    """The app behind `api.client` (FastAPI builds its routes on first use: ~1 s)."""
    transport = api.client._transport
    return transport.app if isinstance(transport, httpx.ASGITransport) else create_app(api.ctx)


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> bool:
    if task.done():
        task.result()
    return server.started


class Events:
    """Reads a text/event-stream: events as dicts, comments as {"comment": text}."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = WAIT) -> dict[str, str]:
        async with asyncio.timeout(timeout):
            fields: dict[str, str] = {}
            async for line in self._lines:
                if line.startswith(":"):
                    return {"comment": line[1:].strip()}
                if line:
                    name, _, value = line.partition(":")
                    fields[name] = fields.get(name, "") + value.removeprefix(" ")
                elif fields:
                    return fields
            raise EOFError("the stream ended")

    async def message(self, timeout: float = WAIT) -> dict[str, Any]:
        """The next `message` event's data (with its `id:`), skipping pings."""
        while True:
            event = await self.next(timeout)
            if event.get("event") == "message":
                data: dict[str, Any] = orjson.loads(event["data"])
                assert event["id"] == data["id"]
                return data
            assert "comment" in event, event

    async def nothing(self, seconds: float = 0.3) -> None:
        """Asserts that no message event comes within `seconds`."""
        with contextlib.suppress(TimeoutError):
            event = await self.next(seconds)
            assert "comment" in event, f"unexpected event {event}"


@asynccontextmanager
async def stream(
    client: httpx.AsyncClient, headers: dict[str, str], **params: Any
) -> AsyncIterator[Events]:
    async with client.stream("GET", STREAM, headers=headers, params=params) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        events = Events(response)
        # The first block (`retry:`) comes once the stream is subscribed.
        assert await events.next() == {"retry": "2000"}
        yield events


def _batch(rows: list[dict[str, Any]]) -> bytes:
    """What a worker publishes for stored rows (`pipeline.rows.stored_event`)."""
    keys = ("id", "created_at", "organization_id", "group_id", "device_id", "session_id")
    keys += ("type", "direction", "body", "codec_hash")
    events = [{key: row[key] for key in keys} for row in rows]
    return orjson.dumps({"v": 1, "messages": events}, default=str)


async def _rows(api: Api, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    m = t.messages
    query = sa.select(m).where(m.c.id.in_(ids)).order_by(m.c.created_at, m.c.id)
    async with api.engine.connect() as conn:
        return [dict(row) for row in (await conn.execute(query)).mappings()]


async def _publish(api: Api, ids: list[uuid.UUID]) -> None:
    await api.ctx.live.publish(_batch(await _rows(api, ids)))


def _subscribers(api: Api) -> int:
    live = api.ctx.live
    assert isinstance(live, MemoryLive)
    return live._fanout.subscribers


async def test_a_stored_message_arrives_in_the_shape_of_the_rest_api(api: Api) -> None:
    device = await add_test_device(api.engine, api.a, 4001)
    other = await add_test_device(api.engine, api.a, 4002)
    headers = api.a.headers("read")
    async with served(api) as client, stream(client, headers, device_id=device["id"]) as events:
        [mine] = await insert_messages(api.engine, device, 1, body={"temperature": 21.5})
        [theirs] = await insert_messages(api.engine, other, 1)
        await _publish(api, [theirs, mine])
        data = await events.message()
        assert data["id"] == str(mine)
        assert data["data"] == {"temperature": 21.5}
        assert data["label"] == "hsn:4001"
        assert data["raw"] == "AA=="
        shown = await client.get(f"/v1/messages/{mine}", headers=headers)
        assert shown.status_code == 200
        assert data == shown.json()
        await events.nothing()


async def test_scopes_and_tenants(api: Api) -> None:
    a1 = await add_test_device(api.engine, api.a, 4011)
    b1 = await add_test_device(api.engine, api.b, 4012)
    headers = api.a.headers("read")
    async with served(api) as client:
        async with (
            stream(client, headers) as everything,
            stream(client, headers, group_id=api.a.group_id) as group,
            stream(client, headers, organization_id=api.a.organization_id) as organization,
        ):
            [theirs] = await insert_messages(api.engine, b1, 1)
            [mine] = await insert_messages(api.engine, a1, 1)
            await _publish(api, [theirs, mine])
            for events in (everything, group, organization):
                assert (await events.message())["id"] == str(mine)
        for params in (
            {"device_id": b1["id"]},
            {"group_id": api.b.group_id},
            {"organization_id": api.b.organization_id},
            {"device_id": uuid.uuid4()},
        ):
            response = await client.get(STREAM, headers=headers, params=params)
            assert response.status_code == 404, params
            assert response.json()["error"]["code"] == "not_found"
        both = await client.get(
            STREAM, headers=headers, params={"device_id": a1["id"], "group_id": api.a.group_id}
        )
        assert both.status_code == 400
        assert (await client.get(STREAM)).status_code == 401
        assert (await client.get(STREAM, params={"access_token": "nbk_wrong"})).status_code == 401


async def test_access_token_in_the_query_for_eventsource(api: Api) -> None:
    device = await add_test_device(api.engine, api.a, 4021)
    async with (
        served(api) as client,
        stream(client, {}, access_token=api.a.keys["read"], device_id=device["id"]) as events,
    ):
        ids = await insert_messages(api.engine, device, 1)
        await _publish(api, ids)
        assert (await events.message())["id"] == str(ids[0])
    # Only this route reads the query: elsewhere a token in the URL is no credential.
    elsewhere = await api.client.get(
        f"/v1/devices/{device['id']}/sessions", params={"access_token": api.a.keys["read"]}
    )
    assert elsewhere.status_code == 401


async def test_last_event_id_replays_then_goes_live_without_repeats(api: Api) -> None:
    device = await add_test_device(api.engine, api.a, 4031)
    ids = await insert_messages(api.engine, device, 4)
    headers = {**api.a.headers("read"), "Last-Event-ID": str(ids[0])}
    async with served(api) as client, stream(client, headers, device_id=device["id"]) as events:
        assert [(await events.message())["id"] for _ in range(3)] == [str(i) for i in ids[1:]]
        [fresh] = await insert_messages(api.engine, device, 1, start=datetime.now(UTC))
        # A re-announced batch: the replayed ids come again, only the new one is sent.
        await _publish(api, [*ids[2:], fresh])
        assert (await events.message())["id"] == str(fresh)
        await _publish(api, [fresh])
        await events.nothing()
    async with (
        served(api) as client,
        stream(client, api.a.headers("read"), last_event_id=ids[2]) as events,
    ):
        assert [(await events.message())["id"] for _ in range(2)] == [str(ids[3]), str(fresh)]


async def test_resuming_after_an_unknown_message_uses_the_time_in_its_id(api: Api) -> None:
    device = await add_test_device(api.engine, api.a, 4041)
    start = datetime.now(UTC) - timedelta(minutes=10)
    ids = await insert_messages(api.engine, device, 3, start=start, step=timedelta(minutes=2))
    gone = uuid7((start + timedelta(minutes=3)).timestamp())
    headers = api.a.headers("read")
    async with served(api) as client:
        async with stream(client, {**headers, "Last-Event-ID": str(gone)}) as events:
            assert (await events.message())["id"] == str(ids[2])
        for bad in ("not-an-id", str(uuid.uuid4())):
            response = await client.get(STREAM, headers={**headers, "Last-Event-ID": bad})
            assert response.status_code in (400, 404), bad
            assert "error" in response.json()


async def test_idle_streams_get_heartbeats(migrated_db: Database) -> None:
    async with (
        running_api(migrated_db.engine, sse_heartbeat_seconds=0.05) as api,
        served(api) as client,
        stream(client, api.a.headers("read")) as events,
    ):
        assert await events.next(1.0) == {"comment": "ping"}
        assert await events.next(1.0) == {"comment": "ping"}


async def test_a_stream_that_falls_behind_is_told_to_resync_and_ends(api: Api) -> None:
    async with served(api) as client, stream(client, api.a.headers("read")) as events:
        body = _batch([])
        for _ in range(SUBSCRIBER_QUEUE + 1):
            await api.ctx.live.publish(body)  # no await inside: the stream cannot read
        event = await events.next()
        assert event["event"] == "resync"
        assert "id" not in event  # the client keeps its Last-Event-ID
        assert orjson.loads(event["data"]) == {"reason": "overflow"}
        with pytest.raises(EOFError):
            await events.next()
    await eventually(lambda: _count(api), lambda n: n == 0, WAIT)


async def test_a_closed_client_ends_its_stream_and_subscription(api: Api) -> None:
    async with served(api) as client:
        async with stream(client, api.a.headers("read")):
            assert _subscribers(api) == 1
        await eventually(lambda: _count(api), lambda n: n == 0, WAIT)


async def test_a_malformed_batch_is_dropped(api: Api) -> None:
    device = await add_test_device(api.engine, api.a, 4051)
    async with served(api) as client, stream(client, api.a.headers("read")) as events:
        for junk in (b"not json", b"[]", b'{"v": 2, "messages": []}', b'{"v": 1}'):
            await api.ctx.live.publish(junk)
        ids = await insert_messages(api.engine, device, 1)
        await _publish(api, ids)
        assert (await events.message())["id"] == str(ids[0])


async def _count(api: Api) -> int:
    return _subscribers(api)
