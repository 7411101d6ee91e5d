"""Device CBOR -> JSON: the rules of spec/codecs.md, one by one and in frames."""

from __future__ import annotations

import json
import math

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nubes.codec import codec_from_yaml, decode
from nubes.errors import CodecError

from .catalog import DECODERS, catalog_codec, frame, numbering, wire
from .frames import FRAMES, PARAMETER

CLIME = "clime.decoder.yaml"

WORKED_EXAMPLE = {
    "message": {"version": 2, "sequence": 69, "timestamp": 1713352118},
    "system": {"uptime": 680967, "voltage_rest": 3.64, "voltage_load": 3.5, "current_load": 25},
    "backup": {
        "line_voltage": 24.01,
        "batt_voltage": 4.09,
        "state": "connected",
        "events": [{"timestamp": 1713351518, "type": "disconnected"}],
    },
    "network": {
        "parameter": {
            "eest": 7,
            "ecl": 0,
            "rsrp": -95,
            "rsrq": -6,
            "snr": 2,
            "plmn": 23003,
            "cid": 658209,
            "band": 20,
            "earfcn": 6447,
        }
    },
    "thermometer": {"temperature": 22.43},
    "accelerometer": {"accel_x": 0.22, "accel_y": 9.8, "accel_z": 0.15, "orientation": 3},
    "hygrometer": {
        "temperature": {
            "measurements": [
                {"timestamp": 1713350918, "min": 22.07, "max": 22.25, "avg": 22.17, "mdn": 22.17}
            ]
        }
    },
}
WORKED_FRAME = {
    "message": {"version": 2, "sequence": 69, "timestamp": 1713352118},
    "system": {"uptime": 680967, "voltage_rest": 3640, "voltage_load": 3500, "current_load": 25},
    "backup": {
        "line_voltage": 24010,
        "batt_voltage": 4090,
        "state": 1,
        "backup.state.events": [1713351518, 0, 0],
    },
    "network": {"parameter": PARAMETER},
    "thermometer": {"temperature": 2243},
    "accelerometer": {"accel_x": 220, "accel_y": 9800, "accel_z": 150, "orientation": 3},
    "hygrometer": {"temperature": {"measurements": [1713350918, 600, 2207, 2225, 2217, 2217]}},
}

RULES = codec_from_yaml(
    """
version: 2
type: decoder
name: test.rules
schema:
  - add_then_mul: [$add: 1, $mul: 2]               # 0
  - mul_then_add: [$mul: 2, $add: 1]               # 1
  - half: [$sub: 0.5, $fpp: 0]                     # 2
  - milli: [$div: 1000, $fpp: 2]                   # 3
  - switch: [$enum: ["off", "on"]]                 # 4
  - meter: [$mbus: ]                               # 5
  - periodic:                                      # 6
      - $tsp: [x: [$div: 10], level: [$enum: [lo, hi]]]
  - offsets:                                       # 7
      - $tso: [x: ]
  - outer:                                         # 8
      - $key: renamed
      - inner: [$div: 4]                           # 9
"""
)


def _cbor(value: object) -> bytes:
    return cbor2.dumps(value)


def test_clime_worked_example_of_the_spec() -> None:
    assert decode(catalog_codec(CLIME), frame(CLIME, WORKED_FRAME)) == WORKED_EXAMPLE


def test_clime_frame_written_byte_by_byte() -> None:
    # {_ 20: {_ 21: 2243}, 92: {_ 95: 1, 96: [_ 1713351518, 0, 0]}} as zcbor writes it
    data = bytes.fromhex(
        "bf 14 bf 15 19 08c3 ff 18 5c bf 18 5f 01 18 60 9f 1a 661fab5e 00 00 ff ff ff"
    )
    assert decode(catalog_codec(CLIME), data) == {
        "thermometer": {"temperature": 22.43},
        "backup": {
            "state": "connected",
            "events": [{"timestamp": 1713351518, "type": "disconnected"}],
        },
    }


@pytest.mark.parametrize("name", DECODERS)
def test_catalog_frame(name: str) -> None:
    named, expected = FRAMES[name]
    decoded = decode(catalog_codec(name), frame(name, named))
    assert decoded == expected
    assert json.loads(json.dumps(decoded, allow_nan=False)) == expected


def test_every_catalog_decoder_has_a_frame() -> None:
    assert sorted(FRAMES) == DECODERS


def test_definite_and_indefinite_lengths_decode_alike() -> None:
    named, expected = FRAMES[CLIME]
    definite = cbor2.dumps(wire(CLIME, named))
    assert definite != frame(CLIME, named)
    assert decode(catalog_codec(CLIME), definite) == expected


