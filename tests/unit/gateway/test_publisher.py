"""The gateway's publisher: batches by size and by time, tells waiters the outcome."""

from __future__ import annotations

import asyncio

import pytest

from nubes.errors import BrokerError
from nubes.gateway.publisher import Publisher
from nubes.pipeline.broker import UPLINK
from nubes.pipeline.records import Record, decode_batch


def submitted(publisher: Publisher, records: list[Record]) -> asyncio.Future[None]:
    """Submits records; the returned future carries the publisher's verdict."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def done(error: BaseException | None) -> None:
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)

    publisher.submit(records, done)
    return future


class RecordingBroker:
    """A broker port that records bodies and can be told to refuse them."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.refuse = False

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def declare(self, topic: str, queue: str) -> None: ...

    async def consume(self, topic: str, queue: str, handler: object, prefetch: int) -> None: ...

    async def publish(self, topic: str, body: bytes) -> None:
        assert topic == UPLINK
        await asyncio.sleep(0)
        if self.refuse:
            raise BrokerError("refused")
        self.bodies.append(body)


async def test_a_full_batch_is_published_at_once() -> None:
    broker = RecordingBroker()
    publisher = Publisher(broker, batch_size=3, linger_seconds=10)
    futures = [submitted(publisher, [{"kind": "message", "n": n}]) for n in range(3)]
    await asyncio.wait_for(asyncio.gather(*futures), 1)
    assert len(broker.bodies) == 1
    assert [r["n"] for r in decode_batch(broker.bodies[0])] == [0, 1, 2]


async def test_a_partial_batch_goes_out_after_the_linger() -> None:
    broker = RecordingBroker()
    publisher = Publisher(broker, batch_size=100, linger_seconds=0.02)
    future = submitted(publisher, [{"kind": "message"}])
    publisher.add({"kind": "log"})
    await asyncio.wait_for(future, 1)
    assert [r["kind"] for r in decode_batch(broker.bodies[0])] == ["message", "log"]


async def test_a_refused_batch_fails_its_waiters() -> None:
    broker = RecordingBroker()
    broker.refuse = True
    publisher = Publisher(broker, batch_size=1, linger_seconds=0)
    future = submitted(publisher, [{"kind": "message"}])
    with pytest.raises(BrokerError):
        await asyncio.wait_for(future, 1)
    assert publisher.failed_batches == 1


async def test_best_effort_records_are_bounded() -> None:
    broker = RecordingBroker()
    publisher = Publisher(broker, batch_size=1000, linger_seconds=10, max_backlog=5)
    for n in range(8):
        publisher.add({"kind": "log", "n": n})
    assert publisher.dropped == 3
    await publisher.close()
    assert [r["n"] for r in decode_batch(broker.bodies[0])] == [3, 4, 5, 6, 7]
