"""Reading one CBOR item from untrusted bytes."""

from __future__ import annotations

import pytest

from nubes.codec.cbor import MAX_DEPTH, read_cbor
from nubes.errors import CodecError


def test_reads_indefinite_lengths_as_firmware_writes_them() -> None:
    # {_ 0: {_ 1: 2}, 3: [_ 4, 5]}
    assert read_cbor(bytes.fromhex("bf00bf0102ff039f0405ffff")) == {0: {1: 2}, 3: [4, 5]}


@pytest.mark.parametrize(
    ("hex_bytes", "value"),
    [
        ("c11a514b67b0", 1363896240),  # epoch datetime: its number
        ("c074323031332d30332d32315432303a30343a30305a", "2013-03-21T20:04:00Z"),
        ("d82363612b62", "a+b"),  # regular expression: its text, never compiled
        ("d9010283010203", [1, 2, 3]),  # set: its array
        ("d8ff01", 1),  # a tag cbor2 does not know
        ("c249010000000000000000", 2**64),  # bignums stay integers
        ("c349010000000000000000", -(2**64) - 1),
        ("d9d9f701", 1),  # self-described CBOR
    ],
)
def test_tags_yield_their_content(hex_bytes: str, value: object) -> None:
    assert read_cbor(bytes.fromhex(hex_bytes)) == value


def test_tagged_map_key_stays_hashable() -> None:
    # {1(["a"]): 2}: a tag around an array, in key position
    assert read_cbor(bytes.fromhex("a1c1816161" + "02")) == {("a",): 2}


@pytest.mark.parametrize(
    ("hex_bytes", "reason"),
    [
        ("", "premature end"),
        ("a201", "premature end"),
        ("5bffffffffffffffff", "premature end"),
        ("ff", "break"),
        ("0001", "trailing bytes after the first item (1)"),
        ("c201", "bignum"),
    ],
)
def test_invalid_bytes_raise_codec_error(hex_bytes: str, reason: str) -> None:
    with pytest.raises(CodecError, match=r"^invalid CBOR: ") as caught:
        read_cbor(bytes.fromhex(hex_bytes))
    assert reason in str(caught.value)


def test_nesting_is_capped() -> None:
    assert read_cbor(b"\x81" * (MAX_DEPTH - 1) + b"\x00") is not None
    with pytest.raises(CodecError, match="depth"):
        read_cbor(b"\x81" * (MAX_DEPTH + 1) + b"\x00")
