"""RabbitMQ adapter of the broker port (aio-pika).

Topology: one durable topic exchange named after the prefix; one durable
queue per consumer group, `<prefix>.<queue>`, bound with the topic as routing
key; classic queues, or quorum queues (`x-queue-type: quorum`, replicated
over a cluster) when NUBES_BROKER_QUEUE_TYPE says so. Messages are
persistent and published with publisher confirms and the mandatory flag,
so `publish` returns only when RabbitMQ has taken responsibility for the
message, and fails if no queue would keep it.

A handler failure nacks the message back to the queue after a pause, so a
database outage slows the worker down instead of spinning it.
"""

from __future__ import annotations

import asyncio
import logging

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)
from pamqp.common import FieldTable

from nubes.errors import BrokerError
from nubes.pipeline.broker import Handler

log = logging.getLogger(__name__)


class RabbitBroker:
    """Durable topic exchange, durable queues, confirms, manual acks."""

    def __init__(
        self, url: str, prefix: str, retry_delay: float = 1.0, queue_type: str = "classic"
    ) -> None:
        self._url = url
        self._queue_type = queue_type
        self._prefix = prefix
        self._retry_delay = retry_delay
        self._connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._consumer_channels: list[AbstractChannel] = []
        self._sequence = 0

    async def start(self) -> None:
        try:
            self._connection = await aio_pika.connect_robust(self._url, timeout=10)
            self._publish_channel = await self._connection.channel(
                publisher_confirms=True, on_return_raises=True
            )
            self._exchange = await self._declare_exchange(self._publish_channel)
        except (TimeoutError, aio_pika.exceptions.AMQPError, OSError) as err:
            raise BrokerError(f"RabbitMQ is not reachable: {err}") from err

    async def close(self) -> None:
        for channel in self._consumer_channels:
            await channel.close()
        if self._connection is not None:
            await self._connection.close()

    async def ping(self) -> None:
        if self._connection is None or self._connection.is_closed:
            raise BrokerError("not connected to RabbitMQ")
        if not self._connection.connected.is_set():
            raise BrokerError("reconnecting to RabbitMQ")

    async def _declare_exchange(self, channel: AbstractChannel) -> AbstractExchange:
        return await channel.declare_exchange(
            self._prefix, aio_pika.ExchangeType.TOPIC, durable=True
        )

    async def _declare_queue(
        self, channel: AbstractChannel, exchange: AbstractExchange, topic: str, queue: str
    ) -> aio_pika.abc.AbstractQueue:
        # A queue's type is fixed when it is first declared; declaring it
        # again with another type fails (PRECONDITION_FAILED), see deploy.md.
        arguments: FieldTable | None = None
        if self._queue_type != "classic":
            arguments = {"x-queue-type": self._queue_type}
        declared = await channel.declare_queue(
            f"{self._prefix}.{queue}", durable=True, arguments=arguments
        )
        await declared.bind(exchange, routing_key=topic)
        return declared

    async def declare(self, topic: str, queue: str) -> None:
        channel, exchange = self._require()
        await self._declare_queue(channel, exchange, topic, queue)

    def _require(self) -> tuple[AbstractChannel, AbstractExchange]:
        if self._publish_channel is None or self._exchange is None:
            raise BrokerError("broker not started")
        return self._publish_channel, self._exchange

    async def publish(self, topic: str, body: bytes) -> None:
        await self._publish(topic, body, mandatory=True)

    async def announce(self, topic: str, body: bytes) -> None:
        await self._publish(topic, body, mandatory=False)

    async def _publish(self, topic: str, body: bytes, *, mandatory: bool) -> None:
        _, exchange = self._require()
        # A message id lets the client match a returned (unroutable) message to
        # its publish, so that the publish fails instead of silently succeeding.
        self._sequence += 1
        message = aio_pika.Message(
            body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT, message_id=str(self._sequence)
        )
        try:
            await exchange.publish(message, routing_key=topic, mandatory=mandatory)
        except (aio_pika.exceptions.AMQPError, aiormq.exceptions.PublishError) as err:
            raise BrokerError(f"publish to {topic} not confirmed: {err}") from err

    async def consume(self, topic: str, queue: str, handler: Handler, prefetch: int) -> None:
        if self._connection is None:
            raise BrokerError("broker not started")
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=prefetch)
        self._consumer_channels.append(channel)
        exchange = await self._declare_exchange(channel)
        declared = await self._declare_queue(channel, exchange, topic, queue)

        async def on_message(message: AbstractIncomingMessage) -> None:
            try:
                await handler(message.body)
            except Exception:
                log.exception("handler of %s failed; message returns to the queue", queue)
                await asyncio.sleep(self._retry_delay)
                await message.nack(requeue=True)
                return
            await message.ack()

        await declared.consume(on_message)
