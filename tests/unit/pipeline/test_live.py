"""The live fan-out: every open subscription gets every batch, a slow one overflows."""

from __future__ import annotations

import asyncio

from nubes.pipeline.live import SUBSCRIBER_QUEUE, Fanout, MemoryLive


async def test_every_subscription_gets_every_batch_in_order() -> None:
    live = MemoryLive()
    await live.start(listen=True)
    first, second = live.subscribe(), live.subscribe()
    await live.publish(b"one")
    await live.publish(b"two")
    for subscription in (first, second):
        assert await subscription.next(1.0) == b"one"
        assert await subscription.next(1.0) == b"two"
        assert not subscription.overflowed
    await live.close()


async def test_next_answers_none_after_its_timeout() -> None:
    subscription = MemoryLive().subscribe()
    started = asyncio.get_running_loop().time()
    assert await subscription.next(0.05) is None
    assert asyncio.get_running_loop().time() - started >= 0.04


async def test_a_waiting_subscription_wakes_on_publish() -> None:
    live = MemoryLive()
    subscription = live.subscribe()
    waiting = asyncio.create_task(subscription.next(5.0))
    await asyncio.sleep(0)
    await live.publish(b"batch")
    assert await asyncio.wait_for(waiting, 1.0) == b"batch"


async def test_a_full_queue_overflows_and_takes_no_more() -> None:
    live = MemoryLive()
    slow, fast = live.subscribe(), live.subscribe()
    for i in range(SUBSCRIBER_QUEUE):
        await live.publish(str(i).encode())
        assert await fast.next(1.0) == str(i).encode()
    assert not slow.overflowed
    await live.publish(b"one too many")
    assert slow.overflowed
    assert not fast.overflowed
    assert await fast.next(1.0) == b"one too many"
    # What was queued before the overflow is still there; nothing after it.
    assert await slow.next(1.0) == b"0"
    await live.publish(b"later")
    received = [await slow.next(0.01) for _ in range(SUBSCRIBER_QUEUE - 1)]
    assert received[-1] == str(SUBSCRIBER_QUEUE - 1).encode()
    assert await slow.next(0.01) is None


async def test_a_closed_subscription_gets_nothing_and_is_forgotten() -> None:
    fanout = Fanout()
    kept, closed = fanout.subscribe(), fanout.subscribe()
    assert fanout.subscribers == 2
    closed.close()
    closed.close()  # twice is harmless
    assert fanout.subscribers == 1
    fanout.deliver(b"batch")
    assert await kept.next(1.0) == b"batch"
    assert await closed.next(0.01) is None
