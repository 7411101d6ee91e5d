"""The manifest: built, written and read back; every field checked when read."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from nubes.backup.manifest import FORMAT_VERSION, Manifest
from nubes.errors import ArchiveInvalid, BackupIncompatible

SHA = "ab" * 32


def _manifest() -> Manifest:
    return Manifest.build(
        created_at=datetime(2025, 6, 30, 23, 59, 58, tzinfo=UTC),
        nubes_version="0.1.0",
        kind="postgresql",
        revision="0005",
        size=1234,
        sha256=SHA,
    )


def _fields(**changes: Any) -> bytes:
    fields = json.loads(_manifest().to_json())
    fields.update(changes)
    return json.dumps({k: v for k, v in fields.items() if v is not ...}).encode()


def test_built_manifest_names_the_dump_of_its_kind() -> None:
    manifest = _manifest()
    assert manifest.dump_name == "database.pgdump"
    assert manifest.created_at == "2025-06-30T23:59:58+00:00"
    assert manifest.format_version == FORMAT_VERSION


def test_written_and_read_back_equal() -> None:
    manifest = _manifest()
    assert Manifest.from_json(manifest.to_json()) == manifest
    assert json.loads(manifest.to_json())["format"] == "nubes-backup"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1]", "not a JSON object"),
        (_fields(format="other"), "not a Nubes backup"),
        (_fields(format_version=...), "no format version"),
        (_fields(format_version="1"), "no format version"),
        (_fields(format_version=0), "no format version"),
        (_fields(database_kind="mysql"), "unknown database kind"),
        (_fields(dump_name="../../etc/passwd"), "unexpected dump name"),
        (_fields(dump_name="database.sqlite"), "unexpected dump name"),
        (_fields(dump_size=-1), "byte count"),
        (_fields(dump_size=True), "byte count"),
        (_fields(dump_size="12"), "byte count"),
        (_fields(dump_sha256="AB" * 32), "64 hex digits"),
        (_fields(dump_sha256=None), "64 hex digits"),
        (_fields(alembic_revision=""), "no alembic_revision"),
        (_fields(created_at=...), "no created_at"),
        (_fields(nubes_version=3), "no nubes_version"),
    ],
)
def test_a_bad_manifest_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(ArchiveInvalid, match=message):
        Manifest.from_json(data)


def test_a_newer_format_is_incompatible_not_damaged() -> None:
    with pytest.raises(BackupIncompatible, match="newer than this Nubes reads"):
        Manifest.from_json(_fields(format_version=FORMAT_VERSION + 1))


def test_unknown_fields_of_a_later_minor_change_are_ignored() -> None:
    assert Manifest.from_json(_fields(comment="x")) == _manifest()


def test_the_dump_must_have_the_announced_size_and_hash() -> None:
    manifest = _manifest()
    manifest.check_dump(1234, SHA)
    with pytest.raises(ArchiveInvalid, match="1233 bytes, the manifest says 1234"):
        manifest.check_dump(1233, SHA)
    with pytest.raises(ArchiveInvalid, match="SHA-256 differs"):
        manifest.check_dump(1234, "cd" * 32)
