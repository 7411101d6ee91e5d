"""`nubes device psk`: set, rotate and remove a device's DTLS PSK from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

OLD, NEW = "11" * 16, "22" * 32


def test_psk_set_rotate_and_remove(nubes_factory: Any, tmp_path: Path) -> None:
    nubes = nubes_factory({"NUBES_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/nubes.db"})
    nubes.run("device", "add", "--serial", "400000001", "--claim-token", "00" * 16, "--psk", OLD)
    said = nubes.run("device", "psk", "--serial", "400000001", "--psk", NEW)
    assert "PSK set for serial 400000001; the previous PSK stays valid until" in said
    shown = json.loads(nubes.run("device", "show", "--serial", "400000001", "--json"))
    assert shown["psk_previous_until"] is not None
    assert OLD not in json.dumps(shown)
    assert NEW not in json.dumps(shown)
    removed = nubes.run("device", "psk", "--serial", "400000001")
    assert removed.strip() == "PSK removed for serial 400000001"
    shown = json.loads(nubes.run("device", "show", "--serial", "400000001", "--json"))
    assert shown["psk_previous_until"] is None
    with pytest.raises(AssertionError, match="no device with serial 400000002"):
        nubes.run("device", "psk", "--serial", "400000002", "--psk", NEW)
