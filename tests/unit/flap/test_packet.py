"""The FLAP header: flags, sequence numbers, their wrap and the log notation."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nubes.errors import PacketError
from nubes.flap import MAX_SEQ, RESET, A, F, L, P, Packet, next_seq


def test_flags_are_the_top_nibble() -> None:
    assert (F, L, A, P) == (0x8, 0x4, 0x2, 0x1)
    assert Packet(F | L, 0).encode() == bytes.fromhex("c000")
    assert Packet(A | P, 1).encode() == bytes.fromhex("3001")


def test_session_start_headers(vectors: dict[str, Any]) -> None:
    headers = [bytes.fromhex(h) for h in vectors["session_start_headers"]]
    packets = [Packet.decode(header) for header in headers]
    assert [(p.flag_text, p.seq) for p in packets] == [
        ("[FLxx]", 0),
        ("[xxAP]", 1),
        ("[xxxP]", 2),
        ("[FLxx]", 3),
        ("[xxAx]", 4),
    ]


def test_decode_splits_header_and_data() -> None:
    packet = Packet.decode(bytes.fromhex("c00381000001886ccd11e5"))
    assert packet == Packet(F | L, 3, bytes.fromhex("81000001886ccd11e5"))
    assert str(packet) == "3 [FLxx] len 9"


@pytest.mark.parametrize("raw", [b"", b"\x20"])
def test_decode_refuses_a_short_packet(raw: bytes) -> None:
    with pytest.raises(PacketError) as caught:
        Packet.decode(raw)
    assert caught.value.reason == "too short"


def test_decode_refuses_an_ack_with_data() -> None:
    with pytest.raises(PacketError) as caught:
        Packet.decode(bytes.fromhex("2014ff"))
    assert caught.value.reason == "ack with data"


def test_reset_packet_is_all_zero() -> None:
    assert RESET.encode() == b"\x00\x00"
    assert RESET.flag_text == "[xxxx]"


@pytest.mark.parametrize("packet", [Packet(16, 0), Packet(0, 4096), Packet(-1, 1)])
def test_encode_refuses_values_out_of_range(packet: Packet) -> None:
    with pytest.raises(ValueError, match="out of range"):
        packet.encode()


@pytest.mark.parametrize(
    ("seq", "step", "expected"),
    [(0, 1, 1), (0, 2, 2), (1, 1, 2), (4094, 1, 4095), (4095, 1, 1), (4094, 2, 1), (4095, 2, 2)],
)
def test_next_seq_wraps_from_4095_to_1(seq: int, step: int, expected: int) -> None:
    assert next_seq(seq, step) == expected


@given(st.integers(0, MAX_SEQ), st.integers(1, 3 * MAX_SEQ))
def test_next_seq_never_yields_zero(seq: int, step: int) -> None:
    assert 1 <= next_seq(seq, step) <= MAX_SEQ


@given(st.binary(max_size=600))
def test_decode_raises_only_packet_errors(raw: bytes) -> None:
    try:
        packet = Packet.decode(raw)
    except PacketError:
        return
    assert packet.encode() == raw


@given(st.integers(0, 15), st.integers(0, MAX_SEQ), st.binary(max_size=40))
def test_encode_and_decode_round_trip(flags: int, seq: int, data: bytes) -> None:
    data = b"" if flags & A else data
    assert Packet.decode(Packet(flags, seq, data).encode()) == Packet(flags, seq, data)
