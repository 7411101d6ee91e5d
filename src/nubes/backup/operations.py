"""Take, verify and restore backups of the configured database.

The order of a restore is the point of this module: everything that can be
checked is checked before the target changes (the archive's members and
manifest, the database kind, that this code knows the schema revision, that
the target is empty or `--force` was given and that no Nubes process uses
it, and the dump's SHA-256). Only then is the target replaced, and finally
migrated forward when the backup is older than this code.

The blocking work (tools, file copies, hashing) runs in a thread, so the
event loop of the `nubes` command stays free; nothing else runs meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

from nubes import __version__
from nubes.backup import postgres, sqlite
from nubes.backup.archive import (
    Archive,
    archive_path,
    file_digest,
    open_archive,
    prune_archives,
    write_archive,
)
from nubes.backup.manifest import Kind, Manifest
from nubes.config import Settings
from nubes.errors import BackupError, BackupIncompatible, TargetNotEmpty
from nubes.store.database import Database, head_revision, known_revisions

__all__ = ["BackupResult", "RestoreResult", "restore_backup", "take_backup", "verify_backup"]

log = logging.getLogger(__name__)

# The servers connect with this application_name (store/database.py).
_SERVER_SESSIONS = sa.text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND application_name = 'nubes' AND pid <> pg_backend_pid()"
)


@dataclass(frozen=True)
class BackupResult:
    path: Path
    manifest: Manifest
    seconds: float
    pruned: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class RestoreResult:
    manifest: Manifest
    revision: str | None  # after migrating forward
    seconds: float


def database_kind(url: URL) -> Kind:
    return "sqlite" if url.get_backend_name() == "sqlite" else "postgresql"


def _child_env() -> dict[str, str]:
    # The tools need PATH, locale and the like; libpq's own PG* variables and
    # ~/.pgpass apply as usual where the URL leaves something out.
    return dict(os.environ)


# -- backup ---------------------------------------------------------------------------------


async def take_backup(
    settings: Settings, output: Path, *, keep: int | None = None, now: datetime | None = None
) -> BackupResult:
    """Write one archive of the configured database into `output` (a folder or a .tar)."""
    started = time.monotonic()
    url = make_url(settings.database_url)
    at = (now or datetime.now(UTC)).replace(microsecond=0)
    path = archive_path(output, at)
    path.parent.mkdir(parents=True, exist_ok=True)
    work = path.with_name(f".{path.name}.dump")
    try:
        revision = await _dump(settings, url, work)
        size, sha256 = await asyncio.to_thread(file_digest, work)
        kind = database_kind(url)
        manifest = Manifest.build(
            created_at=at,
            nubes_version=__version__,
            kind=kind,
            revision=revision,
            size=size,
            sha256=sha256,
        )
        await asyncio.to_thread(write_archive, path, manifest, work)
    finally:
        work.unlink(missing_ok=True)
    pruned = prune_archives(path.parent, keep) if keep else []
    return BackupResult(path, manifest, time.monotonic() - started, pruned)


async def _dump(settings: Settings, url: URL, work: Path) -> str:
    if database_kind(url) == "sqlite":
        source = sqlite.database_path(url)
        revision = await asyncio.to_thread(sqlite.snapshot, source, work)
    else:
        revision = await _dump_postgres(settings, url, work)
    if revision is None:
        raise BackupError("the database was never migrated (`nubes migrate`): nothing to back up")
    return revision


async def _dump_postgres(settings: Settings, url: URL, work: Path) -> str | None:
    tool = postgres.find_tool("pg_dump", settings.pg_bin_dir)
    target = postgres.LibpqTarget.from_url(url)
    database = Database(settings.database_url, pool_size=1, max_overflow=0)
    try:
        before = await database.current_revision()
        await asyncio.to_thread(postgres.dump, tool, target, work, _child_env())
        after = await database.current_revision()
    finally:
        await database.dispose()
    if before != after:
        raise BackupError("the database was migrated during the backup; take it again")
    return after


# -- checks shared by verify and restore -------------------------------------------------------


def check_revision(manifest: Manifest) -> None:
    """`BackupIncompatible` if the backup's schema is one this code does not know."""
    if manifest.alembic_revision not in known_revisions():
        raise BackupIncompatible(
            f"the backup's schema revision {manifest.alembic_revision} is newer than this "
            f"Nubes knows (up to {head_revision()}); restore it with Nubes "
            f"{manifest.nubes_version} or later"
        )


