"""Replacement, port reuse, retransmission, reaping, expiry and closing."""

from __future__ import annotations

import time

import pytest
from mbedtls.exceptions import TLSError

from nubes.dtls import Closed, HandshakeFailed, HandshakeStarted, identity_of
from unit.dtls.kit import KEY, SERIAL, Link, PskClient, event_types, new_server

OTHER = 1234567


def test_a_new_handshake_of_the_same_device_replaces_its_association() -> None:
    server = new_server()
    old = Link(server, PskClient(), address=("192.0.2.1", 1000))
    old_association = old.handshake()
    new = Link(server, PskClient(), address=("192.0.2.2", 2000), now=old.now + 60)
    new_association = new.handshake()
    assert new_association is not None
    assert Closed(old_association, "replaced") in new.events  # type: ignore[arg-type]
    assert server.association(old.address) is None
    assert server.association_count == 1
    assert new.echo(b"still here") == [b"ereh llits"]


def test_a_client_hello_without_cookie_does_not_disturb_a_live_association() -> None:
    server = new_server()
    link = Link(server, PskClient())
    association = link.handshake()
    intruder = PskClient(identity=identity_of(OTHER))
    answers = link.to_server(intruder.start())
    assert len(answers) == 1
    assert answers[0][13] == 3
    assert server.association(link.address) is association
    assert event_types(link.events) == ["HandshakeStarted", "Established"]
    assert link.echo(b"ok") == [b"ko"]


def test_a_new_client_on_a_live_address_replaces_the_association_once_its_cookie_is_valid() -> None:
    server = new_server({SERIAL: [KEY], OTHER: [KEY]})
    link = Link(server, PskClient())
    old_association = link.handshake()
    reuse = Link(server, PskClient(identity=identity_of(OTHER)), address=link.address)
    association = reuse.handshake()
    assert association is not None
    assert association.serial == OTHER
    assert event_types(reuse.events) == ["Closed", "HandshakeStarted", "Established"]
    assert reuse.events[0] == Closed(old_association, "replaced")  # type: ignore[arg-type]
    assert reuse.echo(b"new") == [b"wen"]


def test_a_second_client_hello_on_a_half_open_address_supersedes_the_handshake() -> None:
    server = new_server()
    first = Link(server, PskClient())
    first.client.handle(first.to_server(first.client.handle(first.to_server(first.client.start()))))
    assert server.handshake_count == 1
    second = Link(server, PskClient(), address=first.address)
    assert second.handshake() is not None
    failed = second.events[0]
    assert isinstance(failed, HandshakeFailed)
    assert failed.reason == "superseded"


def start_until_server_flight(link: Link) -> list[bytes]:
    """Cookie exchange done, ClientHello with cookie sent: the server's flight."""
    hello_with_cookie = link.client.handle(link.to_server(link.client.start()))
    return link.to_server(hello_with_cookie)


def test_a_lost_flight_is_retransmitted_with_doubling_waits_up_to_the_cap() -> None:
    server = new_server(retransmit_max=4.0)
    link = Link(server, PskClient(), now=0.0)
    flight = start_until_server_flight(link)
    assert server.next_deadline() == 1.0
    sent_at = []
    for tick in range(1, 20):
        if link.poll(tick * 0.5) == flight:
            sent_at.append(tick * 0.5)
    assert sent_at == [1.0, 3.0, 7.0]  # then 4 s apart (cap): 11.0, 15.0, ...
    assert link.poll(11.0) == flight
    link.client.handle(flight)
    link.to_server(link.client.last_flight)
    assert server.association(link.address) is not None


def test_a_repeated_client_hello_gets_the_flight_again() -> None:
    server = new_server()
    link = Link(server, PskClient())
    hello_with_cookie = link.client.handle(link.to_server(link.client.start()))
    flight = link.to_server(hello_with_cookie)
    assert link.to_server(hello_with_cookie) == flight
    assert event_types(link.events) == ["HandshakeStarted"]


