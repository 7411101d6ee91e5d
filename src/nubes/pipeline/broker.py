"""The broker port and its embedded, in-process adapter.

The pipeline has topics (`uplink`: gateway → workers; `message.stored`:
workers → callbacks and live streams). A publisher hands a body to a topic
and, when `publish` returns, the body is *durably accepted*: with RabbitMQ
the broker confirmed a persistent message on a durable queue; in-process it
means every consumer bound to the topic has processed it (the worker has
committed it to the database). That is what lets the gateway ack a device
only after its message is safe.

Consumers bind a named queue to a topic; several consumers of one queue
share its messages (workers scale out), different queues each get every
message (fan-out). A handler that raises leaves the message unacknowledged:
the broker delivers it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from nubes.errors import BrokerError

log = logging.getLogger(__name__)

Handler = Callable[[bytes], Awaitable[None]]

UPLINK = "uplink"
MESSAGE_STORED = "message.stored"


class Broker(Protocol):
    """Durable publish, competing consumers per queue, fan-out per topic."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raises BrokerError unless the broker is connected (readiness probes)."""
        ...

    async def declare(self, topic: str, queue: str) -> None:
        """Makes sure `queue` exists and receives `topic`, before anyone consumes.

        A publisher whose messages must not be lost declares the queue that
        keeps them: a topic nobody is bound to would swallow them.
        """
        ...

    async def publish(self, topic: str, body: bytes) -> None:
        """Returns once the body is durably accepted; raises BrokerError otherwise.

        A topic no queue is bound to is an error here: the body would be lost.
        """
        ...

    async def announce(self, topic: str, body: bytes) -> None:
        """Publishes an event that may have no subscriber yet (`message.stored`)."""
        ...

    async def consume(self, topic: str, queue: str, handler: Handler, prefetch: int) -> None:
        """Starts delivering the queue's messages to `handler` until `close`."""
        ...


@dataclass(slots=True)
class _Delivery:
    body: bytes
    done: asyncio.Future[None]
    attempts: int = 0


@dataclass(slots=True)
class _MemoryQueue:
    items: asyncio.Queue[_Delivery]
    consumers: list[asyncio.Task[None]] = field(default_factory=list)


class MemoryBroker:
    """In-process broker for `nubes serve` on embedded defaults.

    `publish` waits until each queue bound to the topic has handled the body,
    so "accepted" means "stored" here; a failing handler is retried with a
    growing pause. Queues are bounded: publishers wait when consumers lag.
    """

    def __init__(self, queue_size: int = 10_000, retry_delay: float = 0.5) -> None:
        self._queue_size = queue_size
        self._retry_delay = retry_delay
        self._bindings: dict[str, dict[str, _MemoryQueue]] = {}
        self._closed = False

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._closed = True
        for queues in self._bindings.values():
            for queue in queues.values():
                for task in queue.consumers:
                    task.cancel()
                for task in queue.consumers:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    async def ping(self) -> None:
        return None  # in-process: up while the process is

    def _queue(self, topic: str, name: str) -> _MemoryQueue:
        queues = self._bindings.setdefault(topic, {})
        if name not in queues:
            queues[name] = _MemoryQueue(asyncio.Queue(self._queue_size))
        return queues[name]

    async def declare(self, topic: str, queue: str) -> None:
        self._queue(topic, queue)

    async def publish(self, topic: str, body: bytes) -> None:
        if self._closed:
            raise BrokerError("broker closed")
        waits = []
        for queue in self._bindings.get(topic, {}).values():
            delivery = _Delivery(body, asyncio.get_running_loop().create_future())
            await queue.items.put(delivery)
            waits.append(delivery.done)
        if waits:
            await asyncio.gather(*waits)

    async def announce(self, topic: str, body: bytes) -> None:
        await self.publish(topic, body)

    async def consume(self, topic: str, queue: str, handler: Handler, prefetch: int) -> None:
        bound = self._queue(topic, queue)
        for index in range(max(1, prefetch)):
            task = asyncio.create_task(
                self._consume(bound, handler), name=f"consume:{topic}:{queue}:{index}"
            )
            bound.consumers.append(task)

    async def _consume(self, queue: _MemoryQueue, handler: Handler) -> None:
        while True:
            delivery = await queue.items.get()
            try:
                await handler(delivery.body)
            except asyncio.CancelledError:
                delivery.done.cancel()
                raise
            except Exception:
                delivery.attempts += 1
                log.exception("handler failed; retrying (attempt %d)", delivery.attempts)
                await asyncio.sleep(min(30.0, self._retry_delay * delivery.attempts))
                await queue.items.put(delivery)
                continue
            if not delivery.done.done():
                delivery.done.set_result(None)
