"""Backup, wipe, restore, compare: on SQLite and on the real PostgreSQL.

Every table of the metadata is filled (one row of each kind from the store's
round-trip test, plus messages with binary `raw` and JSON bodies and log
rows with generated ids), and after the restore every table must hold the
same rows, ordered by primary key. The refusals are checked to leave the
target exactly as it was.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from integration.store.test_roundtrip import DEVICE, GROUP, NOW, ORG, ROWS, SESSION
from nubes.backup import restore_backup, take_backup, verify_backup
from nubes.backup.archive import file_digest, open_archive, write_archive
from nubes.backup.manifest import Manifest
from nubes.config import Settings
from nubes.errors import ArchiveInvalid, BackupIncompatible, TargetNotEmpty, ToolMissing
from nubes.store import tables as t
from nubes.store.database import Database, head_revision

pytestmark = pytest.mark.integration

Rows = dict[str, list[tuple[Any, ...]]]


def _messages(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": uuid.uuid4(),
            "created_at": NOW + timedelta(milliseconds=n),
            "organization_id": ORG,
            "group_id": GROUP,
            "device_id": DEVICE,
            "session_id": SESSION,
            "type": "data",
            "direction": "up",
            "body": {"n": n, "text": "ü☃?"[: n % 4], "list": [n, None, 1.5], "big": 2**53},
            "raw": os.urandom(n % 64) + b"\x00\xff",
        }
        for n in range(300)
    ]


def _log_rows(count: int) -> list[dict[str, Any]]:
    row = next(row for table, row in ROWS if table is t.session_log)
    return [{**row, "seq": n, "at": NOW + timedelta(seconds=n)} for n in range(count)]


async def _fill(url: str, revision: str = "head") -> Database:
    database = Database(url)
    await database.migrate(revision)
    async with database.engine.begin() as connection:
        for table, row in ROWS:
            await connection.execute(sa.insert(table), [row])
        await connection.execute(sa.insert(t.messages), _messages(300))
        await connection.execute(sa.insert(t.session_log), _log_rows(50))
    return database


async def _rows(database: Database) -> Rows:
    rows: Rows = {}
    async with database.engine.connect() as connection:
        for table in t.metadata.sorted_tables:
            query = sa.select(table).order_by(*table.primary_key.columns)
            rows[table.name] = [tuple(row) for row in await connection.execute(query)]
    return rows


async def _contents(url: str) -> Rows:
    database = Database(url)
    try:
        return await _rows(database)
    finally:
        await database.dispose()


async def _wipe(url: str) -> None:
    database = Database(url)
    try:
        if database.is_sqlite:
            path = Path(database.engine.url.database or "")
            for suffix in ("", "-wal", "-shm"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
            return
        async with database.engine.begin() as connection:
            await connection.exec_driver_sql("DROP SCHEMA public CASCADE")
            await connection.exec_driver_sql("CREATE SCHEMA public")
    finally:
        await database.dispose()


async def _backup(url: str, folder: Path) -> tuple[Path, Rows]:
    database = await _fill(url)
    try:
        rows = await _rows(database)
    finally:
        await database.dispose()
    result = await take_backup(Settings(database_url=url), folder)
    return result.path, rows


async def test_backup_wipe_restore_gives_the_same_rows(empty_db_url: str, tmp_path: Path) -> None:
    archive, before = await _backup(empty_db_url, tmp_path / "backups")
    assert all(before.values()), [name for name, rows in before.items() if not rows]
    assert len(before["messages"]) == 301
    await _wipe(empty_db_url)
    result = await restore_backup(Settings(database_url=empty_db_url), archive)
    assert result.revision == head_revision()
    assert await _contents(empty_db_url) == before


async def test_verify_only_reads_the_whole_archive(empty_db_url: str, tmp_path: Path) -> None:
    archive, _ = await _backup(empty_db_url, tmp_path / "backups")
    manifest = await verify_backup(Settings(database_url=empty_db_url), archive)
    assert manifest.alembic_revision == head_revision()


def _flip_a_dump_byte(path: Path) -> None:
    with tarfile.open(path) as tar:
        dump = tar.getmembers()[1]
    data = bytearray(path.read_bytes())
    data[dump.offset_data + dump.size // 2] ^= 0x40
    path.write_bytes(bytes(data))


async def test_a_damaged_archive_is_refused_untouched(empty_db_url: str, tmp_path: Path) -> None:
    archive, before = await _backup(empty_db_url, tmp_path / "backups")
    _flip_a_dump_byte(archive)
    settings = Settings(database_url=empty_db_url)
    with pytest.raises(ArchiveInvalid, match="SHA-256"):
        await restore_backup(settings, archive, force=True)
    assert await _contents(empty_db_url) == before
    with pytest.raises(ArchiveInvalid):
        await verify_backup(settings, archive)


async def test_a_target_with_data_needs_force(empty_db_url: str, tmp_path: Path) -> None:
    archive, before = await _backup(empty_db_url, tmp_path / "backups")
    database = Database(empty_db_url)
    try:
        async with database.engine.begin() as connection:
            await connection.execute(sa.delete(t.delivery_attempts))
            await connection.execute(
                sa.insert(t.organizations), [{"id": uuid.uuid4(), "name": "new", "created_at": NOW}]
            )
        changed = await _rows(database)
    finally:
        await database.dispose()
    settings = Settings(database_url=empty_db_url)
    with pytest.raises(TargetNotEmpty, match="--force"):
        await restore_backup(settings, archive)
    assert await _contents(empty_db_url) == changed
    await restore_backup(settings, archive, force=True)
    assert await _contents(empty_db_url) == before


async def test_an_older_backup_is_migrated_forward(empty_db_url: str, tmp_path: Path) -> None:
    database = Database(empty_db_url)
    await database.migrate("0004")
    async with database.engine.begin() as connection:
        await connection.execute(sa.insert(t.organizations), [ROWS[0][1]])
    await database.dispose()
    result = await take_backup(Settings(database_url=empty_db_url), tmp_path)
    assert result.manifest.alembic_revision == "0004"
    await _wipe(empty_db_url)
    restored = await restore_backup(Settings(database_url=empty_db_url), result.path)
    assert restored.revision == head_revision() != "0004"
    # The rows of 0004, column by column; columns added since hold their defaults.
    database = Database(empty_db_url)
    try:
        async with database.engine.connect() as connection:
            written = ROWS[0][1]
            columns = [t.organizations.c[name] for name in written]
            rows = (await connection.execute(sa.select(*columns))).all()
    finally:
        await database.dispose()
    assert [tuple(row) for row in rows] == [tuple(written.values())]


def _rewrite_revision(path: Path, revision: str) -> Path:
    dump, new = path.with_suffix(".dump"), path.with_name("newer.tar")
    with open_archive(path) as archive, dump.open("wb") as file:
        archive.copy_dump(file)
        manifest = archive.manifest
    size, sha = file_digest(dump)
    fields = {**manifest.__dict__, "alembic_revision": revision, "dump_size": size}
    write_archive(new, Manifest(**{**fields, "dump_sha256": sha}), dump)
    return new


async def test_a_newer_schema_is_refused(empty_db_url: str, tmp_path: Path) -> None:
    archive, _ = await _backup(empty_db_url, tmp_path / "backups")
    newer = _rewrite_revision(archive, "9999")
    await _wipe(empty_db_url)
    with pytest.raises(BackupIncompatible, match="revision 9999 is newer than this Nubes"):
        await restore_backup(Settings(database_url=empty_db_url), newer)
    await restore_backup(Settings(database_url=empty_db_url), archive)  # still empty: no --force


async def test_a_sqlite_backup_is_refused_by_postgresql(
    sqlite_url: str, fresh_pg_url: str, tmp_path: Path
) -> None:
    archive, _ = await _backup(sqlite_url, tmp_path)
    with pytest.raises(BackupIncompatible, match="sqlite backup and NUBES_DATABASE_URL names"):
        await restore_backup(Settings(database_url=fresh_pg_url), archive)


async def test_pg_dump_missing(tmp_path: Path) -> None:
    settings = Settings(database_url="postgresql://nubes@localhost/x", pg_bin_dir=str(tmp_path))
    with pytest.raises(ToolMissing, match="pg_dump"):
        await take_backup(settings, tmp_path)


async def test_a_running_postgresql_server_is_refused(fresh_pg_url: str, tmp_path: Path) -> None:
    archive, before = await _backup(fresh_pg_url, tmp_path)
    server = Database(fresh_pg_url)  # connects as application "nubes", like the servers
    try:
        async with server.engine.connect():
            with pytest.raises(TargetNotEmpty, match="stop every nubes process"):
                await restore_backup(Settings(database_url=fresh_pg_url), archive, force=True)
    finally:
        await server.dispose()
    assert await _contents(fresh_pg_url) == before


HOLD_OPEN = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1])
connection.execute("PRAGMA journal_mode=WAL")
connection.execute("SELECT count(*) FROM organizations").fetchone()
print("open", flush=True)
time.sleep(60)
"""


@contextmanager
def _held_open(path: Path) -> Iterator[None]:
    """Another process with the database open, as `nubes serve` would have it."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_OPEN, str(path)], stdout=subprocess.PIPE, text=True
    ) as holder:
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline() == "open\n"
            yield
        finally:
            holder.kill()


async def test_a_sqlite_database_in_use_is_refused(
    sqlite_url: str, sqlite_path: Path, tmp_path: Path
) -> None:
    archive, before = await _backup(sqlite_url, tmp_path)
    with (
        _held_open(sqlite_path),
        pytest.raises(TargetNotEmpty, match="in use by another process"),
    ):
        await restore_backup(Settings(database_url=sqlite_url), archive, force=True)
    assert await _contents(sqlite_url) == before
