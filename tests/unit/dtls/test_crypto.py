"""The key schedule and AEAD against published vectors and Mbed TLS itself."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nubes.dtls.crypto import SUITES, _ccm_seal, open_sealed, prf, psk_premaster, seal


def test_prf_matches_the_published_tls12_sha256_vector() -> None:
    # The TLS 1.2 PRF (SHA-256) vector circulated on the IETF TLS list.
    out = prf(
        bytes.fromhex("9bbe436ba940f017b17652849a71db35"),
        b"test label",
        bytes.fromhex("a0ba9f936cda311827a6f796ffd5198c"),
        100,
    )
    assert out.hex() == (
        "e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a"
        "6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab"
        "4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701"
        "87347b66"
    )


def test_ccm_with_an_8_byte_tag_matches_rfc_3610_packet_vector_1() -> None:
    ciphertext, tag = _ccm_seal(
        bytes(range(0xC0, 0xD0)),
        bytes.fromhex("00000003020100a0a1a2a3a4a5"),
        bytes(range(8)),
        bytes(range(8, 0x1F)),
        8,
    )
    assert (ciphertext + tag).hex() == (
        "588c979a61c663d2f066d0c2c0f989806d5f6b61dac38417e8d12cfdf926e0"
    )


def test_psk_premaster_is_zeros_then_the_key() -> None:
    assert psk_premaster(b"\xaa" * 2) == b"\x00\x02\x00\x00\x00\x02\xaa\xaa"


@pytest.mark.parametrize("name", sorted(SUITES))
@given(plaintext=st.binary(max_size=300), aad=st.binary(min_size=13, max_size=13))
def test_sealed_records_open_and_tampering_is_caught(
    name: str, plaintext: bytes, aad: bytes
) -> None:
    suite = SUITES[name]
    key, nonce = bytes(range(16)), bytes(range(12))
    sealed = seal(suite, key, nonce, aad, plaintext)
    assert len(sealed) == len(plaintext) + suite.tag_size
    assert open_sealed(suite, key, nonce, aad, sealed) == plaintext
    flipped = bytes([sealed[0] ^ 1]) + sealed[1:]
    assert open_sealed(suite, key, nonce, aad, flipped) is None
    assert open_sealed(suite, key, nonce, bytes(13), sealed) is None or aad == bytes(13)


def test_ccm_16_from_cbc_and_ctr_equals_mbedtls() -> None:
    suite = SUITES["TLS-PSK-WITH-AES-128-CCM"]
    key, nonce, aad, plaintext = b"k" * 16, b"n" * 12, b"a" * 13, b"p" * 45
    ours = _ccm_seal(key, nonce, aad, plaintext, 16)
    assert b"".join(ours) == seal(suite, key, nonce, aad, plaintext)


def test_too_short_input_does_not_open() -> None:
    suite = SUITES["TLS-PSK-WITH-AES-128-CCM-8"]
    assert open_sealed(suite, bytes(16), bytes(12), b"", b"1234567") is None
