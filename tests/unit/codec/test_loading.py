"""A `Codec` from uploaded CBOR or from YAML, and the upload hash check."""

from __future__ import annotations

import cbor2
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from nubes.codec import (
    codec_from_cbor,
    codec_from_yaml,
    codec_hash,
    hash_from_bytes,
    verify_upload,
    yaml_to_cbor,
)
from nubes.errors import CodecError, CodecHashError

from .catalog import CATALOG, catalog_text

CONTROL_ENCODER_HASH = 0xC76A16DD617F713B


def test_yaml_to_cbor_is_cbor2_of_the_safe_loaded_document() -> None:
    text = catalog_text("control.encoder.yaml")
    assert yaml_to_cbor(text) == cbor2.dumps(yaml.safe_load(text))
    # a map of 4 in document order, starting with "version": 2
    assert yaml_to_cbor(text).startswith(bytes.fromhex("a4 67 76657273696f6e 02"))


@pytest.mark.parametrize("name", CATALOG)
def test_uploaded_bytes_give_the_same_codec_as_the_yaml(name: str) -> None:
    text = catalog_text(name)
    from_cbor = codec_from_cbor(yaml_to_cbor(text))
    from_yaml = codec_from_yaml(text)
    assert from_cbor.document == from_yaml.document == yaml.safe_load(text)
    assert [f.path for f in from_cbor.keys] == [f.path for f in from_yaml.keys]


def test_verify_upload_accepts_the_announced_hash() -> None:
    cbor_bytes = yaml_to_cbor(catalog_text("control.encoder.yaml"))
    codec = verify_upload(hash_from_bytes(bytes.fromhex("c76a16dd617f713b")), cbor_bytes)
    assert codec.kind == "encoder"
    assert codec.name == "com.hardwario.chester.control"


def test_verify_upload_refuses_a_hash_mismatch() -> None:
    cbor_bytes = yaml_to_cbor(catalog_text("control.encoder.yaml"))
    with pytest.raises(CodecHashError) as caught:
        verify_upload(CONTROL_ENCODER_HASH ^ 1, cbor_bytes)
    assert str(caught.value) == (
        "codec hash mismatch: announced c76a16dd617f713a, bytes hash to c76a16dd617f713b"
    )


def test_verify_upload_checks_the_bytes_before_parsing_them() -> None:
    with pytest.raises(CodecHashError):
        verify_upload(0, b"\xff")
    with pytest.raises(CodecError, match="invalid CBOR"):
        verify_upload(codec_hash(b"\xff"), b"\xff")


@pytest.mark.parametrize(
    ("cbor_bytes", "reason"),
    [
        (b"", "invalid CBOR"),
        (b"\xa1", "invalid CBOR"),
        (cbor2.dumps([1]), "a codec document must be a map, got list"),
        (cbor2.dumps({"version": 1}), "codec version must be 2, got 1"),
        (yaml_to_cbor("version: 2\ntype: decoder\nname: x\nschema: []") + b"\x00", "trailing"),
        (
            cbor2.dumps({"version": 1 << 20000}),
            "codec version must be 2, got 0x1000000000000000000",
        ),
        (cbor2.dumps({"version": 2, "type": "x" * 1000}), "got 'xxxxxxxxxxxx...xxxxxxxxxxxxx'$"),
    ],
)
def test_codec_from_cbor_refuses_invalid_bytes(cbor_bytes: bytes, reason: str) -> None:
    with pytest.raises(CodecError, match=reason):
        codec_from_cbor(cbor_bytes)


def test_empty_schema_is_a_valid_codec() -> None:
    codec = codec_from_yaml("version: 2\ntype: decoder\nname: x\nschema: []")
    assert codec.keys == ()
    assert dict(codec.top) == {}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a: [", "invalid codec YAML: while parsing a flow node"),
        ("x: !!python/object:os.system x", "invalid codec YAML: could not determine a constructor"),
        ("- 1", "a codec document must be a map, got list"),
        ("", "a codec document must be a map, got nothing"),
    ],
)
def test_codec_from_yaml_refuses_invalid_text(text: str, reason: str) -> None:
    with pytest.raises(CodecError) as caught:
        codec_from_yaml(text)
    assert str(caught.value).startswith(reason)


def test_yaml_to_cbor_refuses_what_cbor_cannot_carry() -> None:
    with pytest.raises(CodecError, match="naive datetime"):
        yaml_to_cbor("when: 2001-12-14 21:59:43")
    with pytest.raises(CodecError, match="invalid codec YAML"):
        yaml_to_cbor("a: [")


@settings(max_examples=200)
@given(data=st.binary(max_size=120))
def test_arbitrary_bytes_give_a_codec_or_codec_error(data: bytes) -> None:
    try:
        codec = codec_from_cbor(data)
    except CodecError:
        return
    assert codec.kind in ("decoder", "encoder")
