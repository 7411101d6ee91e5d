"""The Redis cache adapter against the machine's real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from nubes.pipeline.cache import RedisCache

pytestmark = pytest.mark.integration


@pytest.fixture
async def cache(redis_url: str, unique_prefix: str) -> AsyncIterator[RedisCache]:
    cache = RedisCache(redis_url, unique_prefix)
    await cache.start()
    yield cache
    await cache.delete("counter:session")
    await cache.close()


async def test_counter_is_shared_and_respects_the_floor(
    cache: RedisCache, redis_url: str, unique_prefix: str
) -> None:
    other = RedisCache(redis_url, unique_prefix)
    await other.start()
    try:
        first = await cache.next_id("session", 1000)
        second = await other.next_id("session", 1)
        assert (first, second) == (1000, 1001)
        values = await asyncio.gather(*(other.next_id("session", 1) for _ in range(50)))
        assert len(set(values)) == 50
        assert min(values) == 1002
    finally:
        await other.close()


async def test_values_expire(cache: RedisCache) -> None:
    await cache.set("flag", b"1", ttl_seconds=0.1)
    assert await cache.get("flag") == b"1"
    await asyncio.sleep(0.25)
    assert await cache.get("flag") is None


async def test_window_counts_are_shared_and_expire(
    cache: RedisCache, redis_url: str, unique_prefix: str
) -> None:
    other = RedisCache(redis_url, unique_prefix)
    await other.start()
    try:
        assert await cache.peek_count("ratelimit:x") == (0, 0.0)
        counts = await asyncio.gather(*(other.count("ratelimit:x", 0.3) for _ in range(10)))
        assert sorted(count for count, _ in counts) == list(range(1, 11))
        seen, left = await cache.peek_count("ratelimit:x")
        assert seen == 10
        await cache.uncount("ratelimit:x")
        assert (await other.peek_count("ratelimit:x"))[0] == 9
        await cache.uncount("ratelimit:never-counted")
        assert await cache.peek_count("ratelimit:never-counted") == (0, 0.0)
        assert 0 < left <= 0.3
        await asyncio.sleep(0.45)
        assert await cache.peek_count("ratelimit:x") == (0, 0.0)
    finally:
        await other.close()
