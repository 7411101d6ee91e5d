"""Live fan-out of stored messages to the API's streams (Server-Sent Events).

Workers publish each `message.stored` batch here after it is committed; every
API process keeps one listener and hands the batch to its open streams,
which filter by their scope. The embedded adapter is a set of in-process
queues (worker and API share the process in `nubes serve`); the Redis
adapter uses pub/sub, so any number of workers reach any number of API
processes.

Live delivery is best effort by design: a stream that falls behind (its
queue is full) is told so and ends; the client reconnects with
`Last-Event-ID` and the API replays what it missed from the database, which
is the source of truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

import redis.asyncio as aioredis

log = logging.getLogger(__name__)

SUBSCRIBER_QUEUE = 1000


class Subscription:
    """One stream's inbox; `overflowed` once it could not keep up."""

    def __init__(self, fanout: Fanout) -> None:
        self._fanout = fanout
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self.overflowed = False

    def offer(self, body: bytes) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(body)
        except asyncio.QueueFull:
            self.overflowed = True

    async def next(self, timeout: float) -> bytes | None:
        """The next batch, or None after `timeout` seconds without one."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None

    def close(self) -> None:
        self._fanout.unsubscribe(self)


class Fanout:
    """Hands every batch to every open subscription of this process."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()

    def subscribe(self) -> Subscription:
        subscription = Subscription(self)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def deliver(self, body: bytes) -> None:
        for subscription in list(self._subscribers):
            subscription.offer(body)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)


class Live(Protocol):
    async def start(self, *, listen: bool) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, body: bytes) -> None:
        """Best effort: raises only on a broken connection, which callers log."""
        ...

    def subscribe(self) -> Subscription: ...


class MemoryLive:
    """In-process: publish reaches the subscriptions of this process."""

    def __init__(self) -> None:
        self._fanout = Fanout()

    async def start(self, *, listen: bool) -> None:
        return None

    async def close(self) -> None:
        return None

    async def publish(self, body: bytes) -> None:
        self._fanout.deliver(body)

    def subscribe(self) -> Subscription:
        return self._fanout.subscribe()


class RedisLive:
    """Redis pub/sub on one channel; one listener task per listening process."""

    def __init__(self, url: str, prefix: str) -> None:
        self._client: aioredis.Redis = aioredis.from_url(
            url, socket_connect_timeout=5.0, health_check_interval=30
        )
        self._channel = f"{prefix}:live:messages"
        self._fanout = Fanout()
        self._listener: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self, *, listen: bool) -> None:
        if listen and self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="live-listener")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), 5.0)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None
        await self._client.aclose()

    async def publish(self, body: bytes) -> None:
        await self._client.publish(self._channel, body)

    def subscribe(self) -> Subscription:
        return self._fanout.subscribe()

    async def _listen(self) -> None:
        """Listens forever, reconnecting after a lost connection."""
        while True:
            try:
                async with self._client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self._channel)
                    self._ready.set()
                    async for message in pubsub.listen():
                        data = message.get("data")
                        if isinstance(data, bytes):
                            self._fanout.deliver(data)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("live listener lost Redis (%s); reconnecting", err)
                await asyncio.sleep(1.0)
