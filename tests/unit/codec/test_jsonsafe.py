"""The rules that make any CBOR value valid JSON."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime
from enum import IntEnum

import cbor2
import pytest

from nubes.codec import to_json
from nubes.codec.jsonsafe import brief, int_text, json_int, key_text


class Color(IntEnum):
    RED = 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (True, True),
        ("text", "text"),
        (7, 7),
        (1.5, 1.5),
        (b"\x0a\xbc", "0abc"),
        (bytearray(b"\xff"), "ff"),
        (2**53, 2**53),
        (-(2**53), -(2**53)),
        (2**53 + 1, "9007199254740993"),
        (-(2**53) - 1, "-9007199254740993"),
        (math.nan, None),
        (math.inf, None),
        (-math.inf, None),
        (cbor2.undefined, None),
        (cbor2.CBORSimpleValue(16), None),
        (cbor2.CBORTag(300, b"\x01"), "01"),
        ((1, b"\x02"), [1, "02"]),
        (Color.RED, 1),
        (date(2024, 4, 17), "2024-04-17"),
        (datetime(2024, 4, 17, 11, 8, tzinfo=UTC), "2024-04-17T11:08:00+00:00"),
    ],
)
def test_scalars(value: object, expected: object) -> None:
    converted = to_json(value)
    assert converted == expected
    assert type(converted) is type(expected)


def test_maps_get_text_keys_and_nested_values_are_converted() -> None:
    value = {
        1: [b"\x01", {2**60: math.nan}],
        "a": (True,),
        None: 0,
        False: 1,
        b"\xaa": 2,
        (1, 2): 3,
    }
    assert to_json(value) == {
        "1": ["01", {"1152921504606846976": None}],
        "a": [True],
        "null": 0,
        "false": 1,
        "aa": 2,
        "[1, 2]": 3,
    }


def test_sets_become_lists() -> None:
    converted = to_json(frozenset({3, 1}))
    assert isinstance(converted, list)
    assert sorted(converted) == [1, 3]


def test_result_is_strict_json() -> None:
    value = {0: [math.nan, b"", 2**70, cbor2.CBORTag(1, {1: cbor2.undefined})]}
    assert (
        json.dumps(to_json(value), allow_nan=False)
        == '{"0": [null, "", "1180591620717411303424", {"1": null}]}'
    )


def test_integers_past_the_decimal_conversion_limit_become_hex() -> None:
    huge = 1 << 20000
    assert int_text(huge) == hex(huge)
    assert json_int(huge) == hex(huge)
    assert key_text(huge) == hex(huge)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (5, "5"),
        (True, "True"),
        ("abc", "'abc'"),
        ("x" * 100, "'xxxxxxxxxxxx...xxxxxxxxxxxxx'"),
        (list(range(100)), "[0, 1, 2, 3, 4, 5, ...]"),
        (10**50, "1" + "0" * 36 + "..."),
    ],
)
def test_brief_shows_values_shortly(value: object, expected: str) -> None:
    assert brief(value) == expected
