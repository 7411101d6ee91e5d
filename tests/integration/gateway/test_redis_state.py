"""Link snapshots in the machine's real Redis: what one gateway saves, another loads.

The batch goes to Redis as one string that a Lua script splits (see
`nubes.gateway.state._SAVE`), so the round trip is what proves the split.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from nubes.gateway.state import RedisState

pytestmark = pytest.mark.integration

TTL = 30.0


@pytest.fixture
async def gateways(redis_url: str, unique_prefix: str) -> AsyncIterator[list[RedisState]]:
    states = [RedisState(redis_url, unique_prefix, TTL) for _ in range(2)]
    yield states
    client = aioredis.from_url(redis_url)
    keys = [key async for key in client.scan_iter(f"{unique_prefix}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
    for state in states:
        await state.close()


async def test_a_batch_saved_by_one_gateway_is_loaded_by_another(
    gateways: list[RedisState],
) -> None:
    first, second = gateways
    batch = [
        (1, b"\x02one"),
        (2159017985, bytes(range(256)) * 300),  # over 64 KiB, every byte value
        (4294967295, b""),
        (18446744073709551615, b"\x00\r\n$3\r\n"),  # looks like the Redis protocol
    ]
    await first.save(batch)
    for serial, raw in batch:
        assert await second.load(serial) == raw
    assert await second.load(3) is None


async def test_a_later_save_replaces_the_snapshot_and_sets_the_ttl(
    gateways: list[RedisState], redis_url: str, unique_prefix: str
) -> None:
    first, second = gateways
    await first.save([(7, b"old"), (8, b"kept")])
    await second.save([(7, b"new")])
    assert await first.load(7) == b"new"
    assert await first.load(8) == b"kept"
    client = aioredis.from_url(redis_url)
    try:
        ttl_ms = await client.pttl(f"{unique_prefix}:gateway:link:7")
    finally:
        await client.aclose()
    assert 0 < ttl_ms <= TTL * 1000