def check_kind(manifest: Manifest, kind: Kind) -> None:
    if manifest.database_kind != kind:
        raise BackupIncompatible(
            f"this is a {manifest.database_kind} backup and NUBES_DATABASE_URL names a "
            f"{kind} database; restore it into {manifest.database_kind}"
        )


# -- verify ------------------------------------------------------------------------------------


async def verify_backup(settings: Settings, path: Path) -> Manifest:
    """Check an archive in full without touching any database; its manifest."""
    with open_archive(path) as archive:
        check_revision(archive.manifest)
        if archive.manifest.database_kind == "sqlite":
            await asyncio.to_thread(_verify_sqlite_dump, archive)
        else:
            await asyncio.to_thread(_verify_postgres_dump, settings, archive)
        return archive.manifest


def _verify_sqlite_dump(archive: Archive) -> None:
    with tempfile.TemporaryDirectory(dir=archive.path.parent, prefix=".nubes-verify-") as folder:
        copy = Path(folder) / archive.manifest.dump_name
        with copy.open("wb") as file:
            archive.copy_dump(file)
        sqlite.check_copy(copy, archive.manifest.alembic_revision)


def _verify_postgres_dump(settings: Settings, archive: Archive) -> None:
    archive.verify()
    tool = postgres.find_tool("pg_restore", settings.pg_bin_dir)
    nowhere = postgres.LibpqTarget("", None)
    postgres.list_contents(tool, nowhere, _child_env(), archive.copy_dump)


# -- restore -----------------------------------------------------------------------------------


async def restore_backup(settings: Settings, path: Path, *, force: bool = False) -> RestoreResult:
    """Replace the configured database by the archive's, then migrate it to head."""
    started = time.monotonic()
    url = make_url(settings.database_url)
    kind = database_kind(url)
    with open_archive(path) as archive:
        check_kind(archive.manifest, kind)
        check_revision(archive.manifest)
        if kind == "sqlite":
            await asyncio.to_thread(_restore_sqlite, url, archive, force=force)
        else:
            await _restore_postgres(settings, url, archive, force=force)
        manifest = archive.manifest
    database = Database(settings.database_url, pool_size=1, max_overflow=0)
    try:
        await database.migrate()
        revision = await database.current_revision()
    finally:
        await database.dispose()
    return RestoreResult(manifest, revision, time.monotonic() - started)


def _restore_sqlite(url: URL, archive: Archive, *, force: bool) -> None:
    target = sqlite.database_path(url)
    with sqlite.exclusive_use(target):  # fails early if a server has it open
        pass
    if not force and sqlite.has_tables(target):
        raise TargetNotEmpty(f"{target} holds a database; restore with --force to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(dir=target.parent, prefix=".nubes-restore-")
    new = Path(name)
    try:
        if target.exists():  # mkstemp made it 0600; keep what the operator chose
            new.chmod(target.stat().st_mode & 0o777)
        with os.fdopen(descriptor, "wb") as file:
            archive.copy_dump(file)
        sqlite.check_copy(new, archive.manifest.alembic_revision)
        with sqlite.exclusive_use(target):
            sqlite.replace_database(target, new)
    finally:
        new.unlink(missing_ok=True)


async def _restore_postgres(settings: Settings, url: URL, archive: Archive, *, force: bool) -> None:
    tool = postgres.find_tool("pg_restore", settings.pg_bin_dir)
    database = Database(settings.database_url, pool_size=1, max_overflow=0)
    try:
        await _check_postgres_target(database, force=force)
        await asyncio.to_thread(archive.verify)
        if force:
            await postgres.clear_database(database.engine)
    finally:
        await database.dispose()
    target = postgres.LibpqTarget.from_url(url)
    await asyncio.to_thread(postgres.restore, tool, target, _child_env(), archive.copy_dump)


async def _check_postgres_target(database: Database, *, force: bool) -> None:
    async with database.engine.connect() as connection:
        servers = await connection.scalar(_SERVER_SESSIONS)
    if servers:
        raise TargetNotEmpty(
            f"{servers} Nubes connections use the database; stop every nubes process first"
        )
    relations = await postgres.user_relations(database.engine)
    if relations and not force:
        raise TargetNotEmpty(
            f"the database holds {len(relations)} tables or sequences (e.g. {relations[0]}); "
            "restore with --force to replace them"
        )
