"""Shared material for the codec tests: the catalog codecs and frame building.

Frames are built the way firmware builds them: names are turned into key
numbers by `numbering`, a re-statement of the rule of `spec/codecs.md` that
does not use the code under test, and encoded with indefinite lengths.
"""

from __future__ import annotations

import functools
from pathlib import Path

import cbor2
import yaml

from nubes.codec import Codec, codec_from_yaml

REPO = Path(__file__).resolve().parents[3]
assert (REPO / "pyproject.toml").is_file(), REPO
SHARED = (REPO / ".." / "shared").resolve()
CODECS = SHARED / "codecs"

CATALOG = sorted(path.name for path in CODECS.glob("*.yaml"))
DECODERS = [name for name in CATALOG if name.endswith(".decoder.yaml")]
ENCODERS = [name for name in CATALOG if name.endswith(".encoder.yaml")]


@functools.cache
def catalog_text(name: str) -> str:
    return (CODECS / name).read_text()


@functools.cache
def catalog_codec(name: str) -> Codec:
    return codec_from_yaml(catalog_text(name))


@functools.cache
def numbering(name: str) -> dict[str, int]:
    """Dotted schema path -> key number: depth-first, `$` keys and their insides skipped."""
    numbers: dict[str, int] = {}

    def walk(items: list[dict[str, object]] | None, prefix: str) -> None:
        for item in items or []:
            ((key, value),) = item.items()
            if key.startswith("$"):
                continue
            numbers[prefix + key] = len(numbers)
            if isinstance(value, list):
                walk(value, f"{prefix}{key}.")

    walk(yaml.safe_load(catalog_text(name))["schema"], "")
    return numbers


def wire(name: str, named: object, prefix: str = "") -> object:
    """Turn a frame written with names into the integer-keyed frame a device sends.

    A name is relative to its map unless it holds a dot (then it is a full
    path, for keys firmware places away from their schema parent); integer
    keys pass unchanged (to send keys the codec does not have). Lists keep
    their prefix: arrays of maps repeat the map, series hold raw values.
    """
    if isinstance(named, dict):
        framed: dict[object, object] = {}
        for key, value in named.items():
            if isinstance(key, int):
                framed[key] = wire(name, value, "")
                continue
            path = key if "." in key else prefix + key
            framed[numbering(name)[path]] = wire(name, value, path + ".")
        return framed
    if isinstance(named, list):
        return [wire(name, item, prefix) for item in named]
    return named


def frame(name: str, named: dict[str, object]) -> bytes:
    """The CBOR bytes of a named frame, with indefinite lengths as zcbor writes them."""
    return cbor2.dumps(wire(name, named), indefinite_containers=True)
