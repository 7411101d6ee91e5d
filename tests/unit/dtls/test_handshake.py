"""Handshakes between a python-mbedtls client and `DtlsServer`, in memory."""

from __future__ import annotations

import pytest

from nubes.dtls import (
    DtlsServer,
    Established,
    HandshakeFailed,
    MbedtlsEngine,
    NoAssociation,
    RecordTooLarge,
    identity_of,
    wire,
)
from nubes.errors import ConfigError, ProtocolError
from unit.dtls.kit import CCM_8, KEY, OLD_KEY, SERIAL, Link, PskClient, event_types, new_server


def test_a_full_handshake_establishes_an_association() -> None:
    link = Link(new_server(), PskClient())
    association = link.handshake()
    assert link.client.established
    assert association is not None
    assert association.identity == "hsn:2159017985"
    assert association.serial == SERIAL
    assert association.suite == CCM_8
    assert association.key_index == 0
    assert association.established_at == association.last_activity == link.now
    assert event_types(link.events) == ["HandshakeStarted", "Established"]
    assert link.events[1] == Established(association)


def test_application_records_go_both_ways_one_record_each() -> None:
    link = Link(new_server(), PskClient())
    link.handshake()
    assert link.echo(b"\xc0\x00hello") == [b"olleh\x00\xc0"]
    link.now += 5
    assert link.echo(b"x" * 300) == [b"x" * 300]
    assert [record for _, record in link.records] == [b"\xc0\x00hello", b"x" * 300]
    assert link.server.association(link.address).last_activity == link.now  # type: ignore[union-attr]


def test_two_records_in_one_datagram_are_two_records() -> None:
    link = Link(new_server(), PskClient())
    link.handshake()
    datagram = b"".join(link.client.send(b"one") + link.client.send(b"two"))
    link.to_server([datagram])
    assert [record for _, record in link.records] == [b"one", b"two"]


def test_the_first_client_hello_gets_a_cookie_request_and_leaves_no_state() -> None:
    server = new_server()
    client = PskClient()
    out = server.receive(client.start()[0], ("192.0.2.1", 1), 0.0)
    assert len(out.datagrams) == 1
    assert out.datagrams[0][0][13] == 3  # HelloVerifyRequest
    assert out.events == []
    assert (server.handshake_count, server.association_count) == (0, 0)
    assert server.next_deadline() is None
    assert server.counters.hello_verify == 1


def test_the_cookie_is_bound_to_the_address() -> None:
    server = new_server()
    client = PskClient()
    cookie_request = server.receive(client.start()[0], ("192.0.2.1", 1), 0.0).datagrams[0][0]
    hello_with_cookie = client.handle([cookie_request])[0]
    out = server.receive(hello_with_cookie, ("192.0.2.99", 1), 0.0)
    assert out.events == []
    assert server.handshake_count == 0
    assert out.datagrams[0][0][13] == 3  # a new cookie for the other address


def test_a_wrong_key_fails_with_bad_key_and_leaves_no_association() -> None:
    link = Link(new_server(), PskClient(key=b"\xee" * 16))
    assert link.handshake() is None
    failed = link.events[-1]
    assert isinstance(failed, HandshakeFailed)
    assert (failed.reason, failed.identity) == ("bad_key", identity_of(SERIAL))
    assert link.client.error is not None  # it got the server's alert
    assert (link.server.handshake_count, link.server.association_count) == (0, 0)


@pytest.mark.parametrize(
    "identity", ["hsn:1", "hsn:", "hsn:12a", "serial:2159017985", "hsn:+5", "hsn:\u0661\u0662"]
)
def test_an_unknown_or_malformed_identity_fails_with_unknown_identity(identity: str) -> None:
    link = Link(new_server(), PskClient(identity=identity))
    assert link.handshake() is None
    failed = link.events[-1]
    assert isinstance(failed, HandshakeFailed)
    assert failed.reason == "unknown_identity"
    assert failed.identity == identity
    assert link.server.handshake_count == 0


