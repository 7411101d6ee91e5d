"""FLAP messages: one type byte and a value, reassembled from the fragments.

Uplinks are parsed into small typed values (`parse_uplink`); downlinks are
built from plain arguments (`encode_*`). The numbers of the wire (types, map
keys) stay in this module so that nothing else has to know them.

Parsing is strict about shape and lenient about content. A message whose
shape is wrong (unknown type, wrong lengths, CBOR that does not parse, a map
where an array belongs) raises `MessageError`, and the gateway leaves it
unacked, as the documentation prescribes. Values of the right shape are kept
even when the firmware would never send them (an extra key, a CREATE_SESSION
attribute of another type), because refusing them would keep a real device
from ever opening a session. `parse_uplink` never raises anything but
`MessageError`: CBOR is read with `nubes.codec.cbor.read_cbor`, the project's
one reader for untrusted CBOR (one item, no trailing bytes, capped nesting,
tags reduced to plain values, every failure a `CodecError`).

Application data (UPLOAD_DATA) is not decoded here: it needs the codec of the
device, and the pipeline decodes it later, so the hot path carries bytes.

The downlink builders emit definite-length CBOR (devices decode both kinds)
and, for SET_SESSION, only the keys 0..6: the firmware's parser has no
default branch, so an unknown key would put it out of step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Literal, TypedDict, TypeGuard

import cbor2

from nubes.codec.cbor import read_cbor
from nubes.errors import CodecError, MessageError

MAX_MESSAGE = 16383
"""Maximum size of a message value; with the type byte a message is at most 16384 bytes."""

HASH_SIZE = 8
MESSAGE_ID_SIZE = 16
DEVICE_ID_LIMIT = 36
DEVICE_NAME_LIMIT = 32
_UINT32 = (1 << 32) - 1
_UINT64 = (1 << 64) - 1


class MessageType(IntEnum):
    CREATE_SESSION = 0x00
    GET_TIMESTAMP = 0x01
    UPLOAD_CONFIG = 0x02
    UPLOAD_DECODER = 0x03
    UPLOAD_ENCODER = 0x04
    UPLOAD_STATS = 0x05
    UPLOAD_DATA = 0x06
    UPLOAD_SHELL = 0x07
    UPLOAD_FIRMWARE = 0x08
    SET_SESSION = 0x80
    SET_TIMESTAMP = 0x81
    DOWNLOAD_CONFIG = 0x82
    DOWNLOAD_DATA = 0x86
    DOWNLOAD_SHELL = 0x87
    DOWNLOAD_FIRMWARE = 0x88
    REQUEST_REBOOT = 0xFF


SESSION_KEYS: dict[int, str] = {
    0: "watchdog_timeout", 1: "vendor", 2: "product", 3: "hw_variant", 4: "hw_revision",
    5: "fw_bundle", 6: "fw_name", 7: "fw_version", 8: "ble_passkey", 9: "imsi", 10: "imei",
    11: "modem_fw", 12: "ctr_z_serial", 13: "ctr_z_hw_revision", 14: "ctr_z_hw_variant",
    15: "ctr_z_fw_version", 16: "serial", 17: "iccid",
}  # fmt: skip
STATS_KEYS: dict[int, str] = {
    0: "uptime", 1: "eest", 2: "ecl", 3: "rsrp", 4: "rsrq", 5: "snr", 6: "plmn", 7: "cid",
    8: "band", 9: "earfcn",
}  # fmt: skip
FIRMWARE_KEYS: dict[int, str] = {
    0: "target", 1: "type", 2: "id", 3: "offset", 4: "max_length", 5: "firmware", 6: "error",
}  # fmt: skip
_FIRMWARE_TYPES: dict[int, type] = {0: str, 1: str, 2: bytes, 3: int, 4: int, 5: str, 6: str}


# -- uplinks -----------------------------------------------------------------------


class _Text:
    """A CREATE_SESSION attribute read as text (None when absent or not text)."""

    def __init__(self, key: int) -> None:
        self.key = key

    def __get__(self, session: CreateSession | None, owner: type) -> str | None:
        value = None if session is None else session.attributes.get(self.key)
        return value if isinstance(value, str) else None


class _Number:
    """A CREATE_SESSION attribute read as an integer (None when absent or not one)."""

    def __init__(self, key: int) -> None:
        self.key = key

    def __get__(self, session: CreateSession | None, owner: type) -> int | None:
        value = None if session is None else session.attributes.get(self.key)
        return value if _is_int(value) else None


@dataclass(frozen=True, slots=True)
class CreateSession:
    """The device opens a session; `attributes` keeps the CBOR map as sent."""

    attributes: dict[int, object]

    vendor = _Text(1)
    product = _Text(2)
    hw_variant = _Text(3)
    hw_revision = _Text(4)
    fw_bundle = _Text(5)
    fw_name = _Text(6)
    fw_version = _Text(7)
    ble_passkey = _Text(8)
    imsi = _Number(9)
    imei = _Number(10)
    modem_fw = _Text(11)
    serial = _Number(16)
    iccid = _Text(17)

    def named(self) -> dict[str, object]:
        """The attributes under the names of the spec (unknown keys as `key_<n>`)."""
        return _named(self.attributes, SESSION_KEYS)


@dataclass(frozen=True, slots=True)
class GetTimestamp:
    """The device asks for the time; the cloud answers with SET_TIMESTAMP."""


@dataclass(frozen=True, slots=True)
class UploadConfig:
    config_hash: int
    lines: list[str]


@dataclass(frozen=True, slots=True)
class UploadCodec:
    """A decoder or encoder document as CBOR; its hash is checked by `nubes.codec`."""

    kind: Literal["decoder", "encoder"]
    codec_hash: int
    cbor: bytes


@dataclass(frozen=True, slots=True)
class UploadStats:
    values: dict[str, object]


@dataclass(frozen=True, slots=True)
class UploadData:
    """Application data, still CBOR: it is decoded later with the codec of `codec_hash`."""

    codec_hash: int
    cbor: bytes


class ShellResult(TypedDict):
    command: str
    rc: int
    output: list[str]


@dataclass(frozen=True, slots=True)
class UploadShell:
    """The results of a DOWNLOAD_SHELL, carrying its 16-byte message id."""

    message_id: bytes
    results: list[ShellResult] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class UploadFirmware:
    """A FOTA request or status: download, next, swap, ack or error."""

    values: dict[str, object]


Uplink = (
    CreateSession
    | GetTimestamp
    | UploadConfig
    | UploadCodec
    | UploadStats
    | UploadData
    | UploadShell
    | UploadFirmware
)


def parse_uplink(message: bytes) -> Uplink:
    """The typed value of a reassembled uplink; MessageError when it is not one."""
    if not message:
        raise MessageError("empty message")
    parser = _PARSERS.get(message[0])
    if parser is None:
        raise MessageError(f"unknown message type 0x{message[0]:02x}")
    return parser(message[1:])


def _create_session(value: bytes) -> CreateSession:
    return CreateSession(_int_keyed_map(value, "CREATE_SESSION"))


def _get_timestamp(value: bytes) -> GetTimestamp:
    if value:
        raise MessageError("GET_TIMESTAMP carries no value")
    return GetTimestamp()


def _upload_config(value: bytes) -> UploadConfig:
    if len(value) < HASH_SIZE + 1:
        raise MessageError("UPLOAD_CONFIG shorter than its hash and header")
    if value[HASH_SIZE] != 0:
        raise MessageError(f"UPLOAD_CONFIG compression 0x{value[HASH_SIZE]:02x} not supported")
    lines = _decode_cbor(value[HASH_SIZE + 1 :], "UPLOAD_CONFIG")
    return UploadConfig(_hash(value), _text_list(lines, "UPLOAD_CONFIG lines"))


def _upload_codec(kind: Literal["decoder", "encoder"]) -> Callable[[bytes], UploadCodec]:
    what = f"UPLOAD_{kind.upper()}"

    def parse(value: bytes) -> UploadCodec:
        if len(value) <= HASH_SIZE:
            raise MessageError(f"{what} without a codec")
        _decode_cbor(value[HASH_SIZE:], what)
        return UploadCodec(kind, _hash(value), value[HASH_SIZE:])

    return parse


def _upload_stats(value: bytes) -> UploadStats:
    stats = _int_keyed_map(value, "UPLOAD_STATS")
    for key, number in stats.items():
        if key in STATS_KEYS and not _is_int(number):
            raise MessageError(f"UPLOAD_STATS {STATS_KEYS[key]} is not an integer")
    return UploadStats(_named(stats, STATS_KEYS))


def _upload_data(value: bytes) -> UploadData:
    if len(value) <= HASH_SIZE:
        raise MessageError("UPLOAD_DATA without data")
    return UploadData(_hash(value), value[HASH_SIZE:])


def _upload_shell(value: bytes) -> UploadShell:
    shell = _int_keyed_map(value, "UPLOAD_SHELL")
    message_id = shell.get(1)
    if not isinstance(message_id, bytes) or len(message_id) != MESSAGE_ID_SIZE:
        raise MessageError("UPLOAD_SHELL needs a 16-byte message id")
    results = shell.get(0, [])
    if not isinstance(results, list):
        raise MessageError("UPLOAD_SHELL results are not an array")
    return UploadShell(message_id, [_shell_result(result) for result in results])


def _shell_result(result: object) -> ShellResult:
    if not isinstance(result, dict):
        raise MessageError("UPLOAD_SHELL result is not a map")
    command, rc, output = result.get(0), result.get(1, 0), result.get(2, [])
    if not isinstance(command, str) or not _is_int(rc):
        raise MessageError("UPLOAD_SHELL result needs a command and an integer rc")
    return ShellResult(command=command, rc=rc, output=_text_list(output, "UPLOAD_SHELL output"))


def _upload_firmware(value: bytes) -> UploadFirmware:
    request = _int_keyed_map(value, "UPLOAD_FIRMWARE")
    for key, expected in _FIRMWARE_TYPES.items():
        item = request.get(key)
        if item is not None and type(item) is not expected:
            raise MessageError(f"UPLOAD_FIRMWARE {FIRMWARE_KEYS[key]} has the wrong type")
    if 0 not in request or 1 not in request:
        raise MessageError("UPLOAD_FIRMWARE needs a target and a type")
    job_id = request.get(2)
    if isinstance(job_id, bytes) and len(job_id) != MESSAGE_ID_SIZE:
        raise MessageError("UPLOAD_FIRMWARE job id is not 16 bytes")
    return UploadFirmware(_named(request, FIRMWARE_KEYS))


_PARSERS: dict[int, Callable[[bytes], Uplink]] = {
    MessageType.CREATE_SESSION: _create_session,
    MessageType.GET_TIMESTAMP: _get_timestamp,
    MessageType.UPLOAD_CONFIG: _upload_config,
    MessageType.UPLOAD_DECODER: _upload_codec("decoder"),
    MessageType.UPLOAD_ENCODER: _upload_codec("encoder"),
    MessageType.UPLOAD_STATS: _upload_stats,
    MessageType.UPLOAD_DATA: _upload_data,
    MessageType.UPLOAD_SHELL: _upload_shell,
    MessageType.UPLOAD_FIRMWARE: _upload_firmware,
}


# -- CBOR and shape helpers ------------------------------------------------------------


def _decode_cbor(data: bytes, what: str) -> object:
    """Exactly one CBOR item, read by the codec package's reader for untrusted bytes."""
    if not data:
        raise MessageError(f"{what}: no CBOR value")
    try:
        return read_cbor(data)
    except CodecError as err:
        raise MessageError(f"{what}: {err}") from err


