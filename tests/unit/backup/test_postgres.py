"""The libpq side of PostgreSQL backups that needs no server: URLs and tools."""

from __future__ import annotations

from pathlib import Path

import pytest

from nubes.backup.postgres import LibpqTarget, find_tool
from nubes.errors import ToolMissing

COMMON = "application_name='nubes-backup' connect_timeout='10'"


def test_an_asyncpg_url_becomes_a_conninfo_without_the_password() -> None:
    target = LibpqTarget.from_url("postgresql+asyncpg://nubes:s3cr%40t@db.example:6543/cloud")
    assert target.conninfo == (
        f"host='db.example' port='6543' user='nubes' dbname='cloud' {COMMON}"
    )
    assert target.password == "s3cr@t"
    assert "s3cr" not in target.conninfo


def test_the_password_goes_to_the_child_environment_only() -> None:
    target = LibpqTarget.from_url("postgresql+asyncpg://nubes:pw@db/cloud")
    env = target.env({"PATH": "/usr/bin"})
    assert env == {"PATH": "/usr/bin", "PGPASSWORD": "pw"}
    assert LibpqTarget.from_url("postgresql+asyncpg://nubes@db/cloud").env({}) == {}


def test_messages_are_scrubbed_of_the_password() -> None:
    target = LibpqTarget.from_url("postgresql+asyncpg://nubes:hunter2@db/cloud")
    assert target.scrub("auth failed for hunter2") == "auth failed for ***"
    assert LibpqTarget("", None).scrub("text") == "text"


def test_ssl_and_a_socket_folder_from_the_query() -> None:
    target = LibpqTarget.from_url(
        "postgresql+asyncpg://nubes@/cloud?host=/var/run/postgresql&ssl=require"
    )
    assert target.conninfo == (
        f"host='/var/run/postgresql' user='nubes' dbname='cloud' sslmode='require' {COMMON}"
    )
    assert (
        "sslmode='verify-full'"
        in LibpqTarget.from_url("postgresql://h/d?sslmode=verify-full").conninfo
    )


def test_quotes_and_backslashes_are_escaped() -> None:
    target = LibpqTarget.from_url("postgresql+asyncpg://o%27neil@h/we%5Cird%20db")
    assert "user='o\\'neil'" in target.conninfo
    assert "dbname='we\\\\ird db'" in target.conninfo


def test_a_tool_missing_from_the_given_folder(tmp_path: Path) -> None:
    with pytest.raises(ToolMissing, match="pg_dump not found in NUBES_PG_BIN_DIR"):
        find_tool("pg_dump", str(tmp_path))


def test_a_tool_in_the_given_folder(tmp_path: Path) -> None:
    tool = tmp_path / "pg_dump"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    assert find_tool("pg_dump", str(tmp_path)) == str(tool)


def test_a_tool_missing_from_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissing, match="postgresql-client"):
        find_tool("pg_restore", "")
