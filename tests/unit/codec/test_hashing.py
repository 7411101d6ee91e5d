"""The codec hash against the vectors of spec/codecs.md and codec-hashes.json."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from nubes.codec import codec_hash, hash_from_bytes, hash_hex, yaml_to_cbor
from nubes.errors import CodecError

from .catalog import CATALOG, SHARED, catalog_text

VECTORS = json.loads((SHARED / "vectors" / "codec-hashes.json").read_text())
SPEC_TABLE = dict(
    re.findall(
        r"^\| (\w+\.\w+\.yaml) \| ([0-9a-f]{16}) \|$",
        (SHARED / "spec" / "codecs.md").read_text(),
        re.M,
    )
)


def test_vectors_cover_the_catalog_and_agree_with_the_spec() -> None:
    assert sorted(VECTORS) == CATALOG
    assert {name: vector["hash"] for name, vector in VECTORS.items()} == SPEC_TABLE


@pytest.mark.parametrize("name", CATALOG)
def test_catalog_file_hashes_to_its_vector(name: str) -> None:
    cbor_bytes = yaml_to_cbor(catalog_text(name))
    assert len(cbor_bytes) == VECTORS[name]["cbor_length"]
    assert hash_hex(codec_hash(cbor_bytes)) == VECTORS[name]["hash"]


def test_hash_is_the_xor_of_four_little_endian_words() -> None:
    digest = hashlib.sha256(b"nubes").digest()
    words = [int.from_bytes(digest[i : i + 8], "little") for i in range(0, 32, 8)]
    assert codec_hash(b"nubes") == words[0] ^ words[1] ^ words[2] ^ words[3]


def test_hash_hex_is_sixteen_lowercase_digits() -> None:
    assert hash_hex(0) == "0000000000000000"
    assert hash_hex(0xC76A16DD617F713B) == "c76a16dd617f713b"
    assert hash_hex(2**64 - 1) == "ffffffffffffffff"


@pytest.mark.parametrize("value", [-1, 2**64])
def test_hash_hex_refuses_what_is_no_uint64(value: int) -> None:
    with pytest.raises(CodecError, match="uint64"):
        hash_hex(value)


def test_hash_from_bytes_reads_big_endian() -> None:
    assert hash_from_bytes(bytes.fromhex("c76a16dd617f713b")) == 0xC76A16DD617F713B
    assert hash_hex(hash_from_bytes(bytes.fromhex("0cf3c030b992b548"))) == "0cf3c030b992b548"


@pytest.mark.parametrize("data", [b"", b"\x01" * 7, b"\x01" * 9])
def test_hash_from_bytes_needs_eight_bytes(data: bytes) -> None:
    with pytest.raises(CodecError, match="8 bytes"):
        hash_from_bytes(data)
