"""The codec hash: how a device names the codec its data needs.

Every UPLOAD_DATA message starts with the 8-byte hash of the decoder the
firmware was built with, so the cloud finds the codec without knowing the
firmware. The hash is the one `gen-codec.py` bakes into the firmware:
SHA-256 of the CBOR-encoded YAML document, read as four little-endian uint64
words, XORed together. It travels big-endian; we show it as 16 hex digits.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Final

from nubes.errors import CodecError

HASH_SIZE: Final = 8
"""Bytes of a codec hash on the wire."""

_WORDS: Final = struct.Struct("<4Q")


def codec_hash(cbor_bytes: bytes) -> int:
    """The 64-bit codec hash of the CBOR bytes a device uploads."""
    w0, w1, w2, w3 = _WORDS.unpack(hashlib.sha256(cbor_bytes).digest())
    return int(w0 ^ w1 ^ w2 ^ w3)


def hash_hex(value: int) -> str:
    """16 lowercase hex digits, in the byte order of the wire."""
    if not 0 <= value < 1 << 64:
        raise CodecError(f"a codec hash is a uint64, got {value}")
    return f"{value:016x}"


def hash_from_bytes(data: bytes) -> int:
    """The hash from its 8 big-endian bytes as a message carries them."""
    if len(data) != HASH_SIZE:
        raise CodecError(f"a codec hash is {HASH_SIZE} bytes, got {len(data)}")
    return int.from_bytes(data, "big")
