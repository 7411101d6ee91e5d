"""SQLite backups with SQLite's online backup API; restores by atomic replacement.

The backup API (`sqlite3.Connection.backup`) copies the database page by
page in one step under a read transaction. Nubes runs SQLite in WAL mode,
where a reader never blocks the writer, so a backup is a consistent snapshot
taken while `nubes serve` keeps writing. Copying the file instead would not
be: the newest transactions may still sit in the `-wal` file.

A restore writes the new database to a temporary file in the target's own
folder (same file system, so the final rename is atomic), fsyncs it, checks
it, removes the old `-wal`/`-shm` files (they belong to the old database and
would be replayed onto the new one), renames it into place and fsyncs the
folder. Readers see the old database or the new one, never a mixture.

A running server must not have the file open while it is replaced: it would
keep writing to the old one. Every connection in WAL mode holds a shared
lock on one byte of the `-shm` file (SQLite's "dead man switch", offset 128
in the unix VFS), so trying an exclusive lock there tells whether any
process still has the database open; the restore refuses if so and keeps
that lock while it swaps the files, so that no one opens it meanwhile.
This is best effort (a file system without POSIX locks, such as some
network mounts, defeats it): docs/backup.md says to stop Nubes first.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from sqlalchemy.engine import URL

from nubes.backup.archive import fsync_folder
from nubes.errors import ArchiveInvalid, BackupError, TargetNotEmpty

__all__ = [
    "check_copy",
    "database_path",
    "exclusive_use",
    "has_tables",
    "replace_database",
    "snapshot",
]

# Where the unix VFS keeps its "dead man switch" lock in the -shm file:
# after the 8 WAL locks, which start at byte 120.
_SHM_DMS_OFFSET = 128
_BUSY_TIMEOUT_SECONDS = 30.0
_COMPANIONS = ("-wal", "-shm", "-journal")


def database_path(url: URL) -> Path:
    """The file of a SQLite URL; `BackupError` for an in-memory database."""
    path = url.database
    if not path or path == ":memory:" or path.startswith("file:"):
        raise BackupError("only a SQLite database in a file can be backed up or restored")
    return Path(path)


def snapshot(source: Path, output: Path) -> str | None:
    """Copy the live database at `source` into `output`; its Alembic revision."""
    if not source.is_file():
        raise BackupError(f"no database at {source}")
    with (
        closing(sqlite3.connect(source, timeout=_BUSY_TIMEOUT_SECONDS)) as live,
        closing(sqlite3.connect(output)) as copy,
    ):
        live.backup(copy)
        revision = _revision(copy)
    _fsync(output)
    return revision


def check_copy(path: Path, revision: str) -> None:
    """`ArchiveInvalid` unless `path` is an intact database at `revision`."""
    try:
        with closing(sqlite3.connect(path)) as connection:
            result = connection.execute("PRAGMA quick_check").fetchone()
            found = _revision(connection)
    except sqlite3.DatabaseError as err:
        raise ArchiveInvalid(f"the dump is not a usable SQLite database: {err}") from err
    if result != ("ok",):
        raise ArchiveInvalid(f"the dumped SQLite database is damaged: {result[0]}")
    if found != revision:
        raise ArchiveInvalid(f"the dump is at revision {found}, the manifest says {revision}")


def _revision(connection: sqlite3.Connection) -> str | None:
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:  # no such table: never migrated
        return None
    return None if row is None else str(row[0])


def has_tables(path: Path) -> bool:
    """Whether a database file exists at `path` with at least one table."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    query = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    try:
        with closing(sqlite3.connect(path, timeout=_BUSY_TIMEOUT_SECONDS)) as connection:
            (count,) = connection.execute(query).fetchone()
    except sqlite3.DatabaseError:
        return True  # something that is not an empty database: never overwrite it silently
    return bool(count)


@contextmanager
def exclusive_use(path: Path) -> Iterator[None]:
    """Hold the database's `-shm` lock; `TargetNotEmpty` if a process has it open."""
    shm = path.with_name(path.name + "-shm")
    try:
        descriptor = os.open(shm, os.O_RDWR)
    except FileNotFoundError:
        yield  # in WAL mode, no -shm file means no connection
        return
    try:
        try:
            fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _SHM_DMS_OFFSET)
        except OSError as err:
            raise TargetNotEmpty(
                f"{path} is in use by another process (is nubes running?); stop it first"
            ) from err
        yield
    finally:
        os.close(descriptor)


def replace_database(path: Path, new: Path) -> None:
    """Put the database file `new` in place of `path`, atomically."""
    _fsync(new)
    for suffix in _COMPANIONS:
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    os.replace(new, path)
    fsync_folder(path.parent)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
