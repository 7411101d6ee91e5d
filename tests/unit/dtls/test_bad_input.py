"""Bad input never crashes the server and never makes it keep state.

Random bytes, mutated datagrams of a real session, replays, an oversized
datagram, and a flood of ClientHellos from 100 000 addresses.
"""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nubes.dtls import DtlsServer, MbedtlsEngine, Output
from nubes.dtls.server import MAX_DATAGRAM
from unit.dtls.kit import KEY, SERIAL, Link, PskClient, new_server

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def session_datagrams() -> list[bytes]:
    """Every datagram a client sent in a handshake and two records."""
    sent: list[bytes] = []
    link = Link(new_server(), PskClient())
    original = link.to_server

    def recording(datagrams: list[bytes]) -> list[bytes]:
        sent.extend(datagrams)
        return original(datagrams)

    link.to_server = recording  # type: ignore[method-assign]
    link.handshake()
    link.echo(b"\xc0\x00first")
    link.echo(b"\xc0\x01second")
    return sent


def established(python_records: bool = True) -> Link:
    keys = {SERIAL: [KEY]}.get
    engine = MbedtlsEngine(lambda serial: keys(serial, []), python_records=python_records)
    link = Link(DtlsServer(lambda serial: [], engine=engine), PskClient())
    assert link.handshake() is not None
    return link


def still_works(link: Link) -> None:
    assert link.server.association(link.address) is not None
    assert link.echo(b"alive") == [b"evila"]


def assert_quiet(out: Output) -> None:
    assert out.records == []
    assert all(type(event).__name__ in {"HandshakeFailed", "Closed"} for event in out.events)


_unknown = new_server()


@FAST
@given(data=st.binary(max_size=1500))
def test_random_bytes_from_an_unknown_address_leave_no_state(data: bytes) -> None:
    out = _unknown.receive(data, ("203.0.113.5", 999), 0.0)
    assert out.events == []
    assert out.records == []
    assert _unknown.handshake_count == 0
    assert _unknown.association_count == 0


@FAST
@given(data=st.binary(max_size=1500), python_records=st.booleans())
def test_random_bytes_cannot_hurt_a_live_association(data: bytes, python_records: bool) -> None:
    link = established(python_records)
    assert_quiet(link.server.receive(data, link.address, link.now))
    still_works(link)


@pytest.mark.parametrize("python_records", [True, False])
def test_big_garbage_datagrams_cannot_hurt_a_live_association(python_records: bool) -> None:
    link = established(python_records)
    for size in (MAX_DATAGRAM, 17_000, 9_000):
        for _ in range(4):
            garbage = b"\x17\xfe\xfd\x00\x01" + bytes(8) + (size - 13).to_bytes(2, "big")
            assert_quiet(link.server.receive(garbage + bytes(size - 13), link.address, link.now))
    still_works(link)


@FAST
@given(data=st.data())
def test_mutated_session_datagrams_never_raise(
    data: st.DataObject, session_datagrams: list[bytes]
) -> None:
    datagram = bytearray(data.draw(st.sampled_from(session_datagrams)))
    flips = data.draw(st.lists(st.integers(0, len(datagram) - 1), max_size=4))
    for position in flips:
        datagram[position] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(0, len(datagram)))
    mutated = bytes(datagram[:cut]) + data.draw(st.binary(max_size=20))
    link = established()
    link.server.receive(mutated, link.address, link.now)
    link.server.receive(mutated, ("203.0.113.9", 1), link.now)
    link.server.poll(link.now + 100)


@FAST
@given(data=st.binary(max_size=600))
def test_random_bytes_during_a_handshake_never_raise(data: bytes) -> None:
    link = Link(new_server(), PskClient())
    hello = link.client.handle(link.to_server(link.client.start()))
    link.to_server(hello)
    out = link.server.receive(data, link.address, link.now)
    assert out.records == []
    link.server.poll(link.now + 1000)
    assert link.server.handshake_count == 0


def test_replayed_session_datagrams_deliver_nothing_twice(session_datagrams: list[bytes]) -> None:
    link = established()
    for datagram in session_datagrams[-4:]:  # the client's records (and their repeats)
        link.to_server([datagram])
    assert link.records == []
    fresh = [link.client.send(b"once")[0]]
    link.to_server(fresh)
    link.to_server(fresh)
    assert [record for _, record in link.records] == [b"once"]


def test_an_oversized_datagram_is_dropped() -> None:
    link = established()
    out = link.server.receive(b"\x16\xfe\xfd" + bytes(MAX_DATAGRAM), link.address, link.now)
    assert out == Output()
    assert link.server.counters.dropped == 1
    out = link.server.receive(bytes(65_507), ("203.0.113.1", 5), link.now)
    assert out == Output()
    still_works(link)


def flood(server: DtlsServer, hello: bytes, first: int, count: int) -> None:
    for i in range(first, first + count):
        address = (f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}", 1024 + i % 60_000)
        out = server.receive(hello, address, float(i) / 1000)
        assert len(out.datagrams) == 1
        assert out.events == []


def test_a_flood_of_client_hellos_from_100k_addresses_keeps_no_state() -> None:
    server = new_server()
    hello = PskClient().start()[0]
    flood(server, hello, 0, 98_000)
    tracemalloc.start()  # slow: only over the last 2 000
    try:
        before = tracemalloc.take_snapshot()
        flood(server, hello, 98_000, 2_000)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert grown < 64 * 1024
    assert (server.handshake_count, server.association_count) == (0, 0)
    assert server.next_deadline() is None
    assert server.counters.hello_verify == 100_000


def test_garbage_for_unknown_addresses_is_counted_not_answered() -> None:
    server = DtlsServer(lambda serial: [])
    for datagram in (b"", b"\x17\xfe\xfd" + bytes(20), b"\x16\xfe\xfd\x00\x01" + bytes(20)):
        assert server.receive(datagram, ("203.0.113.1", 7), 0.0) == Output()
    assert server.counters.dropped == 3
