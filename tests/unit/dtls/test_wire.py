"""The parsers take any bytes: malformed input gives None or nothing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from nubes.dtls import wire
from unit.dtls.kit import PskClient


def test_a_client_hello_is_recognised_and_its_random_read() -> None:
    hello = PskClient().start()[0]
    random = wire.client_hello_random(hello)
    assert random is not None
    assert len(random) == 32
    assert random == hello[13 + 12 + 2 : 13 + 12 + 2 + 32]


def test_only_an_epoch_0_client_hello_first_counts() -> None:
    hello = PskClient().start()[0]
    assert wire.client_hello_random(hello[:3] + b"\x00\x01" + hello[5:]) is None
    assert wire.client_hello_random(b"\x17" + hello[1:]) is None
    assert wire.client_hello_random(hello[:40]) is None
    server_hello_like = hello[:13] + b"\x02" + hello[14:]
    assert wire.client_hello_random(server_hello_like) is None


def test_records_stop_at_a_truncated_tail() -> None:
    record = wire.record_header(23, 1, 5, 3) + b"abc"
    assert len(wire.parse_records(record + record[:-1])) == 1
    (parsed,) = wire.parse_records(record)
    assert (parsed.content_type, parsed.epoch, parsed.sequence, parsed.fragment) == (
        23,
        1,
        5,
        b"abc",
    )


def test_handshake_messages_rebuild_their_unfragmented_header() -> None:
    body = b"\x00\x03abc"
    fragment = (
        b"\x10" + (5).to_bytes(3, "big") + b"\x00\x02" + bytes(3) + (5).to_bytes(3, "big") + body
    )
    (message,) = wire.parse_handshake(fragment)
    assert message.complete
    assert message.transcript_bytes() == fragment
    assert wire.psk_identity(message.body) == b"abc"
    assert wire.psk_identity(b"\x00\x09abc") is None


def test_server_hello_fields() -> None:
    body = b"\xfe\xfd" + bytes(32) + b"\x00" + b"\xc0\xa8" + b"\x00" + b"\x00\x04\x00\x17\x00\x00"
    assert wire.server_hello_suite(body) == 0xC0A8
    assert wire.server_hello_extensions(body) == {23}
    assert wire.server_hello_extensions(body[:-1]) is None
    assert wire.server_hello_extensions(body[:-6]) == set()


@given(st.binary(max_size=400))
def test_parsers_accept_any_bytes(data: bytes) -> None:
    wire.client_hello_random(data)
    wire.parse_handshake(data)
    wire.server_hello_suite(data)
    wire.server_hello_extensions(data)
    wire.psk_identity(data)
    for record in wire.parse_records(data):
        assert len(record.header) == wire.RECORD_HEADER