def test_a_lost_final_flight_is_sent_again_when_the_client_repeats_its_own() -> None:
    server = new_server()
    client = PskClient(retransmit_after=0.05)
    lost = []

    def drop_change_cipher_spec(datagram: bytes) -> bool:
        if datagram[0] == 20 and not lost:
            lost.append(datagram)
            return True
        return False

    link = Link(server, client, drop_to_client=drop_change_cipher_spec)
    assert link.handshake() is not None  # established on our side
    assert lost
    assert not client.established
    time.sleep(0.06)
    repeated = client.retransmit()
    assert repeated
    client.handle(link.to_server(repeated))
    assert client.established
    assert link.echo(b"after") == [b"retfa"]


def test_a_half_open_handshake_is_reaped_at_its_deadline() -> None:
    server = new_server(handshake_timeout=30.0)
    link = Link(server, PskClient(), now=0.0)
    start_until_server_flight(link)
    link.poll(29.9)
    assert server.handshake_count == 1
    link.poll(30.0)
    assert server.handshake_count == 0
    failed = link.events[-1]
    assert isinstance(failed, HandshakeFailed)
    assert failed.reason == "timeout"
    assert server.next_deadline() is None
    assert link.poll(1000.0) == []


def test_an_idle_association_expires_and_activity_postpones_it() -> None:
    server = new_server(idle_timeout=100.0)
    link = Link(server, PskClient(), now=0.0)
    association = link.handshake()
    assert server.next_deadline() == 100.0
    link.now = 60.0
    link.echo(b"alive")
    link.poll(100.0)
    assert server.association(link.address) is association
    link.poll(159.9)
    assert server.association(link.address) is association
    link.poll(160.0)
    assert server.association(link.address) is None
    assert link.events[-1] == Closed(association, "expired")  # type: ignore[arg-type]


def test_the_peer_closing_ends_the_association() -> None:
    server = new_server()
    link = Link(server, PskClient())
    association = link.handshake()
    link.to_server(link.client.close())
    assert link.events[-1] == Closed(association, "peer_closed")  # type: ignore[arg-type]
    assert server.association_count == 0


def test_closing_sends_close_notify() -> None:
    server = new_server()
    link = Link(server, PskClient())
    association = link.handshake()
    out = server.close(link.address, link.now)
    assert out.events == [Closed(association, "closed")]  # type: ignore[arg-type]
    ((datagram, to),) = out.datagrams
    assert to == link.address
    assert datagram[0] == 21
    with pytest.raises(TLSError) as caught:
        link.client.read([datagram])
    assert "close" in str(caught.value)
    assert server.close(link.address, link.now).events == []


def test_closing_a_half_open_handshake() -> None:
    server = new_server()
    link = Link(server, PskClient())
    start_until_server_flight(link)
    out = server.close(link.address, link.now)
    assert [(type(e).__name__, getattr(e, "reason", None)) for e in out.events] == [
        ("HandshakeFailed", "closed")
    ]
    assert server.handshake_count == 0


def test_a_full_handshake_table_drops_new_client_hellos_until_a_slot_frees() -> None:
    server = new_server(max_handshakes=2, handshake_timeout=10.0)
    links = [Link(server, PskClient(), address=("192.0.2.9", port), now=0.0) for port in (1, 2, 3)]
    for link in links[:2]:
        start_until_server_flight(link)
    assert server.handshake_count == 2
    assert links[2].to_server(links[2].client.start()) == []
    assert server.counters.busy == 1
    links[2].poll(10.0)  # the two half-open ones are reaped
    assert server.handshake_count == 0
    links[2].now = 10.0
    links[2].client = PskClient()
    assert links[2].handshake() is not None
    assert isinstance(links[2].events[0], HandshakeFailed)
    assert HandshakeStarted(links[2].address) in links[2].events


def test_a_late_duplicate_of_the_client_hello_does_not_end_the_association() -> None:
    server = new_server()
    link = Link(server, PskClient())
    hello_with_cookie = link.client.handle(link.to_server(link.client.start()))
    link.client.handle(link.to_server(hello_with_cookie))
    link.client.handle(link.to_server(link.client.last_flight))
    association = server.association(link.address)
    assert association is not None
    assert link.to_server(hello_with_cookie) == []
    assert server.association(link.address) is association
    assert link.echo(b"fine") == [b"enif"]
