"""Reassembled uplink messages → the JSON the pipeline carries.

The gateway translates everything it can without a codec: session
attributes, config lines, stats, shell answers, firmware reports. Data keeps
its CBOR bytes (in the record's `raw`) and names its codec hash: the worker
decodes it, because only the worker has the codecs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nubes.codec import hash_hex, to_json
from nubes.flap import (
    CreateSession,
    GetTimestamp,
    Uplink,
    UploadCodec,
    UploadConfig,
    UploadData,
    UploadFirmware,
    UploadShell,
    UploadStats,
)


@dataclass(frozen=True, slots=True)
class Translation:
    type_name: str
    body: Any
    codec_hash: str | None = None


def translate(uplink: Uplink) -> Translation:
    """The message type name, JSON body and codec hash of an uplink."""
    if isinstance(uplink, UploadData):
        return Translation("data", None, hash_hex(uplink.codec_hash))
    if isinstance(uplink, CreateSession):
        return Translation("session", to_json(uplink.named()))
    if isinstance(uplink, GetTimestamp):
        return Translation("timestamp", None)
    if isinstance(uplink, UploadConfig):
        config_hash = hash_hex(uplink.config_hash)
        return Translation("config", {"hash": config_hash, "lines": list(uplink.lines)})
    if isinstance(uplink, UploadCodec):
        codec_hash = hash_hex(uplink.codec_hash)
        return Translation(uplink.kind, {"hash": codec_hash, "size": len(uplink.cbor)}, codec_hash)
    if isinstance(uplink, UploadStats):
        return Translation("stats", to_json(uplink.values))
    if isinstance(uplink, UploadShell):
        body = {"id": uplink.message_id.hex(), "results": to_json(uplink.results)}
        return Translation("shell", body)
    if isinstance(uplink, UploadFirmware):
        return Translation("firmware", to_json(uplink.values))
    raise TypeError(f"no translation for {type(uplink).__name__}")
