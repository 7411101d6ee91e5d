"""Codecs: the YAML documents that translate device CBOR to JSON and back.

Pure code, no I/O and no `await`: bytes in, values out.

    hashing    the 64-bit codec hash that names a codec on the wire
    cbor       reading one CBOR item from untrusted bytes
    schema     validating a codec document and compiling its tables (`Codec`)
    loading    a `Codec` from uploaded CBOR or from YAML; upload verification
    decoding   device data -> JSON
    encoding   JSON -> device data (downlinks)
    jsonsafe   the rules that make any CBOR value valid JSON

Every failure is a `nubes.errors.CodecError` (or its `CodecHashError`).
The rules, with the choices marked "our rule", are in `spec/codecs.md`.
"""

from nubes.codec.decoding import decode
from nubes.codec.encoding import encode
from nubes.codec.hashing import codec_hash, hash_from_bytes, hash_hex
from nubes.codec.jsonsafe import to_json
from nubes.codec.loading import codec_from_cbor, codec_from_yaml, verify_upload, yaml_to_cbor
from nubes.codec.schema import Codec, Field, Series, parse_codec

__all__ = [
    "Codec",
    "Field",
    "Series",
    "codec_from_cbor",
    "codec_from_yaml",
    "codec_hash",
    "decode",
    "encode",
    "hash_from_bytes",
    "hash_hex",
    "parse_codec",
    "to_json",
    "verify_upload",
    "yaml_to_cbor",
]
