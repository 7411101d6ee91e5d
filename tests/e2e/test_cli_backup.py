"""`nubes backup` and `nubes restore` as operators and scheduled jobs run them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

NUBES = str(Path(sys.executable).with_name("nubes"))

TOKEN = "00112233445566778899aabbccddeeff"


def _exit_code(nubes: Any, *args: str) -> tuple[int, str]:
    done = subprocess.run(
        [NUBES, *args],
        env=nubes.env,
        cwd=nubes.workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode, done.stderr


def test_backup_then_restore_elsewhere(nubes_factory: Any, tmp_path: Path) -> None:
    source = nubes_factory({"NUBES_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/a/nubes.db"})
    source.run("device", "add", "--serial", "400000001", "--claim-token", TOKEN, "--name", "roof")
    archive = Path(source.run("backup", "--output", str(tmp_path / "backups")).strip())
    assert archive.parent == tmp_path / "backups"
    assert archive.name.startswith("nubes-backup-")
    assert "intact sqlite backup" in source.run("restore", "--verify-only", str(archive))

    target = nubes_factory({"NUBES_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/b/nubes.db"})
    said = target.run("restore", str(archive))
    assert "database at revision" in said
    assert target.json_lines("device", "list") == source.json_lines("device", "list")

    code, stderr = _exit_code(target, "restore", str(archive))
    assert (code, stderr.count("\n")) == (4, 1)
    assert "--force" in stderr
    assert "Traceback" not in stderr

    damaged = tmp_path / "damaged.tar"
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 1
    damaged.write_bytes(bytes(data))
    code, stderr = _exit_code(target, "restore", "--force", str(damaged))
    assert code == 3
    assert stderr.startswith("nubes: ")
    code, _ = _exit_code(target, "restore", str(tmp_path / "missing.tar"))
    assert code == 1


def test_scheduled_backups_keep_the_newest(nubes_factory: Any, tmp_path: Path) -> None:
    nubes = nubes_factory({"NUBES_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/nubes.db"})
    nubes.run("migrate")
    folder = tmp_path / "backups"
    folder.mkdir()
    old = [folder / f"nubes-backup-2020010{day}T000000Z.tar" for day in range(1, 4)]
    for path in old:
        path.write_bytes(b"")
    newest = Path(nubes.run("backup", "--output", str(folder), "--keep", "2").strip())
    assert sorted(folder.iterdir()) == [old[-1], newest]
    manifest = json.loads(
        subprocess.run(
            ["tar", "xOf", str(newest), "manifest.json"], capture_output=True, check=True
        ).stdout
    )
    assert manifest["database_kind"] == "sqlite"
