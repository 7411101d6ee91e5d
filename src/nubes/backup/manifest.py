"""The manifest of a backup archive: what the dump is and how to check it.

Sans-IO: values in, values or `ArchiveInvalid` out. The archive module
reads and writes the bytes; the restore decides what to do with a valid
manifest. A manifest is checked in full before anything is restored, so
that a damaged or foreign archive is refused while the target is untouched.

The JSON is flat and small on purpose: `tar xOf BACKUP manifest.json`
shows an operator everything, and `sha256sum` on the extracted dump checks
it without Nubes.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from nubes.errors import ArchiveInvalid, BackupIncompatible

__all__ = ["DUMP_NAMES", "FORMAT", "FORMAT_VERSION", "MANIFEST_NAME", "Kind", "Manifest"]

FORMAT = "nubes-backup"
# Grows when a restore of this code could not read a newer archive.
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
# At most this many bytes are read as a manifest: it is a few hundred.
MANIFEST_MAX_SIZE = 64 * 1024

Kind = Literal["sqlite", "postgresql"]
# One fixed dump name per kind: the archive never names a path of its own.
DUMP_NAMES: dict[str, str] = {"sqlite": "database.sqlite", "postgresql": "database.pgdump"}

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Manifest:
    """What `manifest.json` holds."""

    created_at: str  # ISO 8601, UTC
    nubes_version: str
    database_kind: Kind
    alembic_revision: str
    dump_name: str
    dump_size: int
    dump_sha256: str
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    @classmethod
    def build(
        cls,
        *,
        created_at: datetime,
        nubes_version: str,
        kind: Kind,
        revision: str,
        size: int,
        sha256: str,
    ) -> Manifest:
        return cls(
            created_at=created_at.isoformat(),
            nubes_version=nubes_version,
            database_kind=kind,
            alembic_revision=revision,
            dump_name=DUMP_NAMES[kind],
            dump_size=size,
            dump_sha256=sha256,
        )

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        """The manifest in `data`; `ArchiveInvalid` if it is not one this code reads."""
        try:
            fields = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ArchiveInvalid(f"the manifest is not JSON: {err}") from err
        if not isinstance(fields, dict):
            raise ArchiveInvalid("the manifest is not a JSON object")
        _check_format(fields)
        values: dict[str, Any] = {name: fields.get(name) for name in _FIELDS}
        manifest = cls(**values)
        manifest._check_values()
        return manifest

    def check_dump(self, size: int, sha256: str) -> None:
        """Raise `ArchiveInvalid` unless the dump read has the size and hash announced."""
        if size != self.dump_size:
            raise ArchiveInvalid(
                f"the dump is damaged: {size} bytes, the manifest says {self.dump_size}"
            )
        if sha256 != self.dump_sha256:
            raise ArchiveInvalid("the dump is damaged: its SHA-256 differs from the manifest's")

    def _check_values(self) -> None:
        if self.database_kind not in DUMP_NAMES:
            raise ArchiveInvalid(f"unknown database kind {self.database_kind!r}")
        if self.dump_name != DUMP_NAMES[self.database_kind]:
            raise ArchiveInvalid(f"unexpected dump name {self.dump_name!r}")
        if not _is_int(self.dump_size) or self.dump_size < 0:
            raise ArchiveInvalid("the manifest's dump size is not a byte count")
        if not isinstance(self.dump_sha256, str) or not _SHA256.fullmatch(self.dump_sha256):
            raise ArchiveInvalid("the manifest's SHA-256 is not 64 hex digits")
        for name in ("created_at", "nubes_version", "alembic_revision"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ArchiveInvalid(f"the manifest has no {name}")


_FIELDS = tuple(Manifest.__dataclass_fields__)


def _check_format(fields: dict[str, Any]) -> None:
    if fields.get("format") != FORMAT:
        raise ArchiveInvalid("not a Nubes backup (the manifest names another format)")
    version: Any = fields.get("format_version")
    if not _is_int(version) or version < 1:
        raise ArchiveInvalid("the manifest has no format version")
    if version > FORMAT_VERSION:
        raise BackupIncompatible(
            f"backup format {version} is newer than this Nubes reads ({FORMAT_VERSION}); "
            "restore with the Nubes version that made it"
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
