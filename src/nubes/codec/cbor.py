"""Reading one CBOR item from untrusted bytes.

Devices and codec uploads are read through this single function so that the
rest of the package can rely on two promises: the only exception is
`CodecError`, and the value holds nothing but plain Python data.

cbor2 would turn some tags into rich objects (datetimes, regular expressions,
MIME messages, IP addresses, sets...). CHESTER devices send none of them, and
compiling a regular expression or parsing a MIME message because a datagram
asked for it is work we do not want to do. So every such tag yields its
content, the same rule `to_json` applies to tags cbor2 does not know. Bignums
(tags 2 and 3) stay integers and shared or string references stay resolved:
they are how CBOR spells plain values.

A buffer must hold exactly one item: trailing bytes mean the sender and we
disagree about the framing, and guessing would hide it. Nesting is capped far
below cbor2's default: device data is a few levels deep, a codec document a
few dozen, and the cap keeps every recursive walk in this package well inside
Python's recursion limit.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Final

import cbor2

from nubes.errors import CodecError

MAX_DEPTH: Final = 64
"""Deepest nesting of arrays and maps accepted in one item."""

_RICH_TAGS: Final = (0, 1, 4, 5, 30, 35, 36, 37, 52, 54, 100, 258, 260, 261, 1004, 43000)


def _content(value: object, immutable: bool) -> object:
    return value


def _tag_content(tag: cbor2.CBORTag, immutable: bool) -> object:
    return tag.value


_AS_CONTENT: Final[Mapping[int, cbor2.SemanticDecoderCallback]] = dict.fromkeys(
    _RICH_TAGS, _content
)


def read_cbor(data: bytes) -> object:
    """Decode exactly one CBOR item from `data`, raising `CodecError` for anything else."""
    stream = io.BytesIO(data)
    try:
        decoder = cbor2.CBORDecoder(
            stream, semantic_decoders=_AS_CONTENT, tag_hook=_tag_content, max_depth=MAX_DEPTH
        )
        value = decoder.decode()
    # cbor2 signals hostile input with several exception types (its own,
    # MemoryError, errors raised inside tag decoders); the contract of this
    # package is one error type for any bytes.
    except Exception as err:
        raise CodecError(f"invalid CBOR: {err}") from err
    trailing = len(data) - stream.tell()
    if trailing:
        raise CodecError(f"invalid CBOR: trailing bytes after the first item ({trailing})")
    return value
