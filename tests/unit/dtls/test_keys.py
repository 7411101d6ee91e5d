"""Identities and keys as the handshake sees them."""

from __future__ import annotations

import pytest

from nubes.dtls.keys import identity_of, serial_of, valid_keys


@pytest.mark.parametrize(
    ("identity", "serial"),
    [
        ("hsn:2159017985", 2159017985),
        ("hsn:0", 0),
        ("hsn:", None),
        ("hsn:-1", None),
        ("hsn: 1", None),
        ("hsn:1\n", None),
        ("HSN:1", None),
        ("hsn:\u0661", None),
        ("hsn:" + "9" * 21, None),
    ],
)
def test_serial_of(identity: str, serial: int | None) -> None:
    assert serial_of(identity) == serial


def test_identity_round_trip() -> None:
    assert serial_of(identity_of(2159017985)) == 2159017985


def test_valid_keys_keep_order_and_drop_bad_lengths_and_errors() -> None:
    keys = [b"a" * 15, b"b" * 16, b"c" * 32, b"d" * 33, bytearray(b"e" * 20)]
    assert valid_keys(lambda serial: keys, 1) == [b"b" * 16, b"c" * 32, b"e" * 20]

    def broken(serial: int) -> list[bytes]:
        raise LookupError(serial)

    assert valid_keys(broken, 1) == []
