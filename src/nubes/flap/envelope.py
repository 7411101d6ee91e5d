"""The MAC envelope of FLAP (UDP 5002 raw, UDP 5003 base64 text).

```
offset 0   8 B  MAC tag       tag = XOR fold of SHA-256(claim token || datagram[8:])
offset 8   4 B  serial number (uint32, big-endian; 0 is never valid)
offset 12  n B  FLAP packet   (header + data)
```

The tag is a secret-prefix SHA-256 folded to 64 bits: `tag[i] = d[i] ^ d[i+8]
^ d[i+16] ^ d[i+24]`. Reading the digest as four big-endian uint64 words turns
the fold into three integer XORs, the cheapest form in CPython (one struct
unpack beats both a byte loop and shifting one 256-bit integer). There is no
encryption: the tag gives integrity and authenticity, the sequence rules of
the transfer give replay protection.

Opening an envelope only splits it; `verify` is separate because the gateway
must first look the serial number up to find the key, and it answers a known
serial with a bad tag (a reset) but never an unknown one. Datagrams over 1024
bytes are not refused but cut to 1024 bytes: the public documentation says
that a longer datagram "is truncated and fails verification", so a known
device that sends one gets a reset, as from HARDWARIO Cloud.

Port 5003 carries the whole envelope as standard base64 with padding (the
CHESTER modem sends text only, `AT#XSEND`). The public documentation allows
nothing else, so decoding is strict: no whitespace, no newline, no URL-safe
alphabet, no missing or excess padding.
"""

from __future__ import annotations

import binascii
import hmac
import struct
from dataclasses import dataclass
from hashlib import sha256

from nubes.errors import EnvelopeError

TAG_SIZE = 8
SERIAL_SIZE = 4
MIN_DATAGRAM = TAG_SIZE + SERIAL_SIZE + 2
MAX_DATAGRAM = 1024
"""The cloud reads datagrams up to this size; its own stay within 508 bytes."""

FRAGMENT_LIMIT: dict[str, int] = {"raw": 494, "base64": 360, "dtls": 300}
"""Maximum data of one downlink fragment per envelope (replies fit 508 bytes)."""

_words = struct.Struct(">4Q").unpack
_word = struct.Struct(">Q").pack
_serial_at = struct.Struct(">I").unpack_from


def mac_tag(key: bytes, signed: bytes) -> bytes:
    """The 8-byte tag of `signed` (everything after the tag) under `key`."""
    w0, w1, w2, w3 = _words(sha256(key + signed).digest())
    return _word(w0 ^ w1 ^ w2 ^ w3)


@dataclass(frozen=True, slots=True)
class Envelope:
    """A split datagram: `signed` is serial + packet, the bytes the tag covers."""

    serial: int
    tag: bytes
    signed: bytes
    packet: bytes


def open_envelope(datagram: bytes) -> Envelope:
    """Splits a raw datagram; EnvelopeError for one the cloud does not answer.

    A datagram over 1024 bytes is cut to 1024, as the documented cloud does,
    so that it fails verification (a known serial then gets a reset).
    """
    if len(datagram) < MIN_DATAGRAM:
        raise EnvelopeError("short")
    datagram = datagram[:MAX_DATAGRAM]
    (serial,) = _serial_at(datagram, TAG_SIZE)
    if serial == 0:
        raise EnvelopeError("serial 0")
    return Envelope(
        serial, datagram[:TAG_SIZE], datagram[TAG_SIZE:], datagram[TAG_SIZE + SERIAL_SIZE :]
    )


def verify(envelope: Envelope, key: bytes) -> bool:
    """Whether the tag matches `key`, compared in constant time."""
    return hmac.compare_digest(mac_tag(key, envelope.signed), envelope.tag)


def seal(key: bytes, serial: int, packet: bytes) -> bytes:
    """The datagram carrying `packet` to or from device `serial`, tagged with `key`."""
    signed = serial.to_bytes(SERIAL_SIZE, "big") + packet
    return mac_tag(key, signed) + signed


def decode_base64(text: bytes) -> bytes:
    """The datagram of a port-5003 text; EnvelopeError("invalid base64") otherwise."""
    try:
        return binascii.a2b_base64(text, strict_mode=True)
    except (binascii.Error, ValueError, TypeError) as err:
        raise EnvelopeError("invalid base64") from err


def encode_base64(datagram: bytes) -> bytes:
    """The port-5003 text of a datagram: standard alphabet, padded, no newline."""
    return binascii.b2a_base64(datagram, newline=False)
