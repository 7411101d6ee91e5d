"""The Python record layer: sealing, opening, replay window, epochs."""

from __future__ import annotations

from nubes.dtls import wire
from nubes.dtls.crypto import SUITES, TrafficKeys
from nubes.dtls.records import MAX_SEQUENCE, RecordLayer

SUITE = SUITES["TLS-PSK-WITH-AES-128-CCM-8"]
KEYS = TrafficKeys(b"c" * 16, b"s" * 16, b"C" * 4, b"S" * 4)
MIRROR = TrafficKeys(b"s" * 16, b"c" * 16, b"S" * 4, b"C" * 4)


def client_record(
    sequence: int, payload: bytes, content_type: int = wire.APPLICATION_DATA
) -> bytes:
    """A record as the client would seal it (server layer with keys swapped)."""
    layer = RecordLayer(SUITE, MIRROR, epoch=1, next_sequence=sequence)
    return layer.seal(content_type, payload)


def opened(layer: RecordLayer, datagram: bytes) -> list[bytes]:
    found = []
    for record in wire.parse_records(datagram):
        result = layer.open(record)
        if result is not None:
            found.append(result.plaintext)
    return found


def test_a_record_opens_once_and_replays_are_dropped() -> None:
    layer = RecordLayer(SUITE, KEYS, epoch=1, next_sequence=1)
    datagram = client_record(5, b"hello")
    assert opened(layer, datagram) == [b"hello"]
    assert opened(layer, datagram) == []


def test_the_window_accepts_late_records_within_64_and_drops_older_ones() -> None:
    layer = RecordLayer(SUITE, KEYS, epoch=1, next_sequence=1)
    assert opened(layer, client_record(100, b"new")) == [b"new"]
    assert opened(layer, client_record(37, b"late")) == [b"late"]
    assert opened(layer, client_record(36, b"too late")) == []
    assert opened(layer, client_record(37, b"late")) == []


def test_forged_and_other_epoch_records_are_dropped_without_touching_the_window() -> None:
    layer = RecordLayer(SUITE, KEYS, epoch=1, next_sequence=1)
    good = client_record(9, b"x")
    forged = good[:-1] + bytes([good[-1] ^ 1])
    assert opened(layer, forged) == []
    other_epoch = good[:3] + b"\x00\x02" + good[5:]
    assert opened(layer, other_epoch) == []
    assert opened(layer, good) == [b"x"]


def test_sealed_records_carry_increasing_sequence_numbers() -> None:
    layer = RecordLayer(SUITE, KEYS, epoch=1, next_sequence=1)
    first, second = wire.parse_records(layer.seal(23, b"a") + layer.seal(23, b"b"))
    assert (first.epoch, first.sequence, second.sequence) == (1, 1, 2)


def test_sealing_stops_when_sequence_numbers_run_out() -> None:
    layer = RecordLayer(SUITE, KEYS, epoch=1, next_sequence=MAX_SEQUENCE + 1)
    try:
        layer.seal(23, b"a")
    except ValueError:
        return
    raise AssertionError("sealed past the last sequence number")
