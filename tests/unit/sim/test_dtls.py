"""The simulator's DTLS link against the gateway's DTLS server, over loopback UDP.

A small cloud (`DtlsServer` on a socket) answers each record with its
reverse and can lose its datagrams to the device, forget every association
(a restart) or close one. The link's timers are shortened (`retransmit`) so
that lost flights cost milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import pytest

from nubes.dtls import DtlsEvent, DtlsServer, Established, HandshakeFailed, Output, identity_of
from nubes.sim.dtls import DtlsLink, DtlsNetwork
from nubes.sim.types import Profile, Stats
from unit.dtls.kit import KEY, SERIAL, new_server

FAST = 0.05


class Cloud(asyncio.DatagramProtocol):
    """A DTLS server on loopback that answers every record with its reverse."""

    def __init__(self) -> None:
        self.server: DtlsServer = new_server()
        self.events: list[DtlsEvent] = []
        self.sent = 0
        self.lose: Callable[[int], bool] = lambda index: False
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        now = time.monotonic()
        out = self.server.receive(data, addr, now)
        for association, record in list(out.records):
            out.extend(self.server.send(association.address, record[::-1], now))
        self.apply(out)

    def apply(self, out: Output) -> None:
        assert self.transport is not None
        self.events += out.events
        for datagram, address in out.datagrams:
            index, self.sent = self.sent, self.sent + 1
            if not self.lose(index):
                self.transport.sendto(datagram, address)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])


@pytest.fixture
async def cloud() -> AsyncIterator[Cloud]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(Cloud, local_addr=("127.0.0.1", 0))
    yield protocol
    transport.close()


def link_to(cloud: Cloud, key: bytes = KEY, serial: int = SERIAL, **options: Any) -> DtlsLink:
    options.setdefault("retransmit", FAST)
    return DtlsLink(("127.0.0.1", cloud.port), identity_of(serial), key, Stats(), **options)


async def echo(link: DtlsLink, packet: bytes, timeout: float = 1.0) -> bytes | None:
    link.send(packet)
    try:
        return await asyncio.wait_for(link.inbox.get(), timeout)
    except TimeoutError:
        link.unanswered()
        return None


async def test_a_handshake_then_one_record_per_packet_each_way(cloud: Cloud) -> None:
    link = link_to(cloud)
    assert await link.ready()
    assert await echo(link, b"\xc0\x00abc") == b"cba\x00\xc0"
    assert await echo(link, b"\x10\x02") == b"\x02\x10"
    established = [e for e in cloud.events if isinstance(e, Established)]
    assert established[0].association.suite == "TLS-PSK-WITH-AES-128-CCM-8"
    assert established[0].association.identity == f"hsn:{SERIAL}"
    assert link.fragment_limit == 300
    await link.close()


@pytest.mark.parametrize("lost", [0, 1, 2], ids=["cookie request", "server hello", "finished"])
async def test_a_lost_server_flight_is_recovered_by_retransmission(cloud: Cloud, lost: int) -> None:
    cloud.lose = lambda index: index == lost
    link = link_to(cloud)
    assert await link.ready()
    assert await echo(link, b"ping") == b"gnip"
    assert link._stats.handshakes == 1
    await link.close()


async def test_a_lost_association_is_replaced_by_a_new_handshake(cloud: Cloud) -> None:
    link = link_to(cloud)
    assert await link.ready()
    cloud.server = new_server()  # the server restarted: it knows no association
    assert await echo(link, b"lost", timeout=0.3) is None
    assert not link.established
    assert await link.ready()
    assert await echo(link, b"again") == b"niaga"
    assert link._stats.handshakes == 2
    await link.close()


async def test_a_close_notify_from_the_server_ends_the_association(cloud: Cloud) -> None:
    link = link_to(cloud)
    assert await link.ready()
    (address,) = [e.association.address for e in cloud.events if isinstance(e, Established)]
    cloud.apply(cloud.server.close(address, time.monotonic()))
    await asyncio.sleep(0.1)
    assert not link.established
    assert await link.ready()
    assert await echo(link, b"back") == b"kcab"
    await link.close()


async def test_a_wrong_key_fails_fast_and_is_counted(cloud: Cloud) -> None:
    link = link_to(cloud, key=bytes(16))
    began = time.monotonic()
    assert not await link.ready()
    assert time.monotonic() - began < 5.0  # the server's alert ends it, not the 15 s timeout
    assert link._stats.handshake_failures == 1
    failed = [e for e in cloud.events if isinstance(e, HandshakeFailed)]
    assert failed[0].reason == "bad_key"
    await link.close()


async def test_an_unknown_identity_fails(cloud: Cloud) -> None:
    link = link_to(cloud, serial=SERIAL + 1)
    assert not await link.ready()
    failed = [e for e in cloud.events if isinstance(e, HandshakeFailed)]
    assert failed[0].reason == "unknown_identity"
    await link.close()


async def test_a_silent_server_times_the_handshake_out(cloud: Cloud) -> None:
    cloud.lose = lambda index: True
    link = link_to(cloud, handshake_timeout=0.5)
    began = time.monotonic()
    assert not await link.ready()
    assert 0.5 <= time.monotonic() - began < 3.0  # its own timeout, not the default 15 s
    assert link._stats.handshake_failures == 1
    assert cloud.sent >= 3  # the client's ClientHello was sent again, each answered
    await link.close()


def test_the_network_gives_each_device_its_own_link_with_its_psk() -> None:
    network = DtlsNetwork("127.0.0.1", 5005)
    profile = Profile(7, bytes(16), "", None, [], psk=KEY)
    first, second = network.attach(profile, Stats()), network.attach(profile, Stats())
    assert first is not second
    assert first.identity == "hsn:7"
    with pytest.raises(ValueError, match="no PSK"):
        network.attach(Profile(8, bytes(16), "", None, []), Stats())
