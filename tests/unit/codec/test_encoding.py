"""JSON -> device CBOR: the control vector, the inverse rules, round trips."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nubes.codec import (
    Codec,
    Field,
    codec_from_yaml,
    codec_hash,
    decode,
    encode,
    hash_hex,
    yaml_to_cbor,
)
from nubes.errors import CodecError

from .catalog import DECODERS, ENCODERS, catalog_codec, catalog_text, frame, numbering
from .frames import FRAMES

CONTROL = "control.encoder.yaml"
DOWNLINK_TYPE = 0x86

SETTINGS = codec_from_yaml(
    """
version: 2
type: encoder
name: test.settings
schema:
  - interval: [$type: int]                          # 0
  - setpoint: [$div: 100, $fpp: 2]                  # 1
  - offset: [$add: 1, $mul: 2]                      # 2
  - mode: [$enum: [eco, normal, boost]]             # 3
  - ratio: [$type: float]                           # 4
  - enabled: [$type: bool]                          # 5
  - label: [$type: string]                          # 6
  - heater:                                         # 7
      - power: [$mul: 10, $type: int]               # 8
      - mode: [$enum: [off_, on_]]                  # 9
  - free:                                           # 10
"""
)


def _wire(codec: Codec, value: dict[str, Any]) -> dict[object, object]:
    wire = cbor2.loads(encode(codec, value))
    assert isinstance(wire, dict)
    return wire


def test_control_encoder_vector() -> None:
    codec = catalog_codec(CONTROL)
    data = encode(codec, {"output_1_state": 1, "output_3_state": 0})
    assert data.hex() == "a200010200"
    message = (
        bytes([DOWNLINK_TYPE])
        + bytes.fromhex(hash_hex(codec_hash(yaml_to_cbor(catalog_text(CONTROL)))))
        + data
    )
    assert message.hex() == "86c76a16dd617f713ba200010200"


def test_output_is_definite_length_in_the_order_given() -> None:
    data = encode(catalog_codec(CONTROL), {"output_4_state": 1, "output_2_state": 0})
    assert data.hex() == "a203010100"
    assert encode(catalog_codec(CONTROL), {}).hex() == "a0"


def test_unknown_key_is_refused_naming_it() -> None:
    with pytest.raises(CodecError) as caught:
        encode(catalog_codec(CONTROL), {"output_1_state": 1, "output_9_state": 1})
    assert (
        str(caught.value) == "unknown key 'output_9_state' at top level: the codec has no such key"
    )


def test_unknown_nested_key_is_refused_with_its_place() -> None:
    with pytest.raises(CodecError) as caught:
        encode(SETTINGS, {"heater": {"voltage": 230}})
    assert str(caught.value) == "unknown key 'voltage' under heater: the codec has no such key"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"interval": 60}, {0: 60}),
        ({"interval": "60"}, {0: 60}),
        ({"interval": 59.5}, {0: 60}),  # Python round: half to even
        ({"interval": 60.5}, {0: 60}),
        ({"interval": True}, {0: 1}),
        ({"ratio": 1}, {4: 1.0}),
        ({"ratio": "0.25"}, {4: 0.25}),
        ({"enabled": 0}, {5: False}),
        ({"enabled": "TRUE"}, {5: True}),
        ({"enabled": "0"}, {5: False}),
        ({"label": 12}, {6: "12"}),
        ({"label": False}, {6: "false"}),
        ({"label": "x"}, {6: "x"}),
    ],
)
def test_type_casts(value: dict[str, Any], expected: dict[int, object]) -> None:
    wire = _wire(SETTINGS, value)
    assert wire == expected
    assert [type(item) for item in wire.values()] == [type(item) for item in expected.values()]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ({"interval": "sixty"}, "'sixty' is not an integer at interval"),
        ({"interval": float("inf")}, "inf is not an integer at interval"),
        ({"interval": b"1"}, "b'1' is not an integer at interval"),
        ({"ratio": "x"}, "'x' is not a finite number at ratio"),
        ({"ratio": "nan"}, "'nan' is not a finite number at ratio"),
        ({"enabled": "maybe"}, "'maybe' is not a boolean at enabled"),
        ({"label": {"a": 1}}, "unknown key 'a' under label: the codec has no such key"),
        ({"mode": "turbo"}, "'turbo' is not one of ['eco', 'normal', 'boost'] at mode"),
        ({"mode": 3}, "3 is not one of ['eco', 'normal', 'boost'] at mode"),
        ({"setpoint": "21"}, "expected a number at setpoint, got '21'"),
        ({"setpoint": 1e308}, "1e+308 is out of range at setpoint"),
        ({7: 1}, "keys must be text, got 7 at top level"),
    ],
)
def test_values_that_cannot_be_encoded(value: dict[Any, Any], reason: str) -> None:
    with pytest.raises(CodecError) as caught:
        encode(SETTINGS, value)
    assert str(caught.value) == reason


def test_modifiers_are_inverted_in_reverse_order() -> None:
    # decoding would give (x + 1) * 2; encoding gives y / 2 - 1
    assert _wire(SETTINGS, {"offset": 8}) == {2: 3}
    assert _wire(SETTINGS, {"setpoint": 22.43}) == {1: 2243}  # 2243.0000000000005 snaps
    assert _wire(SETTINGS, {"setpoint": 22.434}) == {1: 2243}  # $fpp rounds first
    assert _wire(SETTINGS, {"setpoint": 21}) == {1: 2100}


def test_float_far_from_a_whole_number_stays_a_float() -> None:
    assert _wire(SETTINGS, {"offset": 0.5}) == {2: -0.75}


def test_enum_names_become_indexes() -> None:
    assert _wire(SETTINGS, {"mode": "boost"}) == {3: 2}
    assert _wire(SETTINGS, {"mode": 1}) == {3: 1}
    assert _wire(SETTINGS, {"mode": "(enum:7)"}) == {3: 7}


def test_nested_encoder() -> None:
    value = {"heater": {"power": 120, "mode": "on_"}, "interval": 30}
    assert encode(SETTINGS, value).hex() == "a207a2080c090100181e"
    assert _wire(SETTINGS, value) == {7: {8: 12, 9: 1}, 0: 30}


def test_values_without_rules_pass_unchanged() -> None:
    value = {"free": [1, "two", None, 3.5, {"heater": 1}]}
    with pytest.raises(CodecError, match="unknown key 'heater' under free"):
        encode(SETTINGS, value)
    assert _wire(SETTINGS, {"free": [1, "two", None, 3.5, True]}) == {
        10: [1, "two", None, 3.5, True]
    }


def test_null_is_sent_as_null() -> None:
    assert _wire(SETTINGS, {"interval": None, "heater": None}) == {0: None, 7: None}


def test_only_objects_encode() -> None:
    with pytest.raises(CodecError, match="can only encode a JSON object, got list"):
        encode(SETTINGS, [1])  # type: ignore[arg-type]


def test_values_cbor_cannot_carry_are_refused() -> None:
    with pytest.raises(CodecError, match="cannot encode as CBOR"):
        encode(SETTINGS, {"free": object()})


# --- decoder codecs encode too: the simulator builds device frames with them ---------------


@pytest.mark.parametrize("name", DECODERS)
def test_catalog_frames_survive_a_round_trip(name: str) -> None:
    codec = catalog_codec(name)
    expected = FRAMES[name][1]
    assert decode(codec, encode(codec, expected)) == expected


def test_clime_key_placed_beside_its_parent_is_found() -> None:
    codec = catalog_codec("clime.decoder.yaml")
    value = {
        "backup": {"state": "connected", "events": [{"timestamp": 100, "type": "disconnected"}]}
    }
    assert cbor2.loads(encode(codec, value)) == {92: {95: 1, 96: [100, 0, 0]}}
    assert encode(codec, value) == cbor2.dumps(
        cbor2.loads(
            frame(
                "clime.decoder.yaml", {"backup": {"state": 1, "backup.state.events": [100, 0, 0]}}
            )
        )
    )


def test_periodic_series_encode_to_t0_period_values() -> None:
    codec = catalog_codec("control.decoder.yaml")
    value = {
        "counter": {
            "measurements": [
                {"timestamp": 10, "value": 1, "delta": 0},
                {"timestamp": 70, "value": 3},
            ]
        }
    }
    numbers = numbering("control.decoder.yaml")
    assert cbor2.loads(encode(codec, value)) == {
        numbers["counter"]: {numbers["counter.measurements"]: [10, 60, 1, 0, 3, None]}
    }


@pytest.mark.parametrize(
    ("points", "reason"),
    [
        (
            [{"timestamp": 0}, {"timestamp": 60}, {"timestamp": 100}],
            "timestamps are not evenly spaced",
        ),
        ([{"timestamp": "0"}], "timestamp must be an integer, got '0'"),
        ([5], "a point must be an object, got 5"),
        ([{"timestamp": 0, "speed": 1}], "unknown key 'speed' in a point of the time series"),
    ],
)
def test_broken_series_are_refused(points: list[object], reason: str) -> None:
    codec = catalog_codec("control.decoder.yaml")
    with pytest.raises(CodecError, match=reason):
        encode(codec, {"counter": {"measurements": points}})


# --- round trips ---------------------------------------------------------------------------


@settings(max_examples=100)
@given(
    name=st.sampled_from(ENCODERS),
    values=st.lists(st.integers(min_value=-(2**31), max_value=2**31)),
)
def test_encoder_round_trip(name: str, values: list[int]) -> None:
    codec = catalog_codec(name)
    value = dict(zip([field.name for field in codec.keys], values, strict=False))
    assert decode(codec, encode(codec, value)) == value


def _wire_value(field: Field, draw: st.DrawFn, depth: int) -> object:
    """A raw value such as firmware would send for `field`."""
    scalar = st.none() | st.integers(min_value=-(2**31), max_value=2**31)
    if field.raw:
        return draw(st.lists(st.binary(max_size=4), max_size=2))
    if field.series is not None:
        width = len(field.series.values)
        points = draw(st.integers(min_value=0, max_value=3))
        values = draw(st.lists(scalar, min_size=width * points, max_size=width * points))
        if field.series.offsets:
            offsets = draw(st.lists(st.integers(-100, 100), min_size=points, max_size=points))
            rows = [[offsets[i], *values[i * width : (i + 1) * width]] for i in range(points)]
            return [1713352118, *(item for row in rows for item in row)] if points else []
        return [1713352118, draw(st.integers(0, 900)), *values]
    if field.children and depth < 4 and draw(st.booleans()):
        return _wire_map(field.children, draw, depth + 1)
    if field.enum is None and not field.forward and draw(st.booleans()):
        return draw(st.text(max_size=4) | st.binary(max_size=4))
    return draw(scalar)


def _wire_map(scope: Any, draw: st.DrawFn, depth: int) -> dict[int, object]:
    chosen = (
        draw(st.lists(st.sampled_from(sorted(scope)), unique=True, max_size=4)) if scope else []
    )
    return {scope[name].number: _wire_value(scope[name], draw, depth) for name in chosen}


@st.composite
def _frames(draw: st.DrawFn) -> tuple[Codec, bytes]:
    codec = catalog_codec(draw(st.sampled_from(DECODERS)))
    return codec, cbor2.dumps(_wire_map(codec.top, draw, 0), indefinite_containers=True)


@settings(max_examples=200)
@given(case=_frames())
def test_decoded_json_encodes_back_to_the_same_json(case: tuple[Codec, bytes]) -> None:
    codec, data = case
    decoded = decode(codec, data)
    assert decode(codec, encode(codec, decoded)) == decoded
