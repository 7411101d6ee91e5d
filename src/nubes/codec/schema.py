"""A codec document, validated and compiled once into lookup tables.

A device uploads its codec as a YAML document (CBOR-encoded). Decoding a
frame must not walk that document again, so `parse_codec` turns it into
`Field` objects: one per schema key, holding its JSON name and its rules
(modifiers as ready-to-call operations, enum tuple, time-series layout), and
a flat table indexed by the key number the firmware uses.

Numbering follows `gen-codec.py`: depth-first in document order, every key
that does not start with `$` takes the next number from 0; whatever sits
inside a `$keyword` (the positional values of `$tsp`/`$tso`) is not numbered.

The document comes from a device, so every check names the place it failed
("unknown keyword $foo at thermometer.temperature"); the reason ends up in
the communication log, where a firmware developer reads it.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal, cast

from nubes.codec.jsonsafe import brief
from nubes.errors import CodecError

Kind = Literal["decoder", "encoder"]
Operation = Callable[[float, float], float]

POSITIONAL: Final = -1
"""The `Field.number` of a `$tsp`/`$tso` value: it has a place, not a key."""

_MODIFIERS: Final = ("$div", "$mul", "$add", "$sub", "$fpp")
_KEYWORDS: Final[Mapping[str, frozenset[str]]] = {
    "decoder": frozenset((*_MODIFIERS, "$key", "$enum", "$tsp", "$tso", "$mbus", "$wmbus")),
    "encoder": frozenset((*_MODIFIERS, "$enum", "$type")),
}
_TYPES: Final = ("int", "float", "bool", "string")
_MAX_FPP: Final = 30


# `$fpp` operands are validated ints, so round() fits the common signature.
_round: Final = cast(Operation, round)

# keyword -> (operation while decoding, its inverse while encoding)
_OPERATIONS: Final[Mapping[str, tuple[Operation, Operation]]] = {
    "$div": (operator.truediv, operator.mul),
    "$mul": (operator.mul, operator.truediv),
    "$add": (operator.add, operator.sub),
    "$sub": (operator.sub, operator.add),
    "$fpp": (_round, _round),
}


@dataclass(frozen=True, slots=True)
class Series:
    """The layout of a `$tsp` (periodic) or `$tso` (offsets) time series."""

    offsets: bool
    values: tuple[Field, ...]


@dataclass(frozen=True, slots=True, eq=False)
class Field:
    """One schema key with its rules, ready for decoding and encoding."""

    number: int
    path: str
    name: str
    forward: tuple[tuple[Operation, float], ...] = ()
    backward: tuple[tuple[Operation, float], ...] = ()
    enum: tuple[object, ...] | None = None
    series: Series | None = None
    raw: bool = False
    wire_type: str | None = None
    children: Mapping[str, Field] = field(default_factory=dict)
    plain: bool = True
    """No enum, modifier or raw rule: an integer passes unchanged (decoding fast path)."""


@dataclass(frozen=True, slots=True, eq=False)
class Codec:
    """A parsed codec; compared by identity, as there is one per hash.

    `keys[n]` is the field the firmware numbers n; `top` names the fields at
    the top of the schema, for encoding JSON, which is looked up by name.
    """

    kind: Kind
    name: str
    document: dict[str, object]
    keys: tuple[Field, ...]
    top: Mapping[str, Field]


def parse_codec(document: object) -> Codec:
    """Validate a loaded codec document and compile it, or raise `CodecError`."""
    if not isinstance(document, dict):
        raise CodecError(f"a codec document must be a map, got {_type_name(document)}")
    kind, name, schema = _header(document)
    table: list[Field] = []
    try:
        top = _compile_items(schema, "schema", _Context(kind, table))
    except RecursionError as err:
        raise CodecError("codec schema nests too deep") from err
    return Codec(kind, name, document, tuple(table), MappingProxyType(_by_name(top)))


def _header(document: dict[object, object]) -> tuple[Kind, str, list[object]]:
    if not all(isinstance(key, str) for key in document):
        raise CodecError("the keys of a codec document must be text")
    version = document.get("version")
    if type(version) is not int or version != 2:
        raise CodecError(f"codec version must be 2, got {brief(version)}")
    kind = document.get("type")
    if kind != "decoder" and kind != "encoder":
        raise CodecError(f"codec type must be decoder or encoder, got {brief(kind)}")
    name = document.get("name")
    if not isinstance(name, str):
        raise CodecError(f"codec name must be text, got {brief(name)}")
    schema = document.get("schema")
    if not isinstance(schema, list):
        raise CodecError(f"codec schema must be a list, got {_type_name(schema)}")
    return kind, name, schema


@dataclass(frozen=True, slots=True)
class _Context:
    """What compiling needs beyond the item: allowed keywords, numbering table."""

    kind: Kind
    table: list[Field] | None

    def positional(self) -> _Context:
        return _Context(self.kind, None)


def _compile_items(items: object, path: str, context: _Context) -> list[Field]:
    """Compile a list that may hold only keys (the schema, a series)."""
    rules, fields = _split(items, path, context)
    if rules:
        raise CodecError(f"keyword {rules[0][0]} at {path} does not belong to a key")
    return fields


def _split(
    items: object, path: str, context: _Context
) -> tuple[list[tuple[str, object]], list[Field]]:
    """Separate a key's list into its keywords and its compiled child keys."""
    if items is None:
        return [], []
    if not isinstance(items, list):
        raise CodecError(f"expected a list of single-key maps at {path}, got {_type_name(items)}")
    rules: list[tuple[str, object]] = []
    fields: list[Field] = []
    for item in items:
        key, value = _entry(item, path)
        if key.startswith("$"):
            _check_keyword(key, path, context.kind)
            rules.append((key, value))
        else:
            fields.append(_compile_field(key, value, _join(path, key), context))
    return rules, fields