def _int_keyed_map(data: bytes, what: str) -> dict[int, object]:
    value = _decode_cbor(data, what)
    if not isinstance(value, dict):
        raise MessageError(f"{what} is not a CBOR map")
    if not all(_is_int(key) and key >= 0 for key in value):
        raise MessageError(f"{what} has a key that is not an unsigned integer")
    return dict(value)


def _text_list(value: object, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(line, str) for line in value):
        raise MessageError(f"{what} are not an array of text")
    return list(value)


def _is_int(value: object) -> TypeGuard[int]:
    return type(value) is int  # bool is an int subclass, but never a number here


def _hash(value: bytes) -> int:
    return int.from_bytes(value[:HASH_SIZE], "big")


def _named(values: dict[int, object], names: dict[int, str]) -> dict[str, object]:
    return {names.get(key, f"key_{key}"): item for key, item in values.items()}


# -- downlinks -----------------------------------------------------------------------


def encode_set_session(
    session_id: int,
    now: int,
    *,
    decoder_hash: int | None = None,
    encoder_hash: int | None = None,
    config_hash: int | None = None,
    device_id: str | None = None,
    device_name: str | None = None,
) -> bytes:
    """SET_SESSION with keys 0..6 only; hashes the cloud does not know are left out."""
    if not 0 < session_id <= _UINT32:
        raise ValueError("session id must be a non-zero uint32")
    fields: dict[int, object] = {0: session_id}
    for key, value in ((1, decoder_hash), (2, encoder_hash), (3, config_hash)):
        if value is not None:
            fields[key] = _uint64(value)
    fields[4] = _int64(now)
    if device_id is not None:
        fields[5] = _truncate(device_id, DEVICE_ID_LIMIT)
    if device_name is not None:
        fields[6] = _truncate(device_name, DEVICE_NAME_LIMIT)
    return bytes([MessageType.SET_SESSION]) + cbor2.dumps(fields)


