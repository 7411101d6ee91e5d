"""Backup archives: one uncompressed tar holding `manifest.json`, then the dump.

Why one tar file rather than a folder: a backup is then one thing to copy,
upload, list or delete (retention counts files), standard tools read it
(`tar tf BACKUP`, `tar xOf BACKUP manifest.json`), and the standard library
writes it. Uncompressed, because PostgreSQL's custom format is compressed
already; a SQLite dump is the database file as is, which keeps a restore a
plain copy (compress archives on their way off the host if space matters).
The manifest comes first, so it is read without going through the dump.

An archive is written as a hidden `.partial` file next to its final name,
fsynced, then linked into place (never over an existing file) and the folder
fsynced: an interrupted backup never leaves a file that looks complete, and
pruning never counts one. Reading accepts exactly the two expected members
and never extracts by a member's name: the dump is streamed to wherever the
restore chooses, while its SHA-256 is computed.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

from nubes.backup.manifest import MANIFEST_MAX_SIZE, MANIFEST_NAME, Manifest
from nubes.errors import ArchiveInvalid, BackupError

__all__ = [
    "Archive",
    "archive_path",
    "file_digest",
    "fsync_folder",
    "open_archive",
    "prune_archives",
    "write_archive",
]

CHUNK = 1 << 20
ARCHIVE_PATTERN = re.compile(r"nubes-backup-\d{8}T\d{6}Z\.tar")


def archive_path(output: Path, at: datetime) -> Path:
    """`output` itself if it names a .tar file, else a timestamped file in that folder."""
    if output.suffix == ".tar":
        return output
    return output / f"nubes-backup-{at:%Y%m%dT%H%M%SZ}.tar"


def file_digest(path: Path) -> tuple[int, str]:
    """The size and SHA-256 (hex) of a file."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def write_archive(path: Path, manifest: Manifest, dump: Path) -> None:
    """Write the archive at `path` atomically; `BackupError` if `path` exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with open(partial, "wb", opener=_owner_only) as raw:
            with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
                data = manifest.to_json()
                _add(tar, MANIFEST_NAME, io.BytesIO(data), len(data))
                with dump.open("rb") as file:
                    _add(tar, manifest.dump_name, file, manifest.dump_size)
            raw.flush()
            os.fsync(raw.fileno())
        try:
            os.link(partial, path)
        except FileExistsError as err:
            raise BackupError(f"{path} exists already; not overwritten") from err
        fsync_folder(path.parent)
    finally:
        partial.unlink(missing_ok=True)


def _owner_only(path: str, flags: int) -> int:
    """Archives hold claim tokens, PSKs and callback secrets: readable by their owner only."""
    return os.open(path, flags, 0o600)


def _add(tar: tarfile.TarFile, name: str, file: IO[bytes], size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(time.time())
    tar.addfile(info, file)


def fsync_folder(folder: Path) -> None:
    """Make a rename or new file in `folder` durable."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@dataclass
class Archive:
    """An open archive whose manifest and member list have been checked."""

    path: Path
    manifest: Manifest
    _tar: tarfile.TarFile
    _dump: tarfile.TarInfo

    def copy_dump(self, target: IO[bytes] | None = None) -> None:
        """Stream the dump into `target` (or nowhere), then check its size and hash.

        Raises `ArchiveInvalid` at the end if they differ: whoever gave
        `target` must throw away what was written.
        """
        source = self._tar.extractfile(self._dump)
        if source is None:  # pragma: no cover - the member was checked to be a file
            raise ArchiveInvalid("the dump is not a file")
        digest, size = hashlib.sha256(), 0
        try:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                if target is not None:
                    target.write(chunk)
        except (tarfile.TarError, EOFError) as err:
            raise ArchiveInvalid(f"{self.path}: the dump is cut short: {err}") from err
        self.manifest.check_dump(size, digest.hexdigest())

    def verify(self) -> None:
        """Read the whole dump once: `ArchiveInvalid` unless it matches the manifest."""
        self.copy_dump(None)


@contextmanager
def open_archive(path: Path) -> Iterator[Archive]:
    """Open a backup archive and check its manifest and members."""
    with _open_tar(path) as tar:
        try:
            manifest, dump = _read_members(tar)
        except (tarfile.TarError, EOFError) as err:
            raise ArchiveInvalid(f"{path} is damaged: {err}") from err
        yield Archive(path, manifest, tar, dump)


def _open_tar(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, mode="r:")
    except FileNotFoundError as err:
        raise BackupError(f"{path}: no such file") from err
    except OSError as err:
        raise BackupError(f"cannot read {path}: {err.strerror or err}") from err
    except tarfile.TarError as err:
        raise ArchiveInvalid(f"{path} is not a Nubes backup (not a tar archive)") from err


def _read_members(tar: tarfile.TarFile) -> tuple[Manifest, tarfile.TarInfo]:
    first = tar.next()
    if first is None or first.name != MANIFEST_NAME or not first.isfile():
        raise ArchiveInvalid(f"not a Nubes backup: {MANIFEST_NAME} is not its first member")
    if first.size > MANIFEST_MAX_SIZE:
        raise ArchiveInvalid("not a Nubes backup: the manifest is too large")
    file = tar.extractfile(first)
    if file is None:  # pragma: no cover - checked to be a file above
        raise ArchiveInvalid("the manifest is not a file")
    manifest = Manifest.from_json(file.read())
    dump = tar.next()
    if dump is None or dump.name != manifest.dump_name or not dump.isfile():
        raise ArchiveInvalid(f"the archive does not hold {manifest.dump_name} after the manifest")
    if dump.size != manifest.dump_size:
        raise ArchiveInvalid(
            f"the dump is damaged: {dump.size} bytes, the manifest says {manifest.dump_size}"
        )
    if tar.next() is not None:
        raise ArchiveInvalid("the archive holds more than a manifest and a dump")
    return manifest, dump


def prune_archives(folder: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` archives in `folder`; the deleted paths.

    Only names `nubes backup` gives (`nubes-backup-<UTC time>.tar`) count, so
    an archive renamed by hand (`before-upgrade.tar`) is never deleted. The
    timestamp in the name orders them, not the files' times, which copies change.
    """
    if keep < 1:
        raise ValueError("keep at least one archive")
    archives = sorted(
        path for path in folder.iterdir() if ARCHIVE_PATTERN.fullmatch(path.name) and path.is_file()
    )
    old = archives[:-keep]
    for path in old:
        path.unlink()
    return old
