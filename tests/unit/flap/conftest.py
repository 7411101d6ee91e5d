"""Vectors of the device protocol, copied from `shared/vectors/` into `data/`.

The copies keep the suite self-contained (CI has no `../shared`); they are
the spec's test vectors and the CHESTER SDK's recorded boot exchange
(`tests/subsys/ctr_cloud/src/test_cloud.c`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"

CLAIM_TOKEN = bytes.fromhex("98a8856ba6534bd5212176b22f3acbb3")
SERIAL = 2159017985


@pytest.fixture(scope="session")
def vectors() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((DATA / "flap.json").read_text())
    return document


@pytest.fixture(scope="session")
def boot_trace() -> list[tuple[bytes, bytes | None]]:
    """(device datagram, cloud answer or None) pairs, in order.

    The trace ends with `up -` (the device sends nothing more), which pairs
    with nothing and is left out.
    """
    rows = [line.split() for line in (DATA / "chester-boot-trace.txt").read_text().splitlines()]
    assert rows[-1] == ["up", "-"]
    pairs = []
    for (up, sent), (down, answer) in zip(rows[0:-1:2], rows[1::2], strict=True):
        assert (up, down) == ("up", "down")
        pairs.append((bytes.fromhex(sent), None if answer == "-" else bytes.fromhex(answer)))
    return pairs
