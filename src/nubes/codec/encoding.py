"""JSON -> device CBOR with a codec: the inverse of decoding, for downlinks.

Names are looked up where they stand in the schema (unlike decoding, which
has numbers and resolves them globally): JSON carries names, and the same
name ("temperature") may be several keys in several places. A name that is
not a child of its map is also looked for one level down, among the children
of its siblings, which is where a decoder keeps a key that firmware places
beside its parent (Clime's `backup.state.events`). A name found nowhere is
refused, naming it: a downlink the device would half-understand is worse than
none.

A scalar goes through the rules of decoding backwards: `$enum` name -> index,
modifiers inverted in reverse order, then the `$type` cast. Scaled values
travel as integers, so a float that the inverse modifiers leave within 1e-9
of a whole number becomes that integer (22.43 * 100 is 2243.0000000000005).
Time series are accepted in the shape decoding produces, so a decoder codec
can also build device frames (for the simulator and tests).

The result is one definite-length CBOR map, keys in the order given.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from itertools import chain
from typing import Final

import cbor2

from nubes.codec.jsonsafe import brief
from nubes.codec.schema import Codec, Field, Series
from nubes.errors import CodecError

_OUT_OF_RANGE: Final = re.compile(r"\(enum:(-?\d+)\)")
_SNAP: Final = 1e-9


def encode(codec: Codec, value: Mapping[str, object]) -> bytes:
    """Encode JSON `value` (a downlink, or a frame for the simulator) to CBOR bytes."""
    if not isinstance(value, Mapping):
        raise CodecError(f"can only encode a JSON object, got {type(value).__name__}")
    try:
        return cbor2.dumps(_encode_map(codec.top, value, ""))
    except RecursionError as err:
        raise CodecError("JSON nests too deep to encode") from err
    except (cbor2.CBOREncodeError, ValueError, TypeError) as err:
        raise CodecError(f"cannot encode as CBOR: {err}") from err


def _encode_map(
    scope: Mapping[str, Field], value: Mapping[str, object], path: str
) -> dict[int, object]:
    wire: dict[int, object] = {}
    for name, item in value.items():
        found = _lookup(scope, name, path)
        wire[found.number] = _encode_value(found, item)
    return wire


def _lookup(scope: Mapping[str, Field], name: object, path: str) -> Field:
    if not isinstance(name, str):
        raise CodecError(f"keys must be text, got {brief(name)} at {path or 'top level'}")
    found = scope.get(name)
    if found is not None:
        return found
    for sibling in scope.values():
        found = sibling.children.get(name)
        if found is not None:
            return found
    where = f"under {path}" if path else "at top level"
    raise CodecError(f"unknown key {brief(name)} {where}: the codec has no such key")


def _encode_value(field: Field, value: object) -> object:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return _encode_map(field.children, value, field.path)
    if isinstance(value, list | tuple):
        if field.series is not None:
            return _encode_series(field, field.series, value)
        return [_encode_value(field, item) for item in value]
    return _encode_scalar(field, value)


def _encode_scalar(field: Field, value: object) -> object:
    if field.enum is not None:
        value = _enum_index(field.enum, value, field.path)
    if field.backward:
        value = _unmodify(field, value)
    if field.wire_type is not None:
        value = _CASTS[field.wire_type](value, field.path)
    return value


def _enum_index(names: tuple[object, ...], value: object, path: str) -> object:
    if isinstance(value, str):
        if value in names:
            return names.index(value)
        match = _OUT_OF_RANGE.fullmatch(value)  # what decoding gives an unknown index
        if match:
            return int(match.group(1))
    elif type(value) is int and 0 <= value < len(names):
        return value
    raise CodecError(f"{brief(value)} is not one of {list(names)} at {path}")


def _unmodify(field: Field, value: object) -> object:
    if type(value) is not int and type(value) is not float:
        raise CodecError(f"expected a number at {field.path}, got {brief(value)}")
    result: float = value
    try:
        for operation, operand in field.backward:
            result = operation(result, operand)
    except OverflowError as err:
        raise CodecError(f"{brief(value)} is out of range at {field.path}") from err
    if type(result) is float:
        if not math.isfinite(result):
            raise CodecError(f"{brief(value)} is out of range at {field.path}")
        whole = round(result)
        if abs(result - whole) <= _SNAP * max(1.0, abs(result)):
            return whole
    return result


def _encode_series(field: Field, series: Series, points: Sequence[object]) -> list[object]:
    if not points:
        return []
    checked = [_as_point(field, point) for point in points]
    stamps = [_timestamp(field, point) for point in checked]
    rows = [_encode_point(field, series.values, point) for point in checked]
    if series.offsets:
        pairs = zip(stamps, rows, strict=True)
        return [stamps[0], *chain.from_iterable([at - stamps[0], *row] for at, row in pairs)]
    return [stamps[0], _period(field, stamps), *chain.from_iterable(rows)]


def _as_point(field: Field, point: object) -> Mapping[str, object]:
    if not isinstance(point, Mapping):
        raise CodecError(
            f"time series at {field.path}: a point must be an object, got {brief(point)}"
        )
    return point


def _timestamp(field: Field, point: Mapping[str, object]) -> int:
    stamp = point.get("timestamp")
    if type(stamp) is not int:
        raise CodecError(
            f"time series at {field.path}: timestamp must be an integer, got {brief(stamp)}"
        )
    return stamp


def _encode_point(
    field: Field, values: tuple[Field, ...], point: Mapping[str, object]
) -> list[object]:
    names = {value.name for value in values}
    extra = [name for name in point if name != "timestamp" and name not in names]
    if extra:
        raise CodecError(
            f"unknown key {brief(extra[0])} in a point of the time series at {field.path}"
        )
    return [_encode_value(value, point.get(value.name)) for value in values]


def _period(field: Field, stamps: list[int]) -> int:
    """The one period of a `$tsp` series; a single point carries period 0."""
    period = stamps[1] - stamps[0] if len(stamps) > 1 else 0
    for index, stamp in enumerate(stamps):
        if stamp != stamps[0] + index * period:
            raise CodecError(f"time series at {field.path}: timestamps are not evenly spaced")
    return period


def _to_int(value: object, path: str) -> int:
    if isinstance(value, bool | int):
        return int(value)
    if isinstance(value, float) and math.isfinite(value):
        return round(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise CodecError(f"{brief(value)} is not an integer at {path}")


def _to_float(value: object, path: str) -> float:
    if isinstance(value, bool | int | float | str):
        try:
            result = float(value)
        except (ValueError, OverflowError):
            result = math.nan
        if math.isfinite(result):
            return result
    raise CodecError(f"{brief(value)} is not a finite number at {path}")


def _to_bool(value: object, path: str) -> bool:
    if isinstance(value, bool | int | float):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
        return _BOOL_WORDS[value.strip().lower()]
    raise CodecError(f"{brief(value)} is not a boolean at {path}")


def _to_string(value: object, path: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise CodecError(f"{brief(value)} is not text at {path}")


_BOOL_WORDS: Final = {"true": True, "false": False, "1": True, "0": False}
_CASTS: Final[Mapping[str, Callable[[object, str], object]]] = {
    "int": _to_int,
    "float": _to_float,
    "bool": _to_bool,
    "string": _to_string,
}
