"""The RabbitMQ adapter against the machine's real RabbitMQ."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aio_pika
import pytest

from nubes.errors import BrokerError
from nubes.pipeline.rabbitmq import RabbitBroker

pytestmark = pytest.mark.integration


@pytest.fixture
async def broker(amqp_url: str, unique_prefix: str) -> AsyncIterator[RabbitBroker]:
    broker = RabbitBroker(amqp_url, unique_prefix, retry_delay=0.05)
    await broker.start()
    yield broker
    await broker.close()
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for queue in ("store", "a", "b"):
            await channel.queue_delete(f"{unique_prefix}.{queue}")
        await channel.exchange_delete(unique_prefix)


async def test_published_bodies_reach_the_consumer(broker: RabbitBroker) -> None:
    await broker.declare("uplink", "store")
    for index in range(20):
        await broker.publish("uplink", f"m{index}".encode())
    received: list[bytes] = []
    done = asyncio.Event()

    async def handler(body: bytes) -> None:
        received.append(body)
        if len(received) == 20:
            done.set()

    await broker.consume("uplink", "store", handler, prefetch=8)
    await asyncio.wait_for(done.wait(), 10)
    assert sorted(received) == sorted(f"m{i}".encode() for i in range(20))


async def test_declared_queue_keeps_messages_published_before_any_consumer(
    broker: RabbitBroker,
) -> None:
    await broker.declare("uplink", "store")
    await broker.publish("uplink", b"early")
    got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def handler(body: bytes) -> None:
        if not got.done():
            got.set_result(body)

    await broker.consume("uplink", "store", handler, prefetch=1)
    assert await asyncio.wait_for(got, 10) == b"early"


async def test_unroutable_publish_is_refused(broker: RabbitBroker) -> None:
    with pytest.raises(BrokerError):
        await broker.publish("nobody-listens", b"lost?")


async def test_a_failing_handler_gets_the_message_again(broker: RabbitBroker) -> None:
    await broker.declare("uplink", "store")
    attempts: list[bytes] = []
    done = asyncio.Event()

    async def flaky(body: bytes) -> None:
        attempts.append(body)
        if len(attempts) < 2:
            raise RuntimeError("database down")
        done.set()

    await broker.consume("uplink", "store", flaky, prefetch=1)
    await broker.publish("uplink", b"retry me")
    await asyncio.wait_for(done.wait(), 10)
    assert attempts == [b"retry me", b"retry me"]


async def test_each_queue_of_a_topic_gets_a_copy(broker: RabbitBroker) -> None:
    seen: dict[str, list[bytes]] = {"a": [], "b": []}
    done = {name: asyncio.Event() for name in seen}
    for name in seen:

        async def handler(body: bytes, name: str = name) -> None:
            seen[name].append(body)
            done[name].set()

        await broker.consume("events", name, handler, prefetch=1)
    await broker.publish("events", b"fan-out")
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in done.values())), 10)
    assert seen == {"a": [b"fan-out"], "b": [b"fan-out"]}


async def test_quorum_queues_are_declared_as_quorum_and_carry_messages(
    amqp_url: str, unique_prefix: str
) -> None:
    broker = RabbitBroker(amqp_url, unique_prefix, retry_delay=0.05, queue_type="quorum")
    await broker.start()
    try:
        await broker.declare("uplink", "store")
        received: asyncio.Queue[bytes] = asyncio.Queue()

        async def handler(body: bytes) -> None:
            await received.put(body)

        await broker.consume("uplink", "store", handler, prefetch=4)
        await broker.publish("uplink", b"quorum")
        assert await asyncio.wait_for(received.get(), 10) == b"quorum"
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            # The type is fixed: declaring it as classic is refused.
            with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):
                await channel.declare_queue(
                    f"{unique_prefix}.store", durable=True, arguments={"x-queue-type": "classic"}
                )
    finally:
        await broker.close()
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(f"{unique_prefix}.store")
            await channel.exchange_delete(unique_prefix)