def test_keys_of_a_bad_length_are_ignored() -> None:
    server = new_server({SERIAL: [b"short", KEY, b"x" * 33]})
    link = Link(server, PskClient())
    association = link.handshake()
    assert association is not None
    assert association.key_index == 0  # index among the valid keys


def test_a_lookup_that_raises_means_unknown_identity() -> None:
    def broken(serial: int) -> list[bytes]:
        raise RuntimeError("cache down")

    link = Link(DtlsServer(broken), PskClient())
    assert link.handshake() is None
    assert isinstance(link.events[-1], HandshakeFailed)
    assert link.events[-1].reason == "unknown_identity"


@pytest.mark.parametrize(
    "suite",
    ["TLS-PSK-WITH-AES-128-CCM-8", "TLS-PSK-WITH-AES-128-CCM", "TLS-PSK-WITH-AES-128-GCM-SHA256"],
)
def test_every_offered_suite_works_with_the_python_record_layer(suite: str) -> None:
    suites = (
        "TLS-PSK-WITH-AES-128-CCM-8",
        "TLS-PSK-WITH-AES-128-CCM",
        "TLS-PSK-WITH-AES-128-GCM-SHA256",
    )
    link = Link(new_server(suites=suites), PskClient(suites=(suite,)))
    association = link.handshake()
    assert association is not None
    assert association.suite == suite
    assert link.echo(b"payload") == [b"daolyap"]


def test_a_client_without_the_offered_suite_is_refused() -> None:
    link = Link(new_server(), PskClient(suites=("TLS-PSK-WITH-AES-128-GCM-SHA256",)))
    assert link.handshake() is None
    assert link.server.handshake_count == 0
    assert link.server.counters.rejected == 1


def test_the_library_can_keep_the_records() -> None:
    engine = MbedtlsEngine(lambda serial: [KEY] if serial == SERIAL else [], python_records=False)
    link = Link(DtlsServer(lambda serial: [], engine=engine), PskClient())
    assert link.handshake() is not None
    assert link.echo(b"abc") == [b"cba"]
    link.to_server(link.client.close())
    assert event_types(link.events)[-1] == "Closed"
    assert link.events[-1].reason == "peer_closed"  # type: ignore[union-attr]


def test_unknown_suites_are_a_configuration_error() -> None:
    with pytest.raises(ConfigError):
        new_server(suites=("TLS-PSK-WITH-AES-256-CCM-8",))
    with pytest.raises(ConfigError):
        new_server(suites=())


def test_send_needs_a_live_association_and_a_record_that_fits() -> None:
    link = Link(new_server(), PskClient())
    with pytest.raises(NoAssociation) as caught:
        link.server.send(link.address, b"x", link.now)
    assert isinstance(caught.value, ProtocolError)
    link.handshake()
    with pytest.raises(RecordTooLarge):
        link.server.send(link.address, b"x" * 16_385, link.now)


def test_old_key_constant_is_a_valid_psk() -> None:
    assert 16 <= len(OLD_KEY) <= 32


def test_the_server_flight_has_extended_master_secret_and_no_identity_hint() -> None:
    link = Link(new_server(), PskClient())
    hello_with_cookie = link.client.handle(link.to_server(link.client.start()))
    (flight,) = link.to_server(hello_with_cookie)
    messages = [
        message
        for record in wire.parse_records(flight)
        for message in wire.parse_handshake(record.fragment)
    ]
    assert [m.msg_type for m in messages] == [wire.SERVER_HELLO, wire.SERVER_HELLO_DONE]
    extensions = wire.server_hello_extensions(messages[0].body)
    assert extensions is not None
    assert wire.EXT_EXTENDED_MASTER_SECRET in extensions
    # Mbed TLS 2.28 sends no ServerKeyExchange for plain PSK, so no hint, and no CID.
    assert wire.EXT_CONNECTION_ID not in extensions
    assert wire.EXT_CONNECTION_ID_DRAFT not in extensions
