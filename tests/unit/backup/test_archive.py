"""The archive file: written atomically, read strictly, pruned by name."""

from __future__ import annotations

import io
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nubes.backup.archive import (
    archive_path,
    file_digest,
    open_archive,
    prune_archives,
    write_archive,
)
from nubes.backup.manifest import Manifest
from nubes.errors import ArchiveInvalid, BackupError

AT = datetime(2025, 6, 30, 23, 59, 58, tzinfo=UTC)
DUMP = bytes(range(256)) * 64


def _archive(folder: Path, dump: bytes = DUMP) -> Path:
    work = folder / "work.dump"
    work.write_bytes(dump)
    size, sha = file_digest(work)
    manifest = Manifest.build(
        created_at=AT, nubes_version="0.1.0", kind="sqlite", revision="0005", size=size, sha256=sha
    )
    path = archive_path(folder, AT)
    write_archive(path, manifest, work)
    return path


def test_archive_names() -> None:
    assert archive_path(Path("b"), AT) == Path("b/nubes-backup-20250630T235958Z.tar")
    assert archive_path(Path("b/x.tar"), AT) == Path("b/x.tar")


def test_written_then_read_back(tmp_path: Path) -> None:
    path = _archive(tmp_path)
    with tarfile.open(path) as tar:
        assert tar.getnames() == ["manifest.json", "database.sqlite"]
    copy = io.BytesIO()
    with open_archive(path) as archive:
        assert archive.manifest.dump_size == len(DUMP)
        archive.copy_dump(copy)
    assert copy.getvalue() == DUMP
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name, "work.dump"]
    assert path.stat().st_mode & 0o777 == 0o600


def test_an_existing_archive_is_not_overwritten(tmp_path: Path) -> None:
    path = _archive(tmp_path)
    before = path.read_bytes()
    with pytest.raises(BackupError, match="exists already"):
        _archive(tmp_path, b"other")
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".*partial"))


@pytest.mark.parametrize("offset", [100, 600, 2000, 10_000])
def test_any_flipped_byte_is_refused(tmp_path: Path, offset: int) -> None:
    path = _archive(tmp_path)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveInvalid), open_archive(path) as archive:
        archive.verify()


def test_a_cut_archive_is_refused(tmp_path: Path) -> None:
    path = _archive(tmp_path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ArchiveInvalid), open_archive(path) as archive:
        archive.verify()


def _tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_foreign_archives_are_refused(tmp_path: Path) -> None:
    good = _archive(tmp_path)
    with tarfile.open(good) as tar:
        manifest = tar.extractfile("manifest.json").read()  # type: ignore[union-attr]
    cases = {
        "no-manifest.tar": [("database.sqlite", DUMP)],
        "extra.tar": [("manifest.json", manifest), ("database.sqlite", DUMP), ("x", b"")],
        "wrong-name.tar": [("manifest.json", manifest), ("../database.sqlite", DUMP)],
    }
    for name, members in cases.items():
        _tar(tmp_path / name, members)
        with pytest.raises(ArchiveInvalid), open_archive(tmp_path / name):
            pass
    (tmp_path / "text.tar").write_text("hello")
    with (
        pytest.raises(ArchiveInvalid, match="not a tar archive"),
        open_archive(tmp_path / "text.tar"),
    ):
        pass
    with pytest.raises(BackupError, match="no such file"), open_archive(tmp_path / "none.tar"):
        pass


def test_prune_keeps_the_newest_by_name(tmp_path: Path) -> None:
    names = [f"nubes-backup-2025070{day}T000000Z.tar" for day in range(1, 6)]
    for name in [*names, "before-upgrade.tar", ".nubes-backup-20250709T000000Z.tar.partial"]:
        (tmp_path / name).write_bytes(b"")
    deleted = prune_archives(tmp_path, 2)
    assert [p.name for p in deleted] == names[:3]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [*names[3:], "before-upgrade.tar", ".nubes-backup-20250709T000000Z.tar.partial"]
    )
    with pytest.raises(ValueError, match="at least one"):
        prune_archives(tmp_path, 0)