def _entry(item: object, path: str) -> tuple[str, object]:
    if not isinstance(item, dict) or len(item) != 1:
        raise CodecError(f"expected a single-key map at {path}, got {_describe(item)}")
    ((key, value),) = item.items()
    if not isinstance(key, str) or not key:
        raise CodecError(f"a key must be non-empty text, got {brief(key)} at {path}")
    return key, value


def _check_keyword(keyword: str, path: str, kind: Kind) -> None:
    if keyword in _KEYWORDS[kind]:
        return
    other = "encoder" if kind == "decoder" else "decoder"
    if keyword in _KEYWORDS[other]:
        article = "an" if kind == "encoder" else "a"
        raise CodecError(f"keyword {keyword} is not allowed in {article} {kind}, at {path}")
    raise CodecError(f"unknown keyword {keyword} at {path}")


def _compile_field(key: str, items: object, path: str, context: _Context) -> Field:
    table = context.table
    number = POSITIONAL if table is None else len(table)
    if table is not None:
        table.append(_PLACEHOLDER)  # numbered before its children, as gen-codec.py does
    rules, children = _split(items, path, context)
    if table is None and children:
        raise CodecError(f"a time-series value takes no keys, at {path}")
    built = _build(number, key, path, rules, children, context)
    if table is not None:
        table[number] = built
    return built


@dataclass(slots=True)
class _Rules:
    """The keywords of one key, gathered before the frozen `Field` is built."""

    modifiers: list[tuple[str, float]] = field(default_factory=list)
    name: str | None = None
    enum: tuple[object, ...] | None = None
    series: Series | None = None
    raw: bool = False
    wire_type: str | None = None
    seen: set[str] = field(default_factory=set)


def _build(
    number: int,
    key: str,
    path: str,
    keywords: list[tuple[str, object]],
    children: list[Field],
    context: _Context,
) -> Field:
    rules = _Rules()
    for keyword, value in keywords:
        _add_rule(rules, keyword, value, path, context)
    return Field(
        number=number,
        path=path,
        name=rules.name or key,
        forward=tuple((_OPERATIONS[word][0], operand) for word, operand in rules.modifiers),
        backward=tuple(
            (_OPERATIONS[word][1], operand) for word, operand in reversed(rules.modifiers)
        ),
        enum=rules.enum,
        series=rules.series,
        raw=rules.raw,
        wire_type=rules.wire_type,
        children=MappingProxyType(_by_name(children)),
        plain=not (rules.modifiers or rules.enum is not None or rules.raw),
    )


def _add_rule(rules: _Rules, keyword: str, value: object, path: str, context: _Context) -> None:
    if keyword in _OPERATIONS:
        rules.modifiers.append((keyword, _operand(keyword, value, path)))
        return
    if keyword in rules.seen or (keyword in ("$tsp", "$tso") and rules.series is not None):
        raise CodecError(f"{keyword} given twice at {path}")
    rules.seen.add(keyword)
    if keyword == "$key":
        rules.name = _text(keyword, value, path)
    elif keyword == "$enum":
        rules.enum = _enum(value, path)
    elif keyword in ("$tsp", "$tso"):
        rules.series = _series(keyword, value, path, context)
    elif keyword == "$type":
        rules.wire_type = _wire_type(value, path)
    else:  # $mbus, $wmbus: meter frames, kept as they came
        rules.raw = True


def _operand(keyword: str, value: object, path: str) -> float:
    if keyword == "$fpp":
        if type(value) is not int or not 0 <= value <= _MAX_FPP:
            raise CodecError(
                f"$fpp needs a whole number 0..{_MAX_FPP} at {path}, got {brief(value)}"
            )
        return value
    if type(value) is int or (type(value) is float and math.isfinite(value)):
        if keyword == "$div" and value == 0:
            raise CodecError(f"$div by zero at {path}")
        return value
    raise CodecError(f"{keyword} needs a finite number at {path}, got {brief(value)}")


def _series(keyword: str, value: object, path: str, context: _Context) -> Series:
    values = _compile_items(value, f"{path}.{keyword}", context.positional())
    if not values:
        raise CodecError(f"{keyword} needs at least one value, at {path}")
    return Series(offsets=keyword == "$tso", values=tuple(values))


def _enum(value: object, path: str) -> tuple[object, ...]:
    if not isinstance(value, list) or not value:
        raise CodecError(f"$enum needs a non-empty list at {path}, got {_describe(value)}")
    if not all(item is None or isinstance(item, str | int | float) for item in value):
        raise CodecError(f"$enum items must be text or numbers, at {path}")
    return tuple(value)


def _text(keyword: str, value: object, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise CodecError(f"{keyword} needs non-empty text at {path}, got {brief(value)}")
    return value


def _wire_type(value: object, path: str) -> str:
    if not isinstance(value, str) or value not in _TYPES:
        raise CodecError(f"$type must be one of {', '.join(_TYPES)} at {path}, got {brief(value)}")
    return value


def _by_name(fields: list[Field]) -> dict[str, Field]:
    """Name -> field; with duplicate names the first wins, like a JSON reader's first hit."""
    named: dict[str, Field] = {}
    for child in fields:
        named.setdefault(child.name, child)
    return named


def _join(path: str, key: str) -> str:
    return key if path == "schema" else f"{path}.{key}"


def _type_name(value: object) -> str:
    return "nothing" if value is None else type(value).__name__


def _describe(value: object) -> str:
    if isinstance(value, dict):
        return f"a map of {len(value)} keys"
    return _type_name(value)


_PLACEHOLDER: Final = Field(number=POSITIONAL, path="", name="")
