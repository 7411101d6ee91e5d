"""Key rotation: a device with two valid keys gets in with either, first time."""

from __future__ import annotations

from nubes.dtls import DtlsServer, HandshakeFailed
from nubes.dtls.keys import KeyPreference
from nubes.dtls.mbedtls_engine import MAX_HELD
from nubes.dtls.wire import parse_records
from unit.dtls.kit import KEY, OLD_KEY, SERIAL, Link, PskClient, event_types, new_server

BOTH = {SERIAL: [KEY, OLD_KEY]}


def test_either_valid_key_is_accepted_on_the_first_handshake() -> None:
    server = new_server(BOTH)
    for round_, key in enumerate([OLD_KEY, KEY, OLD_KEY, OLD_KEY, KEY]):
        link = Link(server, PskClient(key=key), address=("192.0.2.1", 2000 + round_))
        association = link.handshake()
        assert association is not None
        assert association.key_index == (0 if key == KEY else 1)
        assert "HandshakeFailed" not in event_types(link.events)
        assert link.echo(b"ping") == [b"gnip"]


def test_a_key_outside_the_valid_ones_still_fails_with_bad_key() -> None:
    link = Link(new_server(BOTH), PskClient(key=b"\x42" * 20))
    assert link.handshake() is None
    assert isinstance(link.events[-1], HandshakeFailed)
    assert link.events[-1].reason == "bad_key"


def test_a_flight_split_over_datagrams_is_held_until_the_finished_arrives() -> None:
    link = Link(new_server(BOTH), PskClient(key=OLD_KEY))
    pending = link.client.start()
    pending = link.client.handle(link.to_server(pending))  # cookie
    pending = link.client.handle(link.to_server(pending))  # ServerHello .. Done
    (flight,) = pending
    pieces = [r.header + r.fragment for r in parse_records(flight)]
    assert len(pieces) == 3  # ClientKeyExchange, ChangeCipherSpec, Finished
    assert link.to_server(pieces[:2]) == []  # held: no answer, no failure yet
    link.client.handle(link.to_server(pieces[2:]))
    association = link.server.association(link.address)
    assert association is not None
    assert association.key_index == 1


def split_with_junk(link: Link, junk: int) -> None:
    """Run a handshake whose last flight is cut up and padded so no key can be probed."""
    pending = link.client.start()
    pending = link.client.handle(link.to_server(pending))
    pending = link.client.handle(link.to_server(pending))
    (flight,) = pending
    exchange, *rest = [r.header + r.fragment for r in parse_records(flight)]
    link.to_server([exchange] + [b"junk"] * junk)
    link.client.handle(link.to_server(rest))


def test_when_the_key_cannot_be_probed_a_bad_key_makes_the_next_handshake_try_the_other() -> None:
    server = new_server(BOTH)
    first = Link(server, PskClient(key=OLD_KEY), address=("192.0.2.1", 1))
    split_with_junk(first, junk=MAX_HELD)
    assert isinstance(first.events[-1], HandshakeFailed)
    assert first.events[-1].reason == "bad_key"

    second = Link(server, PskClient(key=OLD_KEY), address=("192.0.2.1", 2))
    split_with_junk(second, junk=MAX_HELD)
    association = server.association(second.address)
    assert association is not None
    assert association.key_index == 1


def test_a_single_key_device_is_never_held() -> None:
    link = Link(DtlsServer(lambda serial: [KEY]), PskClient())
    pending = link.client.start()
    pending = link.client.handle(link.to_server(pending))
    pending = link.client.handle(link.to_server(pending))
    exchange = parse_records(pending[0])[0]
    answer = link.to_server([exchange.header + exchange.fragment])
    assert answer == []
    assert link.server.handshake_count == 1


def test_key_preference_remembers_failures_and_forgets_the_oldest() -> None:
    preference = KeyPreference(capacity=2)
    assert preference.first(7, 2) == 0
    preference.failed(7, 0, 2)
    assert preference.first(7, 2) == 1
    preference.failed(8, 0, 2)
    preference.failed(9, 1, 2)
    assert len(preference) == 2
    assert preference.first(7, 2) == 0  # forgotten
    assert preference.first(9, 2) == 0  # wrapped around
    preference.succeeded(8, 0)
    assert preference.first(8, 2) == 0
    preference.failed(10, 0, 1)  # a single key has nothing to rotate to
    assert preference.first(10, 1) == 0
