"""The public interface of `nubes.codec`."""

from __future__ import annotations

import types

import nubes.codec

PROMISED = {
    "Codec",
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
}


def test_all_lists_every_public_name_and_nothing_else() -> None:
    public = {
        name
        for name, value in vars(nubes.codec).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(nubes.codec.__all__) == public
    assert len(nubes.codec.__all__) == len(public)


def test_the_names_others_code_against_are_exported() -> None:
    assert set(nubes.codec.__all__) >= PROMISED
