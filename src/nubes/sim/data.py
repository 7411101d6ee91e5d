"""Application data for any decoder codec, shaped like the firmware's.

Walks the decoder schema with the codec's key numbering (depth-first,
document order, `$` keys skipped, time-series children unnumbered) and makes
plausible integers: what `app_cbor.c` would put under each key before the
cloud's `$div`/`$mul` turn them into units. Time series get a few points.
"""

from __future__ import annotations

import random
import time
from typing import Any


def sample_values(document: dict[str, Any], sequence: int, rng: random.Random) -> dict[int, Any]:
    """A CBOR-ready map with integer keys for the decoder `document`."""
    counter = [0]
    return _walk(document.get("schema") or [], counter, sequence, rng)


def _walk(
    schema: list[Any], counter: list[int], sequence: int, rng: random.Random
) -> dict[int, Any]:
    values: dict[int, Any] = {}
    for entry in schema:
        if not isinstance(entry, dict) or len(entry) != 1:
            continue
        name, children = next(iter(entry.items()))
        if str(name).startswith("$"):
            continue
        key = counter[0]
        counter[0] += 1
        children = children or []
        modifiers = _modifiers(children)
        nested = [
            c for c in children if isinstance(c, dict) and not str(next(iter(c))).startswith("$")
        ]
        if "$tsp" in modifiers or "$tso" in modifiers:
            values[key] = _series(modifiers, rng)
        elif nested:
            values[key] = _walk(nested, counter, sequence, rng)
        else:
            values[key] = _leaf(str(name), modifiers, sequence, rng)
    return values


def _modifiers(children: list[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for child in children:
        if isinstance(child, dict) and len(child) == 1:
            name, value = next(iter(child.items()))
            if str(name).startswith("$"):
                found[str(name)] = value
    return found


def _leaf(name: str, modifiers: dict[str, Any], sequence: int, rng: random.Random) -> Any:
    if "$enum" in modifiers:
        return rng.randrange(max(1, len(modifiers["$enum"] or [])))
    if name == "sequence":
        return sequence
    if name == "timestamp":
        return int(time.time())
    if "$div" in modifiers:
        return rng.randint(1000, 3000)
    return rng.randint(0, 100)


def _series(modifiers: dict[str, Any], rng: random.Random) -> list[Any]:
    children = modifiers.get("$tsp") or modifiers.get("$tso") or []
    width = max(1, len(children))
    now = int(time.time())
    if "$tsp" in modifiers:
        points = [rng.randint(1000, 3000) for _ in range(2 * width)]
        return [now - 600, 300, *points]
    return [now - 600, 0, *[rng.randint(1000, 3000) for _ in range(width)]]
