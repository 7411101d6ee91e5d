"""The device's side of FLAP messages: building uplinks, reading downlinks.

The cloud's package (`nubes.flap.messages`) parses uplinks and builds
downlinks; a device does the opposite, and so does the simulator. Maps and
arrays are encoded with indefinite lengths, as the firmware's encoder does,
so that the server's parser is exercised on what real devices send.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import cbor2

from nubes.codec import codec_hash, yaml_to_cbor
from nubes.errors import MessageError
from nubes.flap import MessageType


def indefinite(value: Any) -> bytes:
    """CBOR with indefinite-length maps and arrays (what firmware emits)."""
    if isinstance(value, Mapping):
        items = b"".join(indefinite(k) + indefinite(v) for k, v in value.items())
        return b"\xbf" + items + b"\xff"
    if isinstance(value, list | tuple):
        return b"\x9f" + b"".join(indefinite(item) for item in value) + b"\xff"
    return bytes(cbor2.dumps(value))


def create_session(attributes: Mapping[int, Any]) -> bytes:
    return bytes([MessageType.CREATE_SESSION]) + indefinite(dict(attributes))


def get_timestamp() -> bytes:
    return bytes([MessageType.GET_TIMESTAMP])


def upload_codec(kind: str, yaml_text: str) -> tuple[int, bytes]:
    """(hash, message) of UPLOAD_DECODER / UPLOAD_ENCODER for a codec file."""
    cbor = yaml_to_cbor(yaml_text)
    value = codec_hash(cbor)
    type_byte = MessageType.UPLOAD_DECODER if kind == "decoder" else MessageType.UPLOAD_ENCODER
    return value, bytes([type_byte]) + value.to_bytes(8, "big") + cbor


def config_hash(lines: Sequence[str]) -> int:
    return int.from_bytes(hashlib.sha256("\n".join(lines).encode()).digest()[:8], "big")


def upload_config(lines: Sequence[str]) -> bytes:
    digest = config_hash(lines).to_bytes(8, "big")
    return bytes([MessageType.UPLOAD_CONFIG]) + digest + b"\x00" + indefinite(list(lines))


def upload_data(decoder_hash: int, values: Mapping[int, Any]) -> bytes:
    return bytes([MessageType.UPLOAD_DATA]) + decoder_hash.to_bytes(8, "big") + indefinite(values)


def upload_shell(message_id: bytes, results: Sequence[tuple[str, int, list[str]]]) -> bytes:
    entries = []
    for command, rc, output in results:
        entry: dict[int, Any] = {0: command}
        if rc:
            entry[1] = rc
        entry[2] = output
        entries.append(entry)
    return bytes([MessageType.UPLOAD_SHELL]) + indefinite({1: message_id, 0: entries})


def upload_stats(values: Mapping[int, Any]) -> bytes:
    return bytes([MessageType.UPLOAD_STATS]) + indefinite(dict(values))


@dataclass(frozen=True, slots=True)
class Downlink:
    """A downlink as the device understands it."""

    type: MessageType
    value: Any


def parse_downlink(message: bytes) -> Downlink:
    """Reads a downlink; MessageError for what a device would reject."""
    if not message:
        raise MessageError("empty downlink")
    try:
        kind = MessageType(message[0])
    except ValueError as err:
        raise MessageError(f"unknown downlink type {message[0]:#04x}") from err
    body = message[1:]
    try:
        if kind == MessageType.SET_TIMESTAMP:
            return Downlink(kind, int.from_bytes(body, "big", signed=True))
        if kind == MessageType.DOWNLOAD_CONFIG:
            return Downlink(kind, cbor2.loads(body[1:]))
        if kind == MessageType.DOWNLOAD_DATA:
            return Downlink(kind, (int.from_bytes(body[:8], "big"), cbor2.loads(body[8:])))
        return Downlink(kind, cbor2.loads(body))
    except (cbor2.CBORDecodeError, ValueError, IndexError) as err:
        raise MessageError(f"invalid {kind.name}: {err}") from err
