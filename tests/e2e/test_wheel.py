"""The wheel the Dockerfile installs holds everything the package needs.

No Docker engine runs here, so the image is never built in CI; its
`wheels` stage is `pip wheel .` and its runtime installs only that wheel.
Package data left out of the wheel (a migration, a codec, the built
portal) would pass every test run from the source tree and fail only in
the image. So: build the wheel as the Dockerfile does, compare its files
with the source tree, and migrate a database with the package imported
from the unpacked wheel instead of the source tree.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "nubes"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheels")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--wheel-dir", str(out), "."],
        cwd=ROOT,
        check=True,
        timeout=300,
    )
    (built,) = out.glob("nubes-*.whl")
    return built


def _source_files() -> set[str]:
    return {
        f"nubes/{path.relative_to(PACKAGE).as_posix()}"
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_the_wheel_holds_every_file_of_the_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        packed = {name for name in archive.namelist() if name.startswith("nubes/")}
    assert _source_files() - packed == set()
    assert any(name.startswith("nubes/store/migrations/versions/") for name in packed)


def test_the_unpacked_wheel_migrates_a_database(wheel: Path, tmp_path: Path) -> None:
    unpacked = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    script = (
        "import nubes, sys\n"
        "from nubes.store.database import head_revision, migrate_sync\n"
        "migrate_sync(sys.argv[1])\n"
        "print(nubes.__file__)\n"
        "print(head_revision())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, f"sqlite+aiosqlite:///{tmp_path}/nubes.db"],
        env={"PYTHONPATH": str(unpacked), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    where, head = done.stdout.split()
    assert Path(where).is_relative_to(unpacked)
    assert (
        head
        == sorted(
            p.stem.split("_")[0] for p in (PACKAGE / "store/migrations/versions").glob("0*.py")
        )[-1]
    )
