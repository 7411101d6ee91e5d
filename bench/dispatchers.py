"""The callback benchmark's scaled-out phase: N dispatcher processes behind RabbitMQ.

Production runs any number of `nubes dispatcher` processes on one
PostgreSQL database and one RabbitMQ queue (`callbacks`); this phase
measures that layout on this machine. Each dispatcher is its own process
(its own event loop, database pool, HTTP connections) consuming a queue of a
unique prefix; the parent publishes the `message.stored` events through
RabbitMQ as a worker does and counts succeeded deliveries in the database.
The queue and exchange are deleted after.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import secrets
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import aio_pika
import sqlalchemy as sa
import uvloop

from nubes.callbacks.dispatcher import CALLBACKS_QUEUE, Dispatcher
from nubes.callbacks.sender import Sender
from nubes.config import Settings
from nubes.pipeline.broker import MESSAGE_STORED
from nubes.pipeline.rabbitmq import RabbitBroker
from nubes.store import tables as t
from nubes.store.database import Database

AMQP = "amqp://guest:guest@127.0.0.1:5672/"


async def _dispatch(url: str, prefix: str, pipe: Connection) -> None:
    database = Database(url)
    broker = RabbitBroker(AMQP, prefix)
    await broker.start()
    settings = Settings(callback_allow_private=True)
    sender = Sender(
        allow_private=True, max_connections=settings.dispatcher_concurrency, user_agent="b"
    )
    dispatcher = Dispatcher(database.engine, broker, settings, sender)
    await dispatcher.start()
    began = time.process_time()
    pipe.send("ready")
    await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
    used = time.process_time() - began
    await dispatcher.close()
    await broker.close()
    await sender.close()
    await database.dispose()
    pipe.send(used)


def dispatcher_main(url: str, prefix: str, pipe: Connection) -> None:
    uvloop.run(_dispatch(url, prefix, pipe))


async def scaled(
    url: str, engine: Any, callback_id: Any, bodies: list[bytes], count: int, processes: int
) -> tuple[float, float]:
    """(deliveries/s, CPU µs per delivery summed over the dispatchers) for these event bodies."""
    prefix = f"nubes-bench-{secrets.token_hex(4)}"
    context = multiprocessing.get_context("spawn")
    pipes, children = [], []
    for _ in range(processes):
        ours, theirs = context.Pipe()
        child = context.Process(target=dispatcher_main, args=(url, prefix, theirs), daemon=True)
        child.start()
        pipes.append(ours)
        children.append(child)
    publisher = RabbitBroker(AMQP, prefix)
    try:
        loop = asyncio.get_running_loop()
        for pipe in pipes:
            await loop.run_in_executor(None, pipe.recv)  # "ready": the queue is bound
        await publisher.start()
        began = time.perf_counter()
        for body in bodies:
            await publisher.announce(MESSAGE_STORED, body)
        await _until(lambda: _succeeded(engine, callback_id), count)
        rate = count / (time.perf_counter() - began)
        used = 0.0
        for pipe in pipes:
            pipe.send("stop")
        for pipe in pipes:
            used += await loop.run_in_executor(None, pipe.recv)
        return rate, used / count * 1e6
    finally:
        await publisher.close()
        for child in children:
            child.join(10)
            if child.is_alive():
                child.kill()
        await _drop(prefix)


async def _succeeded(engine: Any, callback_id: Any) -> int:
    d = t.deliveries
    query = sa.select(sa.func.count()).where(
        d.c.callback_id == callback_id, d.c.state == "succeeded"
    )
    async with engine.connect() as conn:
        return int((await conn.scalar(query)) or 0)


async def _until(count_now: Callable[[], Any], count: int, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while await count_now() < count:
        if time.monotonic() > deadline:
            raise TimeoutError("the dispatchers did not deliver everything in time")
        await asyncio.sleep(0.05)


async def _drop(prefix: str) -> None:
    connection = await aio_pika.connect(AMQP)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(f"{prefix}.{CALLBACKS_QUEUE}")
        await channel.exchange_delete(prefix)
