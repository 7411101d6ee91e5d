"""Two gateways sharing link state, and a device moved between them at chosen moments.

tests/e2e/test_gateways.py runs real processes behind a balancer that moves
devices every few datagrams; orders that need a lost answer and two remaps
in a row come up there only by chance. Here the state is shared through an
in-memory `Hub` (what Redis is to the gateways), the device's datagrams go
to the gateway the test names, and every wait is for a condition.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from helpers import eventually
from nubes import flap
from nubes.gateway.directory import Directory
from nubes.gateway.publisher import Publisher
from nubes.gateway.service import Gateway, MacChannel
from nubes.gateway.sessions import SessionIds
from nubes.gateway.state import decode
from nubes.pipeline.broker import UPLINK, MemoryBroker
from nubes.pipeline.cache import MemoryCache
from nubes.services import devices
from nubes.store.database import Database

SERIAL = 2159017985
KEY = bytes(range(16))
FIRST = flap.Packet(flap.F | flap.L, 0, b"\x06" + bytes(8) + b"\xa1\x00\x01")
SECOND = flap.Packet(flap.F | flap.L, 2, b"\x06" + bytes(8) + b"\xa1\x00\x02")


class Hub:
    """Snapshots by serial, who listens for takeovers, and who does not hear them now."""

    def __init__(self) -> None:
        self.snapshots: dict[int, bytes] = {}
        self.listeners: dict[str, Callable[[int, str], None]] = {}
        self.deaf: set[str] = set()  # a lost subscription: takeovers to them vanish


class HubState:
    """A `SharedState` on the hub; takeovers reach the other gateways a loop turn later."""

    shared = True

    def __init__(self, hub: Hub, owner: str) -> None:
        self._hub = hub
        self.owner = owner

    async def start(
        self, on_takeover: Callable[[int, str], None], on_missed: Callable[[], None]
    ) -> None:
        self._hub.listeners[self.owner] = on_takeover

    async def close(self) -> None:
        return None

    async def load(self, serial: int) -> bytes | None:
        return self._hub.snapshots.get(serial)

    async def save(self, snapshots: list[tuple[int, bytes]]) -> None:
        self._hub.snapshots.update(snapshots)

    async def takeover(self, serial: int) -> None:
        loop = asyncio.get_running_loop()
        for owner, listener in self._hub.listeners.items():
            if owner != self.owner and owner not in self._hub.deaf:
                loop.call_soon(listener, serial, self.owner)


class Air:
    """The device's side: every answer of either gateway, decoded."""

    def __init__(self) -> None:
        self.answers: list[flap.Packet] = []

    def sendto(self, datagram: bytes, remote: Any) -> None:
        self.answers.append(flap.Packet.decode(flap.open_envelope(datagram).packet))


async def _discard(body: bytes) -> None:
    return None


@pytest.fixture
async def two(migrated_sqlite: Database) -> AsyncIterator[tuple[Gateway, Gateway, Hub]]:
    engine = migrated_sqlite.engine
    await devices.add_device(engine, serial=SERIAL, claim_token=KEY)
    broker = MemoryBroker()
    await broker.consume(UPLINK, "store", _discard, prefetch=4)
    hub, gateways, closing = Hub(), [], []
    for owner in ("gw-a", "gw-b"):
        directory = Directory(engine, 3600.0)
        await directory.start()
        publisher = Publisher(broker, batch_size=16, linger_seconds=0.001)
        state = HubState(hub, owner)
        gateway = Gateway(
            engine=engine,
            directory=directory,
            publisher=publisher,
            session_ids=SessionIds(MemoryCache(), engine),
            publish_timeout=5.0,
            idle_seconds=3600.0,
            max_links=10,
            state=state,
        )
        await state.start(gateway.on_takeover, gateway.on_takeovers_missed)
        gateways.append(gateway)
        closing += [gateway.close, publisher.close, directory.close]
    yield gateways[0], gateways[1], hub
    for close in closing:
        await close()
    await broker.close()


