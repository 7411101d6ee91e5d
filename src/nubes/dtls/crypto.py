"""The TLS 1.2 PSK key schedule and the AEAD ciphers of the offered suites.

Why we compute keys that the DTLS library already computes: python-mbedtls
does not expose them, and we need them twice. During a handshake, to find
which of a device's two valid keys the client used, by trying to open its
encrypted Finished record with each (`transcript`). After the handshake, to
run the record layer in Python (`records`): an Mbed TLS context costs about
45 KB per association at rest and about 100 KB once traffic has gone
through its two 32 KB ring buffers, while the record layer state is a few
hundred bytes.

The AES work itself is done by Mbed TLS (`mbedtls.cipher`). Its AEAD object
opens CCM records with any tag length, but only seals with a 16-byte tag,
so CCM_8 sealing is built here from CBC-MAC and CTR (RFC 3610, the standard
construction, checked against Mbed TLS's own 16-byte output in the tests).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Final

from mbedtls.cipher import _cipher
from mbedtls.exceptions import TLSError

MASTER_SECRET_SIZE: Final = 48
EXPLICIT_NONCE_SIZE: Final = 8


@dataclass(frozen=True, slots=True)
class Suite:
    """What the record layer needs to know about a PSK AEAD cipher suite."""

    name: str
    code: int
    mode: str
    """The AES mode, as python-mbedtls names it: "CCM" or "GCM"."""
    tag_size: int
    key_size: int = 16
    fixed_iv_size: int = 4


_ALL = (
    Suite("TLS-PSK-WITH-AES-128-CCM-8", 0xC0A8, "CCM", 8),
    Suite("TLS-PSK-WITH-AES-128-CCM", 0xC0A4, "CCM", 16),
    Suite("TLS-PSK-WITH-AES-128-GCM-SHA256", 0x00A8, "GCM", 16),
)
SUITES: Final[dict[str, Suite]] = {suite.name: suite for suite in _ALL}
SUITES_BY_CODE: Final[dict[int, Suite]] = {suite.code: suite for suite in _ALL}


@dataclass(frozen=True, slots=True)
class TrafficKeys:
    """The write keys and fixed IVs of both sides (RFC 5246 6.3)."""

    client_key: bytes
    server_key: bytes
    client_iv: bytes
    server_iv: bytes


def prf(secret: bytes, label: bytes, seed: bytes, size: int) -> bytes:
    """The TLS 1.2 PRF with SHA-256 (RFC 5246 5), which all offered suites use."""
    seed = label + seed
    out = b""
    a = seed
    while len(out) < size:
        a = hmac.digest(secret, a, hashlib.sha256)
        out += hmac.digest(secret, a + seed, hashlib.sha256)
    return out[:size]


def psk_premaster(psk: bytes) -> bytes:
    """The plain-PSK premaster secret (RFC 4279 2): zeros, then the key."""
    size = len(psk).to_bytes(2, "big")
    return size + bytes(len(psk)) + size + psk


def master_secret(
    psk: bytes, client_random: bytes, server_random: bytes, session_hash: bytes | None
) -> bytes:
    """The master secret, extended (RFC 7627) when a session hash is given."""
    premaster = psk_premaster(psk)
    if session_hash is not None:
        return prf(premaster, b"extended master secret", session_hash, MASTER_SECRET_SIZE)
    return prf(premaster, b"master secret", client_random + server_random, MASTER_SECRET_SIZE)


def traffic_keys(
    master: bytes, client_random: bytes, server_random: bytes, suite: Suite
) -> TrafficKeys:
    """The key block of an AEAD suite: no MAC keys, two keys, two fixed IVs."""
    k, iv = suite.key_size, suite.fixed_iv_size
    block = prf(master, b"key expansion", server_random + client_random, 2 * k + 2 * iv)
    return TrafficKeys(
        client_key=block[:k],
        server_key=block[k : 2 * k],
        client_iv=block[2 * k : 2 * k + iv],
        server_iv=block[2 * k + iv : 2 * k + 2 * iv],
    )


def seal(suite: Suite, key: bytes, nonce: bytes, aad: bytes, plaintext: bytes) -> bytes:
    """Ciphertext followed by the tag."""
    if suite.mode == "CCM" and suite.tag_size != 16:
        ciphertext, tag = _ccm_seal(key, nonce, aad, plaintext, suite.tag_size)
    else:
        ciphertext, tag = _aes(key, suite.mode, nonce, aad).encrypt(plaintext)
    return bytes(ciphertext + tag)


def open_sealed(suite: Suite, key: bytes, nonce: bytes, aad: bytes, sealed: bytes) -> bytes | None:
    """The plaintext, or None when the tag does not verify."""
    if len(sealed) < suite.tag_size:
        return None
    cut = len(sealed) - suite.tag_size
    try:
        return bytes(_aes(key, suite.mode, nonce, aad).decrypt(sealed[:cut], sealed[cut:]))
    except TLSError:
        return None


def _ccm_seal(
    key: bytes, nonce: bytes, aad: bytes, plaintext: bytes, tag_size: int
) -> tuple[bytes, bytes]:
    """AES-CCM (RFC 3610) with a short tag, from CBC-MAC and CTR."""
    size_length = 15 - len(nonce)
    flags = (0x40 if aad else 0) | ((tag_size - 2) // 2) << 3 | (size_length - 1)
    b0 = bytes([flags]) + nonce + len(plaintext).to_bytes(size_length, "big")
    blocks = b0 + _padded(len(aad).to_bytes(2, "big") + aad) + _padded(plaintext)
    mac = bytes(_aes(key, "CBC", bytes(16)).encrypt(blocks)[len(blocks) - 16 : len(blocks)])
    counter0 = bytes([size_length - 1]) + nonce + bytes(size_length)
    stream = bytes(_aes(key, "CTR", counter0).encrypt(bytes(16) + plaintext))
    tag = bytes(m ^ s for m, s in zip(mac[:tag_size], stream[:tag_size], strict=True))
    return stream[16:], tag


# The binding's cipher classes, used directly: `AES.new` costs ~4 us more
# per object, and its stubs type the modes as int. Untyped on purpose.
_CIPHER: Any = _cipher.Cipher
_AEAD: Any = _cipher.AEADCipher
_MODES: Final[dict[str, Any]] = {
    name: getattr(_cipher.Mode, name) for name in ("CBC", "CTR", "CCM", "GCM")
}


def _aes(key: bytes, mode: str, iv: bytes, aad: bytes | None = None) -> Any:
    """A one-use Mbed TLS AES object (its IV is fixed when it is made)."""
    name = f"AES-{len(key) * 8}-{mode}".encode()
    if aad is None:
        return _CIPHER(name, key, _MODES[mode], iv)
    return _AEAD(name, key, _MODES[mode], iv, aad)


def _padded(data: bytes) -> bytes:
    return data + bytes(-len(data) % 16)