def test_modifiers_apply_in_yaml_order() -> None:
    assert decode(RULES, _cbor({0: 3, 1: 3})) == {"add_then_mul": 8, "mul_then_add": 7}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({2: 2}, {"half": 2.0}),  # round(1.5) is 2: half to even
        ({2: 3}, {"half": 2.0}),  # round(2.5) is 2
        ({3: 125}, {"milli": 0.12}),  # 0.125 is exact in binary: half to even
        ({3: 135}, {"milli": 0.14}),  # 0.135 is slightly above in binary
        ({3: 1250.0}, {"milli": 1.25}),  # floats take modifiers too
        ({3: -4090}, {"milli": -4.09}),
        ({8: {9: 10}}, {"renamed": {"inner": 2.5}}),
    ],
)
def test_rounding_is_python_round(message: dict[int, object], expected: dict[str, object]) -> None:
    decoded = decode(RULES, _cbor(message))
    assert json.dumps(decoded) == json.dumps(expected)  # 2.0 stays a float, not 2


def test_null_stays_null_whatever_the_rule() -> None:
    data = _cbor({0: None, 3: None, 4: None, 5: None, 6: None, 7: None, 8: None})
    assert decode(RULES, data) == {
        "add_then_mul": None,
        "milli": None,
        "switch": None,
        "meter": None,
        "periodic": None,
        "offsets": None,
        "renamed": None,
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0, "off"),
        (1, "on"),
        (2, "(enum:2)"),
        (-1, "(enum:-1)"),
        (2**70, "(enum:1180591620717411303424)"),
    ],
)
def test_enum(raw: int, expected: str) -> None:
    assert decode(RULES, _cbor({4: raw})) == {"switch": expected}


def test_enum_field_passes_other_types_through() -> None:
    assert decode(RULES, _cbor({4: "on"})) == {"switch": "on"}
    assert decode(RULES, _cbor({4: True})) == {"switch": True}


def test_periodic_series() -> None:
    data = _cbor({6: [1000, 60, 215, 1, 220, 0, None, 5]})
    assert decode(RULES, data) == {
        "periodic": [
            {"timestamp": 1000, "x": 21.5, "level": "hi"},
            {"timestamp": 1060, "x": 22.0, "level": "lo"},
            {"timestamp": 1120, "x": None, "level": "(enum:5)"},
        ]
    }


def test_offsets_are_relative_to_the_absolute_time_not_cumulative() -> None:
    data = _cbor({7: [1000, 0, "a", 5, "b", 10, "c"]})
    assert decode(RULES, data) == {
        "offsets": [
            {"timestamp": 1000, "x": "a"},
            {"timestamp": 1005, "x": "b"},
            {"timestamp": 1010, "x": "c"},
        ]
    }


def test_offsets_may_be_negative() -> None:
    assert decode(RULES, _cbor({7: [1000, -30, 1]})) == {"offsets": [{"timestamp": 970, "x": 1}]}


@pytest.mark.parametrize(
    ("key", "items"),
    [(6, []), (6, [1000, 60]), (7, []), (7, [1000])],
)
def test_series_without_points(key: int, items: list[int]) -> None:
    assert list(decode(RULES, _cbor({key: items})).values()) == [[]]


def test_series_timestamps_beyond_2_53_become_text() -> None:
    data = _cbor({7: [2**53, 1, "a"]})
    assert decode(RULES, data) == {"offsets": [{"timestamp": "9007199254740993", "x": "a"}]}


@pytest.mark.parametrize(
    ("key", "items", "reason"),
    [
        (
            6,
            [1000],
            "time series at periodic: 1 items do not form [t0, period, values...]"
            " with 2 value(s) per point",
        ),
        (6, [1000, 60, 1], "time series at periodic: 3 items do not form"),
        (
            7,
            [1000, 0],
            "time series at offsets: 2 items do not form [t_abs, offset, values...]"
            " with 1 value(s) per point",
        ),
        (6, ["x", 60, 1, 2], "time series at periodic: timestamp 'x' is no integer"),
        (6, [1000, 1.5, 1, 2], "time series at periodic: timestamp 1.5 is no integer"),
        (7, [1000, None, 1], "time series at offsets: timestamp None is no integer"),
    ],
)
def test_broken_series_layout_is_a_codec_error(key: int, items: list[object], reason: str) -> None:
    with pytest.raises(CodecError) as caught:
        decode(RULES, _cbor({key: items}))
    assert str(caught.value).startswith(reason)


def test_unknown_keys() -> None:
    data = _cbor({500: 1, -3: 2, "note": {0: 1}, b"\x01": 3, 4: 1})
    assert decode(RULES, data) == {
        "(key:500)": 1,
        "(key:-3)": 2,
        "note": {"add_then_mul": 4},  # maps under any key resolve through the table
        "01": 3,
        "switch": "on",
    }


def test_keys_are_global_whatever_map_they_appear_in() -> None:
    assert decode(RULES, _cbor({9: 8, 8: {3: 1500}})) == {"inner": 2.0, "renamed": {"milli": 1.5}}


def test_bytes_become_hex_and_big_integers_text() -> None:
    data = _cbor({500: [b"\xde\xad", 2**53, 2**53 + 1, -(2**53) - 1, 2**64], 8: {9: 2**80}})
    assert decode(RULES, data) == {
        "(key:500)": [
            "dead",
            2**53,
            "9007199254740993",
            "-9007199254740993",
            "18446744073709551616",
        ],
        "renamed": {"inner": 3.0223145490365731e23},
    }


