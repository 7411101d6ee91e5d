"""The Redis live adapter against the machine's real Redis: any worker reaches any API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from nubes.pipeline.live import RedisLive

pytestmark = pytest.mark.integration


@pytest.fixture
async def listening(redis_url: str, unique_prefix: str) -> AsyncIterator[RedisLive]:
    """An API process's adapter: it listens and fans out."""
    live = RedisLive(redis_url, unique_prefix)
    await live.start(listen=True)
    yield live
    await live.close()


@pytest.fixture
async def publishing(redis_url: str, unique_prefix: str) -> AsyncIterator[RedisLive]:
    """A worker's adapter: it only publishes."""
    live = RedisLive(redis_url, unique_prefix)
    await live.start(listen=False)
    yield live
    await live.close()


async def test_a_batch_published_by_one_process_reaches_the_streams_of_another(
    listening: RedisLive, publishing: RedisLive
) -> None:
    first, second = listening.subscribe(), listening.subscribe()
    await publishing.publish(b'{"v":1,"messages":[]}')
    await publishing.publish(b"second")
    for subscription in (first, second):
        assert await subscription.next(5.0) == b'{"v":1,"messages":[]}'
        assert await subscription.next(5.0) == b"second"
    first.close()
    await publishing.publish(b"third")
    assert await second.next(5.0) == b"third"
    assert await first.next(0.05) is None


async def test_installations_with_other_prefixes_do_not_hear_each_other(
    listening: RedisLive, redis_url: str, unique_prefix: str
) -> None:
    other = RedisLive(redis_url, unique_prefix + "x")
    await other.start(listen=True)
    try:
        mine, theirs = listening.subscribe(), other.subscribe()
        await other.publish(b"for them")
        assert await theirs.next(5.0) == b"for them"
        assert await mine.next(0.2) is None
    finally:
        await other.close()


async def test_a_publisher_alone_hands_nothing_to_its_own_subscriptions(
    publishing: RedisLive, listening: RedisLive
) -> None:
    # Without listen=True (a worker), nothing arrives: only API processes fan out.
    local = publishing.subscribe()
    remote = listening.subscribe()
    await publishing.publish(b"batch")
    assert await remote.next(5.0) == b"batch"
    assert await local.next(0.1) is None
