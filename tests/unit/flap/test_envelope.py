"""The MAC envelope: the spec's vectors, invalid datagrams, base64 on port 5003."""

from __future__ import annotations

import base64
import contextlib
import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nubes.errors import EnvelopeError
from nubes.flap import (
    FRAGMENT_LIMIT,
    Packet,
    decode_base64,
    encode_base64,
    mac_tag,
    open_envelope,
    seal,
    verify,
)

from .conftest import CLAIM_TOKEN, SERIAL


def test_every_vector_is_sealed_byte_for_byte(vectors: dict[str, Any]) -> None:
    for vector in vectors["envelopes"]:
        packet = Packet(vector["flags"], vector["seq"], bytes.fromhex(vector["data"]))
        sealed = seal(CLAIM_TOKEN, vector["serial"], packet.encode())
        assert sealed.hex() == vector["datagram"], vector["what"]


def test_every_vector_opens_and_verifies(vectors: dict[str, Any]) -> None:
    for vector in vectors["envelopes"]:
        datagram = bytes.fromhex(vector["datagram"])
        envelope = open_envelope(datagram)
        assert envelope.serial == vector["serial"] == SERIAL
        assert envelope.tag == datagram[:8]
        assert envelope.signed == datagram[8:]
        assert verify(envelope, CLAIM_TOKEN), vector["what"]
        packet = Packet.decode(envelope.packet)
        assert (packet.flags, packet.seq, packet.data.hex()) == (
            vector["flags"],
            vector["seq"],
            vector["data"],
        )


def test_broken_tag_opens_but_does_not_verify(vectors: dict[str, Any]) -> None:
    broken = bytes.fromhex(vectors["invalid"][0]["datagram"])
    envelope = open_envelope(broken)
    assert envelope.serial == SERIAL
    assert not verify(envelope, CLAIM_TOKEN)


@pytest.mark.parametrize(("index", "reason"), [(1, "short"), (2, "serial 0")])
def test_invalid_vectors_are_refused(vectors: dict[str, Any], index: int, reason: str) -> None:
    with pytest.raises(EnvelopeError) as caught:
        open_envelope(bytes.fromhex(vectors["invalid"][index]["datagram"]))
    assert caught.value.reason == reason


def test_size_limits() -> None:
    assert verify(open_envelope(seal(CLAIM_TOKEN, SERIAL, b"\x00\x00")), CLAIM_TOKEN)  # 14 B
    largest = seal(CLAIM_TOKEN, SERIAL, bytes(1012))
    assert len(largest) == 1024
    assert verify(open_envelope(largest), CLAIM_TOKEN)
    with pytest.raises(EnvelopeError, match="short"):
        open_envelope(bytes(13))


def test_longer_datagram_is_truncated_and_fails_verification() -> None:
    envelope = open_envelope(seal(CLAIM_TOKEN, SERIAL, bytes(1013)))
    assert len(envelope.signed) == 1016
    assert envelope.serial == SERIAL
    assert not verify(envelope, CLAIM_TOKEN)


def test_fragment_limits_keep_replies_within_508_bytes() -> None:
    assert FRAGMENT_LIMIT == {"raw": 494, "base64": 360, "dtls": 300}
    assert len(seal(CLAIM_TOKEN, SERIAL, bytes(2 + FRAGMENT_LIMIT["raw"]))) == 508
    assert len(encode_base64(seal(CLAIM_TOKEN, SERIAL, bytes(2 + 360)))) <= 508


def test_base64_example(vectors: dict[str, Any]) -> None:
    example = vectors["base64_example"]
    datagram = bytes.fromhex(example["datagram"])
    assert encode_base64(datagram) == example["text"].encode()
    assert decode_base64(example["text"].encode()) == datagram


@pytest.mark.parametrize(
    "text",
    [
        b"R4rPuGuWPSuAsAABIBQ=\n",  # the documentation allows no line end
        b" R4rPuGuWPSuAsAABIBQ=",
        b"R4rPuGuWPSuAsAABIBQ",  # missing padding
        b"R4rPuGuWPSuAsAABIBQ==",  # excess padding
        b"R4rPuGuWPSuAsAABIB-=",  # URL-safe alphabet
        b"R4rP\xffuGuWPSuAsAABIBQ=",
        b"====",
    ],
)
def test_base64_is_strict(text: bytes) -> None:
    with pytest.raises(EnvelopeError) as caught:
        decode_base64(text)
    assert caught.value.reason == "invalid base64"


@given(st.binary(min_size=16, max_size=16), st.binary(max_size=1100))
def test_mac_tag_is_the_xor_fold_of_sha256(key: bytes, signed: bytes) -> None:
    digest = hashlib.sha256(key + signed).digest()
    folded = bytes(digest[i] ^ digest[i + 8] ^ digest[i + 16] ^ digest[i + 24] for i in range(8))
    assert mac_tag(key, signed) == folded


@given(st.binary(max_size=1100))
def test_open_envelope_raises_only_envelope_errors(datagram: bytes) -> None:
    try:
        envelope = open_envelope(datagram)
    except EnvelopeError:
        return
    assert envelope.serial != 0
    assert len(datagram) >= 14
    assert len(envelope.signed) <= 1016


@given(st.binary(max_size=1100))
def test_base64_round_trips_and_only_raises_envelope_errors(datagram: bytes) -> None:
    text = encode_base64(datagram)
    assert text == base64.b64encode(datagram)
    assert decode_base64(text) == datagram
    with contextlib.suppress(EnvelopeError):
        decode_base64(datagram)
