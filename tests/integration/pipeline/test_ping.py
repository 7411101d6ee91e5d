"""Readiness of RabbitMQ and Redis as the adapters see them."""

from __future__ import annotations

import pytest

from nubes.errors import BrokerError
from nubes.pipeline.cache import RedisCache
from nubes.pipeline.rabbitmq import RabbitBroker

pytestmark = pytest.mark.integration


async def test_rabbitmq_is_ready_while_connected(amqp_url: str, unique_prefix: str) -> None:
    broker = RabbitBroker(amqp_url, unique_prefix)
    with pytest.raises(BrokerError, match="not connected"):
        await broker.ping()
    await broker.start()
    try:
        await broker.ping()
    finally:
        await broker.close()
    with pytest.raises(BrokerError, match="not connected"):
        await broker.ping()


async def test_redis_is_ready_while_it_answers(redis_url: str, unique_prefix: str) -> None:
    cache = RedisCache(redis_url, unique_prefix)
    try:
        await cache.ping()
    finally:
        await cache.close()


async def test_a_redis_that_is_down_is_not_ready(closed_port: int) -> None:
    cache = RedisCache(f"redis://127.0.0.1:{closed_port}/0", "t")
    try:
        with pytest.raises(BrokerError, match="Redis does not answer"):
            await cache.ping()
    finally:
        await cache.close()
