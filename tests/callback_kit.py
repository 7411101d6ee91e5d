"""Helpers for the dispatcher's tests and benchmark: receivers, callbacks, messages.

`Receiver` is a real HTTP/1.1 server on 127.0.0.1 (asyncio, keep-alive),
small enough to script: it answers the statuses queued in `statuses` (then
200), or hangs when `hang` is set, and keeps every request it saw.
`add_callback` and `add_messages` write rows the way the API and the worker
would; `stored_events` makes the worker's `message.stored` body for them.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from nubes.ids import uuid7
from nubes.pipeline.rows import stored_event
from nubes.store import tables as t


@dataclass(slots=True)
class Received:
    method: str
    target: str
    headers: dict[str, str]  # names lowercased
    body: bytes
    at: float = field(default_factory=time.monotonic)


class Receiver:
    """An HTTP endpoint on loopback that records requests and answers as told."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.statuses: deque[int] = deque()
        self.hang = False
        self._release = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._arrived = asyncio.Condition()
        self.url = ""

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self.url

    async def close(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()

    def delivery_ids(self) -> list[str]:
        return [r.headers["x-nubes-delivery"] for r in self.requests]

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)
        return self.requests

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        async with self._arrived:
            self.requests.append(Received(method, target, headers, body))
            self._arrived.notify_all()
        if self.hang:
            await self._release.wait()
            return False
        status = self.statuses.popleft() if self.statuses else 200
        answer = b'{"ok":true}' if status < 300 else b'{"error":"nope"}'
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(answer)}\r\n\r\n".encode()
            + answer
        )
        await writer.drain()
        return True


async def add_callback(
    engine: AsyncEngine,
    group_id: uuid.UUID,
    organization_id: uuid.UUID,
    url: str,
    **fields: Any,
) -> uuid.UUID:
    """A callback row as the API stores it; `fields` override the defaults."""
    now = datetime.now(UTC)
    callback_id = uuid.uuid4()
    row: dict[str, Any] = {
        "id": callback_id,
        "organization_id": organization_id,
        "group_id": group_id,
        "name": "test hook",
        "enabled": True,
        "method": "POST",
        "url": url,
        "query_params": [],
        "headers": [{"name": "Authorization", "value": "Bearer s3cret"}],
        "content_type": "application/json",
        "payload": "",
        "triggers": ["data"],
        "timeout": 5.0,
        "retry_delays": [0.05, 0.05, 0.05],
        "secret": None,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    async with engine.begin() as conn:
        await conn.execute(sa.insert(t.callbacks).values(row | fields))
    return callback_id


async def update_callback(engine: AsyncEngine, callback_id: uuid.UUID, **values: Any) -> None:
    """Changes a callback as the API does: version and updated_at move."""
    c = t.callbacks
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(c)
            .where(c.c.id == callback_id)
            .values(values | {"version": c.c.version + 1, "updated_at": datetime.now(UTC)})
        )


def message_rows(device: Any, count: int, type_name: str = "data") -> list[dict[str, Any]]:
    """Stored-message rows of `device` (worker_kit.Device), decoded data."""
    now = time.time()
    return [
        {
            "id": uuid7(now + index / 1000),
            "created_at": datetime.fromtimestamp(now + index / 1000, UTC),
            "organization_id": device.organization_id,
            "group_id": device.group_id,
            "device_id": device.id,
            "session_id": None,
            "type": type_name,
            "direction": "up",
            "body": {"thermometer": {"temperature": 20.0 + index}, "sequence": index},
            "raw": b"\x01" + index.to_bytes(4, "big"),
            "codec_hash": None,
            "decode_state": "decoded" if type_name == "data" else None,
            "decode_error": None,
            "downlink_id": None,
        }
        for index in range(count)
    ]


async def add_messages(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.insert(t.messages), rows)


def stored_events(rows: list[dict[str, Any]]) -> bytes:
    """The worker's `message.stored` body for these rows."""
    events = [stored_event(row) for row in rows]
    return orjson.dumps({"v": 1, "messages": events}, default=str)


async def deliveries(
    engine: AsyncEngine, callback_id: uuid.UUID | None = None
) -> list[dict[str, Any]]:
    d = t.deliveries
    query = sa.select(d).order_by(d.c.created_at, d.c.message_id)
    if callback_id is not None:
        query = query.where(d.c.callback_id == callback_id)
    async with engine.connect() as conn:
        return [dict(row) for row in (await conn.execute(query)).mappings()]


async def attempts(engine: AsyncEngine, delivery_id: uuid.UUID) -> list[dict[str, Any]]:
    a = t.delivery_attempts
    query = sa.select(a).where(a.c.delivery_id == delivery_id).order_by(a.c.at, a.c.id)
    async with engine.connect() as conn:
        return [dict(row) for row in (await conn.execute(query)).mappings()]


async def callback_row(engine: AsyncEngine, callback_id: uuid.UUID) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = (
            (await conn.execute(sa.select(t.callbacks).where(t.callbacks.c.id == callback_id)))
            .mappings()
            .one()
        )
    return dict(row)


async def wait_until(check: Any, timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Polls the async `check()` until it returns something true; returns that."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting; last value {value!r}")
        await asyncio.sleep(interval)


async def states(engine: AsyncEngine, callback_id: uuid.UUID | None = None) -> list[str]:
    return sorted(row["state"] for row in await deliveries(engine, callback_id))


async def all_in(
    engine: AsyncEngine, callback_id: uuid.UUID | None, state: str, count: int
) -> bool:
    found = await states(engine, callback_id)
    return len(found) == count and all(s == state for s in found)