async def _send(gateway: Gateway, air: Air, packet: flap.Packet) -> None:
    datagram = flap.seal(KEY, SERIAL, packet.encode())
    transport: Any = air
    gateway.on_mac_datagram(datagram, MacChannel(transport, ("127.0.0.1", 1), len(datagram), False))


async def _answered(air: Air, count: int) -> list[flap.Packet]:
    async def answers() -> list[flap.Packet]:
        return list(air.answers)

    return await eventually(answers, lambda a: len(a) >= count, timeout=5.0)


async def _saved_with_last(hub: Hub, packet: flap.Packet) -> None:
    async def last() -> bytes | None:
        snapshot = decode(hub.snapshots.get(SERIAL, b""))
        return None if snapshot is None else snapshot.transfer.last

    await eventually(last, lambda raw: raw == packet.encode(), timeout=5.0)


def _stored(*gateways: Gateway) -> int:
    return sum(gateway.counters["in:accepted"] for gateway in gateways)


async def test_a_repeat_after_two_remaps_is_not_stored_again(
    two: tuple[Gateway, Gateway, Hub],
) -> None:
    """A lost ack, a remap, a lost ack again and a remap back: one message stored once.

    B continues from A's snapshot on the repeat of the first message and
    answers it from the cache, which changes nothing worth saving; A then
    continues from its own snapshot for the second message. B's copy of the
    link still expects that message: had nobody told B, the repeat of it
    would be stored a second time.
    """
    a, b, hub = two
    air = Air()
    await _send(a, air, FIRST)
    assert await _answered(air, 1) == [flap.Packet(flap.A, 1)]
    await _saved_with_last(hub, FIRST)
    # The ack is lost; the device is remapped to B and repeats, twice.
    await _send(b, air, FIRST)
    await _send(b, air, FIRST)
    assert (await _answered(air, 2))[1] == flap.Packet(flap.A, 1)
    assert _stored(a, b) == 1
    # Remapped back to A with the next message; its ack is lost too.
    await _send(a, air, SECOND)
    assert (await _answered(air, 3))[2] == flap.Packet(flap.A, 3)
    await _saved_with_last(hub, SECOND)
    # Remapped to B again, the device repeats the second message, twice.
    await _send(b, air, SECOND)
    await _send(b, air, SECOND)
    assert (await _answered(air, 4))[3] == flap.Packet(flap.A, 3)
    assert _stored(a, b) == 2
    assert b.counters["state:adopted"] == 2


@pytest.mark.parametrize(
    ("reported", "stored"), [(True, 2), (False, 3)], ids=["reported", "unreported"]
)
async def test_a_gateway_told_it_missed_takeovers_consults_before_storing(
    two: tuple[Gateway, Gateway, Hub], reported: bool, stored: int
) -> None:
    """B holds the link and misses A's takeover (its subscription was down).

    Reported, as the Redis listener does when its subscription drops and
    comes back, B consults the shared state before the next packet and takes
    the repeat of A's message for a repeat. Unreported, the repeat is stored
    twice: the case shows the order really is the race.
    """
    a, b, hub = two
    air = Air()
    await _send(a, air, FIRST)
    await _answered(air, 1)
    await _saved_with_last(hub, FIRST)
    # The ack was lost: B continues from A's snapshot on the repeats (two, one
    # answer, as in the test above).
    await _send(b, air, FIRST)
    await _send(b, air, FIRST)
    await _answered(air, 2)
    hub.deaf.add("gw-b")
    await _send(a, air, SECOND)  # back to A, whose takeover B does not hear
    assert (await _answered(air, 3))[2] == flap.Packet(flap.A, 3)
    await _saved_with_last(hub, SECOND)
    hub.deaf.clear()
    if reported:
        b.on_takeovers_missed()
    await _send(b, air, SECOND)  # that ack was lost too: the repeats reach B
    await _send(b, air, SECOND)
    assert (await _answered(air, 4))[3] == flap.Packet(flap.A, 3)
    assert _stored(a, b) == stored
