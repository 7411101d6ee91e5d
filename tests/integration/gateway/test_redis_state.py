"""Link snapshots in the machine's real Redis: what one gateway saves, another loads.

The batch goes to Redis as one string that a Lua script splits (see
`nubes.gateway.state._SAVE`), so the round trip is what proves the split.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from helpers import eventually
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


async def _kill_subscription(redis_url: str, owner: str) -> int:
    """Closes, on the server, the gateway's pub/sub connection; how many were closed."""
    client = aioredis.from_url(redis_url)
    try:
        clients = await client.client_list(_type="pubsub")
        ids = [c["id"] for c in clients if c.get("name") == f"nubes-gateway-{owner}"]
        for client_id in ids:
            await client.client_kill_filter(_id=client_id)
        return len(ids)
    finally:
        await client.aclose()


async def test_a_lost_subscription_reports_missed_takeovers_and_comes_back(
    gateways: list[RedisState], redis_url: str
) -> None:
    """Pub/sub delivers at most once: a dropped subscription must say so, twice
    (when it drops, and when it is back), and takeovers must flow again."""
    listener, announcer = gateways
    takeovers: list[tuple[int, str]] = []
    missed: list[float] = []
    loop = asyncio.get_running_loop()
    await listener.start(
        lambda serial, owner: takeovers.append((serial, owner)), lambda: missed.append(loop.time())
    )
    await announcer.start(lambda serial, owner: None, lambda: None)
    await announcer.takeover(11)
    await eventually(lambda: _value(takeovers), lambda t: t == [(11, announcer.owner)])
    assert missed == []

    assert await _kill_subscription(redis_url, listener.owner) == 1
    await eventually(lambda: _value(missed), lambda m: len(m) == 2, timeout=10.0)

    await announcer.takeover(12)
    await eventually(lambda: _value(takeovers), lambda t: (12, announcer.owner) in t)


async def _value(items: list[Any]) -> list[Any]:
    return list(items)