def encode_set_timestamp(now: int) -> bytes:
    """SET_TIMESTAMP: Unix seconds as a big-endian int64, 9 bytes in all."""
    return bytes([MessageType.SET_TIMESTAMP]) + _int64(now).to_bytes(8, "big", signed=True)


def encode_download_config(lines: Sequence[str]) -> bytes:
    """DOWNLOAD_CONFIG: the device runs the commands, saves and reboots.

    The firmware refuses an empty array, and skips `config save`, `config
    reset` and `config show` itself.
    """
    commands = _texts(lines, "config lines")
    if not commands:
        raise ValueError("a config downlink needs at least one line")
    return bytes([MessageType.DOWNLOAD_CONFIG, 0]) + cbor2.dumps(commands)


def encode_download_shell(commands: Sequence[str], message_id: bytes) -> bytes:
    """DOWNLOAD_SHELL: commands and the 16-byte id the UPLOAD_SHELL answer repeats."""
    if len(message_id) != MESSAGE_ID_SIZE:
        raise ValueError("a shell message id has 16 bytes")
    value = {0: _texts(commands, "shell commands"), 1: bytes(message_id)}
    return bytes([MessageType.DOWNLOAD_SHELL]) + cbor2.dumps(value)


def encode_download_data(encoder_hash: int, cbor_map: bytes) -> bytes:
    """DOWNLOAD_DATA: the encoder hash and the CBOR map the encoder produced."""
    if not cbor_map:
        raise ValueError("a data downlink needs data")
    return bytes([MessageType.DOWNLOAD_DATA]) + _uint64(encoder_hash).to_bytes(8, "big") + cbor_map


def _uint64(value: int) -> int:
    if not 0 <= value <= _UINT64:
        raise ValueError(f"{value} is not a uint64")
    return value


def _int64(value: int) -> int:
    if not -(1 << 63) <= value < (1 << 63):
        raise ValueError(f"{value} is not an int64")
    return value


def _texts(values: Sequence[str], what: str) -> list[str]:
    if isinstance(values, str) or not all(isinstance(value, str) for value in values):
        raise ValueError(f"{what} must be a sequence of text")
    return list(values)


def _truncate(text: str, limit: int) -> str:
    """At most `limit` UTF-8 bytes (the firmware's buffer), never half a character."""
    return text.encode()[:limit].decode(errors="ignore")