def test_modifiers_on_bignums_stay_exact() -> None:
    assert decode(RULES, _cbor({1: 2**1100})) == {"mul_then_add": str(2**1101 + 1)}
    # no float holds 2^1100 / 1000: the value is kept as it came, as text
    assert decode(RULES, _cbor({3: 2**1100})) == {"milli": str(2**1100)}


def test_non_finite_floats_become_null() -> None:
    data = _cbor({500: [math.nan, math.inf], 3: -math.inf, 0: math.nan})
    assert decode(RULES, data) == {"(key:500)": [None, None], "milli": None, "add_then_mul": None}


def test_meter_frames_stay_hex() -> None:
    data = _cbor({5: [b"\x2e\x44", {1: b"\xff"}]})
    assert decode(RULES, data) == {"meter": ["2e44", {"1": "ff"}]}


def test_arrays_of_maps_decode_element_by_element() -> None:
    data = _cbor({8: [{9: 4}, {9: 8, 500: 1}, None]})
    assert decode(RULES, data) == {
        "renamed": [{"inner": 1.0}, {"inner": 2.0, "(key:500)": 1}, None]
    }


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "invalid CBOR"),
        (b"\xbf\x00", "invalid CBOR"),
        (_cbor({0: 1}) + b"\x00", "invalid CBOR: trailing bytes"),
        (_cbor([1, 2]), "application data must be a CBOR map, got list"),
        (_cbor(5), "application data must be a CBOR map, got int"),
        (_cbor(None), "application data must be a CBOR map, got NoneType"),
    ],
)
def test_what_is_no_cbor_map_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(CodecError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        decode(RULES, data)


def test_an_encoder_decodes_downlinks_for_the_log() -> None:
    codec = catalog_codec("control.encoder.yaml")
    assert decode(codec, bytes.fromhex("a200010200")) == {"output_1_state": 1, "output_3_state": 0}


def test_key_numbers_of_the_rules_codec() -> None:
    assert [field.path for field in RULES.keys] == [
        "add_then_mul",
        "mul_then_add",
        "half",
        "milli",
        "switch",
        "meter",
        "periodic",
        "offsets",
        "outer",
        "outer.inner",
    ]


# --- never anything but CodecError ---------------------------------------------------------

_TAGS = [
    0,
    1,
    2,
    3,
    4,
    5,
    25,
    28,
    29,
    30,
    35,
    36,
    37,
    52,
    54,
    100,
    256,
    258,
    260,
    261,
    1004,
    55799,
    43000,
    9999,
]
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-5, max_value=120)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.binary(max_size=8)
    | st.just(cbor2.undefined)
    | st.integers(min_value=0, max_value=19).map(cbor2.CBORSimpleValue)
)
_KEYS = st.integers(min_value=-2, max_value=120) | st.text(max_size=3) | st.integers()


def _tagged(children: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.builds(cbor2.CBORTag, st.sampled_from(_TAGS), children)


_VALUES = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=8)
        | st.dictionaries(_KEYS, children, max_size=4)
        | _tagged(children)
    ),
    max_leaves=15,
)


def _assert_json_ready(value: object) -> None:
    text = json.dumps(value, allow_nan=False)
    assert isinstance(json.loads(text), dict)


@settings(max_examples=300)
@given(data=st.binary(max_size=200), name=st.sampled_from(DECODERS))
def test_arbitrary_bytes_give_json_or_codec_error(data: bytes, name: str) -> None:
    try:
        decoded = decode(catalog_codec(name), data)
    except CodecError:
        return
    _assert_json_ready(decoded)


@settings(max_examples=200)
@given(message=st.dictionaries(_KEYS, _VALUES, max_size=8), name=st.sampled_from(DECODERS))
def test_arbitrary_cbor_maps_give_json_or_codec_error(
    message: dict[object, object], name: str
) -> None:
    try:
        data = cbor2.dumps(message)
    except (cbor2.CBOREncodeError, ValueError, TypeError):
        return  # hypothesis built something cbor2 itself cannot write
    try:
        decoded = decode(catalog_codec(name), data)
    except CodecError:
        return
    _assert_json_ready(decoded)


@settings(max_examples=300)
@given(
    edits=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(0, 255), st.sampled_from("rid")), max_size=4
    )
)
def test_damaged_clime_frames_give_json_or_codec_error(edits: list[tuple[int, int, str]]) -> None:
    data = bytearray(frame(CLIME, FRAMES[CLIME][0]))
    for position, byte, action in edits:
        index = position % (len(data) + 1)
        if action == "r" and index < len(data):
            data[index] = byte
        elif action == "i":
            data.insert(index, byte)
        elif index < len(data):
            del data[index]
    try:
        decoded = decode(catalog_codec(CLIME), bytes(data))
    except CodecError:
        return
    _assert_json_ready(decoded)


def test_clime_numbering_used_by_the_frames() -> None:
    numbers = numbering(CLIME)
    assert (numbers["thermometer"], numbers["backup"], numbers["backup.state.events"]) == (
        20,
        92,
        96,
    )
