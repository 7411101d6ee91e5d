"""CBOR values made safe for JSON.

CBOR can carry what JSON cannot: byte strings, integers beyond the exact range
of a double, NaN, tags, `undefined`, maps with non-text keys. Every message
that leaves the codec (decoded data, session attributes, statistics, shell
answers) goes through the rules here, so that one place decides how such
values look in JSON:

- byte strings become lowercase hex (devices send MAC addresses, IDs, frames);
- integers with |n| > 2^53 become decimal strings (a JSON reader would round
  them silently);
- NaN and ±Infinity become null (JSON has no spelling for them);
- tags become their content, `undefined` and unassigned simple values null;
- map keys become text, sequences and sets become lists.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Mapping
from datetime import date
from typing import Final

import cbor2

MAX_SAFE_INT: Final = 2**53
"""Largest magnitude an integer may have and still be exact in a JSON double."""


def to_json(value: object) -> object:
    """Return `value` (as cbor2 decodes it) in a form `json.dumps` accepts exactly."""
    if type(value) is str or type(value) is bool or value is None:
        return value
    if type(value) is int:
        return json_int(value)
    if type(value) is float:
        return value if math.isfinite(value) else None
    if type(value) is dict:
        return {key_text(key): to_json(item) for key, item in value.items()}
    if type(value) is list:
        return [to_json(item) for item in value]
    return _to_json_rare(value)


def _to_json_rare(value: object) -> object:
    """The types cbor2 produces seldom (or that callers build themselves)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, cbor2.CBORTag):
        return to_json(value.value)
    if isinstance(value, Mapping):
        return {key_text(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json(item) for item in value]
    if isinstance(value, bool | int | float | str):  # subclasses, e.g. IntEnum
        return to_json(_base_value(value))
    if isinstance(value, date):
        return value.isoformat()
    if value is cbor2.undefined or isinstance(value, cbor2.CBORSimpleValue):
        return None
    return str(value)


def _base_value(value: bool | int | float | str) -> object:
    """Strip a subclass of a builtin scalar down to the builtin itself."""
    for base in (bool, int, float, str):
        if isinstance(value, base):
            return base(value)
    return value  # pragma: no cover - the isinstance above covers every case


def json_int(value: int) -> int | str:
    """Keep `value` as a number when a JSON double holds it exactly, else as text."""
    if -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
        return value
    return int_text(value)


def int_text(value: int) -> str:
    """Decimal text of any integer; hex beyond Python's 4300-digit conversion limit."""
    try:
        return str(value)
    except ValueError:
        return hex(value)


def brief(value: object) -> str:
    """A short `repr` of a value for an error message (never the whole of a big one)."""
    if isinstance(value, int) and not isinstance(value, bool):
        text = int_text(value)
    else:
        text = reprlib.repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def key_text(key: object) -> str:
    """The JSON object key for a CBOR map key of any type."""
    if type(key) is str:
        return key
    if isinstance(key, bool) or key is None:
        return "true" if key is True else "false" if key is False else "null"
    if isinstance(key, int):
        return int_text(key)
    converted = to_json(key)
    return converted if isinstance(converted, str) else str(converted)
