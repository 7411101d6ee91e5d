"""Getting a `Codec` from what arrives: uploaded CBOR bytes or a YAML file.

A device uploads `cbor2.dumps(yaml.safe_load(file))`, prefixed by its hash
(UPLOAD_DECODER / UPLOAD_ENCODER). Those bytes are authoritative: the hash is
checked over exactly them (`verify_upload`), and callers keep them as they
came. YAML is how people hold codecs (the catalog, tests, the simulator);
`yaml_to_cbor` produces the bytes a device built from that file would send.
"""

from __future__ import annotations

import cbor2
import yaml

from nubes.codec.cbor import read_cbor
from nubes.codec.hashing import codec_hash
from nubes.codec.schema import Codec, parse_codec
from nubes.errors import CodecError, CodecHashError


def yaml_to_cbor(text: str) -> bytes:
    """The CBOR bytes of a codec YAML file, exactly as firmware embeds them."""
    document = _load_yaml(text)
    try:
        return cbor2.dumps(document)
    except (cbor2.CBOREncodeError, ValueError, TypeError) as err:
        raise CodecError(f"codec YAML holds a value CBOR cannot carry: {err}") from err


def codec_from_yaml(text: str) -> Codec:
    """Parse a codec YAML file."""
    return parse_codec(_load_yaml(text))


def codec_from_cbor(cbor_bytes: bytes) -> Codec:
    """Parse the CBOR bytes of a codec, as uploaded by a device."""
    return parse_codec(read_cbor(cbor_bytes))


def verify_upload(announced_hash: int, cbor_bytes: bytes) -> Codec:
    """Check an uploaded codec against the hash it came with, then parse it."""
    actual = codec_hash(cbor_bytes)
    if actual != announced_hash:
        raise CodecHashError(
            f"codec hash mismatch: announced {announced_hash:016x}, bytes hash to {actual:016x}"
        )
    return codec_from_cbor(cbor_bytes)


def _load_yaml(text: str) -> object:
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as err:
        raise CodecError(f"invalid codec YAML: {err}") from err
