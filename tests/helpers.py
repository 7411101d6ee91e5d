"""Helpers shared by gateway, pipeline and end-to-end tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

from nubes.bootstrap import Runtime, build_adapters
from nubes.config import Settings

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]], accept: Callable[[T], bool], timeout: float = 10.0
) -> T:
    """Polls `probe` until `accept` says yes; fails with the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    value = await probe()
    while not accept(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s; last value: {value!r}")
        await asyncio.sleep(0.05)
        value = await probe()
    return value


class UdpClient(asyncio.DatagramProtocol):
    """A device-side UDP socket for tests: send a datagram, wait for the answer."""

    def __init__(self) -> None:
        self.answers: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.answers.put_nowait(data)

    @classmethod
    async def open(cls, port: int) -> UdpClient:
        loop = asyncio.get_running_loop()
        _, client = await loop.create_datagram_endpoint(cls, remote_addr=("127.0.0.1", port))
        return client

    def send(self, datagram: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(datagram)

    async def exchange(self, datagram: bytes, timeout: float = 2.0) -> bytes | None:
        while not self.answers.empty():
            self.answers.get_nowait()
        self.send(datagram)
        try:
            return await asyncio.wait_for(self.answers.get(), timeout)
        except TimeoutError:
            return None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


@asynccontextmanager
async def embedded_cloud(database_url: str) -> AsyncIterator[Runtime]:
    """`nubes serve` on embedded defaults (gateway, worker, in-process broker, SQLite).

    UDP ports are picked free (see `runtime.ports`); the directory refreshes
    every 0.1 s and batches linger 1 ms, so tests wait little.
    """
    settings = Settings(
        database_url=database_url,
        broker_url="memory://",
        redis_url="memory://",
        bind="127.0.0.1",
        flap_raw_port=0,
        flap_base64_port=0,
        dtls_port=0,
        device_refresh_seconds=0.1,
        publish_linger_ms=1,
    )
    runtime = Runtime(settings, build_adapters(settings))
    await runtime.start(gateway=True, worker=True)
    try:
        yield runtime
    finally:
        await runtime.stop()
