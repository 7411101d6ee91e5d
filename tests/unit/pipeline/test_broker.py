"""The in-process broker: publish returns once every bound queue handled the body."""

from __future__ import annotations

import asyncio

import pytest

from nubes.errors import BrokerError
from nubes.pipeline.broker import MemoryBroker


async def test_publish_returns_after_the_consumer_handled_it() -> None:
    broker = MemoryBroker()
    handled: list[bytes] = []

    async def handler(body: bytes) -> None:
        await asyncio.sleep(0.01)
        handled.append(body)

    await broker.consume("uplink", "store", handler, prefetch=1)
    await broker.publish("uplink", b"one")
    assert handled == [b"one"]
    await broker.close()


async def test_publish_waits_for_a_declared_queue_without_consumer() -> None:
    broker = MemoryBroker()
    await broker.declare("uplink", "store")
    publish = asyncio.create_task(broker.publish("uplink", b"kept"))
    await asyncio.sleep(0.05)
    assert not publish.done()
    handled: list[bytes] = []

    async def handler(body: bytes) -> None:
        handled.append(body)

    await broker.consume("uplink", "store", handler, prefetch=1)
    await asyncio.wait_for(publish, 2)
    assert handled == [b"kept"]
    await broker.close()


async def test_a_topic_without_queues_accepts_at_once() -> None:
    broker = MemoryBroker()
    await asyncio.wait_for(broker.publish("message.stored", b"x"), 1)
    await broker.close()


async def test_every_queue_of_a_topic_gets_every_body() -> None:
    broker = MemoryBroker()
    seen: dict[str, list[bytes]] = {"a": [], "b": []}
    for name in seen:

        async def handler(body: bytes, name: str = name) -> None:
            seen[name].append(body)

        await broker.consume("events", name, handler, prefetch=2)
    for index in range(5):
        await broker.publish("events", bytes([index]))
    assert sorted(seen["a"]) == sorted(seen["b"]) == [bytes([i]) for i in range(5)]
    await broker.close()


async def test_a_failing_handler_gets_the_body_again() -> None:
    broker = MemoryBroker(retry_delay=0.01)
    attempts: list[bytes] = []

    async def flaky(body: bytes) -> None:
        attempts.append(body)
        if len(attempts) < 3:
            raise RuntimeError("database down")

    await broker.consume("uplink", "store", flaky, prefetch=1)
    await asyncio.wait_for(broker.publish("uplink", b"again"), 2)
    assert attempts == [b"again"] * 3
    await broker.close()


async def test_publish_after_close_fails() -> None:
    broker = MemoryBroker()
    await broker.close()
    with pytest.raises(BrokerError):
        await broker.publish("uplink", b"late")
