"""The in-process cache: counters with a floor, values with expiry."""

from __future__ import annotations

import asyncio

from nubes.pipeline.cache import MemoryCache


async def test_counter_never_goes_below_its_floor_and_increases() -> None:
    cache = MemoryCache()
    assert await cache.next_id("session", 100) == 100
    assert await cache.next_id("session", 1) == 101
    assert await cache.next_id("session", 500) == 500
    assert await cache.next_id("other", 1) == 1


async def test_values_expire() -> None:
    cache = MemoryCache()
    await cache.set("k", b"v", ttl_seconds=0.05)
    assert await cache.get("k") == b"v"
    await asyncio.sleep(0.08)
    assert await cache.get("k") is None
    await cache.set("k", b"w")
    await cache.delete("k")
    assert await cache.get("k") is None


async def test_window_counts_grow_then_start_over() -> None:
    cache = MemoryCache()
    assert await cache.peek_count("fails") == (0, 0.0)
    first, left = await cache.count("fails", 0.1)
    assert first == 1
    assert 0 < left <= 0.1 + 1e-6
    assert (await cache.count("fails", 0.1))[0] == 2
    assert (await cache.peek_count("fails"))[0] == 2
    await cache.uncount("fails")
    assert (await cache.peek_count("fails"))[0] == 1
    await cache.uncount("never")
    assert await cache.peek_count("never") == (0, 0.0)
    await asyncio.sleep(0.15)
    assert await cache.peek_count("fails") == (0, 0.0)
    assert (await cache.count("fails", 0.1))[0] == 1
