"""Device CBOR -> JSON with a decoder codec.

Every integer key is resolved through the codec's one flat table, whatever
map it appears in: firmware places keys where it likes (Clime puts
`backup.state.events` beside `state`), and the number alone identifies the
field. What a value becomes is then decided by its shape first and its field
second: maps decode recursively, arrays are time series when the field says
so and element-wise otherwise, scalars take the field's enum or modifiers.
Anything a field does not explain passes through `to_json`, so a frame with
surprises still decodes (unknown key N becomes "(key:N)") instead of failing.

`CodecError` is raised only for bytes that are not one CBOR map and for time
series whose layout is broken: there the values cannot be assigned to points.

This is the hot path of the pipeline (one call per uplink), hence the
`type(x) is` checks and the absence of per-value allocations beyond the
output itself.
"""

from __future__ import annotations

from typing import Final

from nubes.codec.cbor import read_cbor
from nubes.codec.jsonsafe import MAX_SAFE_INT, brief, int_text, json_int, key_text, to_json
from nubes.codec.schema import POSITIONAL, Codec, Field, Series
from nubes.errors import CodecError

_PLAIN: Final = Field(number=POSITIONAL, path="(unknown key)", name="")


def decode(codec: Codec, data: bytes) -> dict[str, object]:
    """Decode the CBOR application data of one UPLOAD_DATA message to JSON."""
    message = read_cbor(data)
    if type(message) is not dict:
        raise CodecError(f"application data must be a CBOR map, got {type(message).__name__}")
    return _decode_map(codec.keys, message)


def _decode_map(keys: tuple[Field, ...], message: dict[object, object]) -> dict[str, object]:
    decoded: dict[str, object] = {}
    count = len(keys)
    for key, value in message.items():
        if type(key) is not int or not 0 <= key < count:
            decoded[_unknown_key(key)] = _decode_value(keys, _PLAIN, value)
            continue
        found = keys[key]
        if type(value) is int and found.plain:  # most values: inlined for speed
            decoded[found.name] = (
                value if -MAX_SAFE_INT <= value <= MAX_SAFE_INT else int_text(value)
            )
        else:
            decoded[found.name] = _decode_value(keys, found, value)
    return decoded


def _unknown_key(key: object) -> str:
    if type(key) is int:
        return f"(key:{int_text(key)})"
    return key_text(key)


def _decode_value(keys: tuple[Field, ...], field: Field, value: object) -> object:
    if field.raw:
        return to_json(value)
    if type(value) is int or type(value) is float:
        return _decode_number(field, value)
    if type(value) is dict:
        return _decode_map(keys, value)
    if type(value) is list:
        if field.series is not None:
            return _decode_series(keys, field, field.series, value)
        return [_decode_value(keys, field, item) for item in value]
    return to_json(value)


def _decode_number(field: Field, value: float) -> object:
    """An int or float through the field's enum or modifiers."""
    if field.enum is not None and type(value) is int:
        return _enum_name(field.enum, value)
    result = value
    try:
        for operation, operand in field.forward:
            result = operation(result, operand)
    except OverflowError:  # a bignum no float can hold: keep it exact, as text
        return to_json(value)
    if type(result) is float:
        return result if result - result == 0.0 else None  # NaN and ±inf are not JSON
    return to_json(result)  # integer operands keep integers integral


def _enum_name(names: tuple[object, ...], index: int) -> object:
    if 0 <= index < len(names):
        return names[index]
    return f"(enum:{int_text(index)})"


def _decode_series(
    keys: tuple[Field, ...], field: Field, series: Series, items: list[object]
) -> list[dict[str, object]]:
    if series.offsets:
        return _decode_offsets(keys, field, series.values, items)
    return _decode_periodic(keys, field, series.values, items)


def _decode_periodic(
    keys: tuple[Field, ...], field: Field, values: tuple[Field, ...], items: list[object]
) -> list[dict[str, object]]:
    """`[t0, period, v(0,0)..v(0,N-1), v(1,0)..]`: point i is at t0 + i*period."""
    if not items:
        return []
    width = len(values)
    if len(items) < 2 or (len(items) - 2) % width:
        raise CodecError(_layout_error(field, "[t0, period, values...]", width, len(items)))
    start = _stamp(field, items[0])
    period = _stamp(field, items[1])
    return [
        _point(keys, values, items, 2 + index * width, start + index * period)
        for index in range((len(items) - 2) // width)
    ]


def _decode_offsets(
    keys: tuple[Field, ...], field: Field, values: tuple[Field, ...], items: list[object]
) -> list[dict[str, object]]:
    """`[t_abs, off_0, values_0.., off_1, values_1..]`: point k is at t_abs + off_k."""
    if not items:
        return []
    width = len(values) + 1
    if (len(items) - 1) % width:
        raise CodecError(_layout_error(field, "[t_abs, offset, values...]", width - 1, len(items)))
    start = _stamp(field, items[0])
    return [
        _point(keys, values, items, first + 1, start + _stamp(field, items[first]))
        for first in range(1, len(items), width)
    ]


def _point(
    keys: tuple[Field, ...], values: tuple[Field, ...], items: list[object], first: int, at: int
) -> dict[str, object]:
    point: dict[str, object] = {"timestamp": json_int(at)}
    for offset, value in enumerate(values):
        point[value.name] = _decode_value(keys, value, items[first + offset])
    return point


def _stamp(field: Field, value: object) -> int:
    if type(value) is not int:
        raise CodecError(f"time series at {field.path}: timestamp {brief(value)} is no integer")
    return value


def _layout_error(field: Field, layout: str, width: int, length: int) -> str:
    return (
        f"time series at {field.path}: {length} items do not form {layout} "
        f"with {width} value(s) per point"
    )
