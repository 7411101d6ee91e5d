"""Backups of the Nubes database: `nubes backup` and `nubes restore`.

A backup is one tar archive: `manifest.json` (format, Nubes version,
database kind, Alembic revision, the dump's name, size and SHA-256), then the
dump, made with each backend's own consistent-snapshot tool (`pg_dump` on
PostgreSQL, the online backup API on SQLite). See docs/backup.md.

    manifest    what an archive says about its dump (sans-IO)
    archive     the tar file: written atomically, read strictly, pruned
    postgres    pg_dump / pg_restore and the libpq connection
    sqlite      the online backup API and the atomic file replacement
    operations  take, verify, restore: the order of the checks
"""

from nubes.backup.archive import prune_archives
from nubes.backup.manifest import Manifest
from nubes.backup.operations import (
    BackupResult,
    RestoreResult,
    restore_backup,
    take_backup,
    verify_backup,
)

__all__ = [
    "BackupResult",
    "Manifest",
    "RestoreResult",
    "prune_archives",
    "restore_backup",
    "take_backup",
    "verify_backup",
]
