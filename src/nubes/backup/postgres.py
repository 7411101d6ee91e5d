"""PostgreSQL backups with the server's own tools, `pg_dump` and `pg_restore`.

Why the tools rather than reading tables through SQLAlchemy: `pg_dump` takes
a consistent snapshot of the whole database in one transaction without
blocking writers, its custom format is compressed and restores every type,
index and constraint exactly, and any PostgreSQL operator can read it
without Nubes (`pg_restore --list`).

The connection comes from `NUBES_DATABASE_URL`, translated into a libpq
connection string passed as `--dbname`; the password alone goes through the
child's `PGPASSWORD`, so it never shows in `ps`, in logs or in error texts
(the tools' messages are scrubbed of it all the same).

The restore streams the dump from the archive into `pg_restore`'s standard
input (no temporary copy), as one transaction that stops at the first
error: a failed restore leaves the database as it was before `pg_restore`
started (after `--force`, that is emptied: restore again).
Owners and privileges of the dumped database are not restored; the objects
belong to the user restoring, which is what Nubes connects as.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from nubes.errors import BackupError, ToolMissing

__all__ = ["LibpqTarget", "clear_database", "dump", "find_tool", "restore", "user_relations"]

log = logging.getLogger(__name__)

# asyncpg's `ssl` URL parameter takes libpq's sslmode names.
_SSL_PARAMETERS = ("sslmode", "ssl")
_SYSTEM_SCHEMAS = "('pg_catalog', 'information_schema', 'pg_toast')"


@dataclass(frozen=True)
class LibpqTarget:
    """Where the libpq tools connect: a connection string, and the secret apart."""

    conninfo: str
    password: str | None

    @classmethod
    def from_url(cls, url: str | URL) -> LibpqTarget:
        """Translate `postgresql+asyncpg://user:pass@host:port/db?ssl=...`."""
        parsed = make_url(url)
        query = {key: _single(value) for key, value in parsed.query.items()}
        params = {
            "host": query.get("host") or parsed.host,
            "port": str(parsed.port) if parsed.port else query.get("port"),
            "user": parsed.username,
            "dbname": parsed.database,
            "sslmode": next((query[key] for key in _SSL_PARAMETERS if key in query), None),
            "application_name": "nubes-backup",
            "connect_timeout": "10",
        }
        conninfo = " ".join(f"{key}={_quote(value)}" for key, value in params.items() if value)
        return cls(conninfo, parsed.password)

    def env(self, base: dict[str, str]) -> dict[str, str]:
        """The child's environment: `base`, plus the password if the URL has one."""
        env = dict(base)
        if self.password is not None:
            env["PGPASSWORD"] = self.password
        return env

    def scrub(self, text: str) -> str:
        """`text` with the password replaced, for messages that may echo it."""
        return text.replace(self.password, "***") if self.password else text


def _single(value: str | tuple[str, ...]) -> str:
    return value if isinstance(value, str) else value[-1]


def _quote(value: str) -> str:
    """A libpq connection-string value: quoted, backslash and quote escaped."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def find_tool(name: str, bin_dir: str) -> str:
    """The path of `pg_dump` / `pg_restore`: in `bin_dir` if set, else on PATH."""
    if bin_dir:
        path = Path(bin_dir) / name
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        raise ToolMissing(f"{name} not found in NUBES_PG_BIN_DIR={bin_dir}")
    found = shutil.which(name)
    if found is None:
        raise ToolMissing(
            f"{name} not found on PATH; install the PostgreSQL client tools "
            "(Debian: postgresql-client) or set NUBES_PG_BIN_DIR"
        )
    return found


def dump(tool: str, target: LibpqTarget, output: Path, env: dict[str, str]) -> None:
    """Dump the whole database into `output` in the custom format."""
    command = [
        tool,
        "--format=custom",
        "--no-owner",
        f"--file={output}",
        f"--dbname={target.conninfo}",
    ]
    _run(command, target, env, "pg_dump")


def restore(
    tool: str,
    target: LibpqTarget,
    env: dict[str, str],
    feed: Callable[[IO[bytes]], None],
) -> None:
    """Run `pg_restore` in one transaction, `feed` writing the dump into its stdin."""
    command = [
        tool,
        "--single-transaction",
        "--exit-on-error",
        "--no-owner",
        "--no-privileges",
        f"--dbname={target.conninfo}",
    ]
    _run(command, target, env, "pg_restore", feed=feed)


def list_contents(
    tool: str, target: LibpqTarget, env: dict[str, str], feed: Callable[[IO[bytes]], None]
) -> None:
    """Have `pg_restore --list` read the whole dump: `BackupError` if it cannot."""
    _run([tool, "--list"], target, env, "pg_restore --list", feed=feed)


def _run(
    command: list[str],
    target: LibpqTarget,
    env: dict[str, str],
    name: str,
    *,
    feed: Callable[[IO[bytes]], None] | None = None,
) -> None:
    log.debug("running %s", command[0])
    with subprocess.Popen(
        command,
        stdin=subprocess.PIPE if feed else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=target.env(env),
    ) as process:
        stderr = _feed_and_wait(process, feed)
    if process.returncode != 0:
        text = target.scrub(stderr.decode(errors="replace")).strip()
        raise BackupError(f"{name} failed (exit {process.returncode}): {text[-2000:]}")


def _feed_and_wait(
    process: subprocess.Popen[bytes], feed: Callable[[IO[bytes]], None] | None
) -> bytes:
    """Write the input, then collect stderr; a child that stops reading ends the feed."""
    if feed is not None and process.stdin is not None:
        try:
            with process.stdin:
                feed(process.stdin)
        except BrokenPipeError:
            pass  # the child failed early; its stderr says why
        except BaseException:
            process.kill()
            raise
    assert process.stderr is not None
    stderr = process.stderr.read()
    process.wait()
    return stderr


async def user_relations(engine: AsyncEngine) -> list[str]:
    """Tables, views and sequences outside PostgreSQL's own schemas."""
    query = sa.text(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') "
        f"AND n.nspname NOT IN {_SYSTEM_SCHEMAS} AND n.nspname NOT LIKE 'pg_temp%' "
        "ORDER BY 1"
    )
    async with engine.connect() as connection:
        return list((await connection.execute(query)).scalars())


async def clear_database(engine: AsyncEngine) -> None:
    """Drop every schema but the system ones, and recreate an empty `public`.

    What `pg_dump` dumped is the whole database; what a restore recreates is
    every schema in it. A Nubes database is Nubes's alone (docs/backup.md).
    """
    query = sa.text(
        "SELECT nspname FROM pg_namespace "
        f"WHERE nspname NOT IN {_SYSTEM_SCHEMAS} AND nspname NOT LIKE 'pg_temp%' "
        "AND nspname NOT LIKE 'pg_toast_temp%'"
    )
    async with engine.begin() as connection:
        schemas = list((await connection.execute(query)).scalars())
        for schema in schemas:
            if schema == "public":
                await _empty_public(connection)
            else:
                await connection.execute(sa.text(f"DROP SCHEMA {_ident(schema)} CASCADE"))


async def _empty_public(connection: AsyncConnection) -> None:
    """Drop what `public` holds, keeping the schema (its owner may be another role)."""
    kinds = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW", "S": "SEQUENCE"}
    query = sa.text(
        "SELECT c.relname, c.relkind::text FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')"
    )
    for name, kind in (await connection.execute(query)).all():
        drop = f"DROP {kinds[kind]} IF EXISTS public.{_ident(name)} CASCADE"
        await connection.execute(sa.text(drop))


def _ident(name: str) -> str:
    escaped = name.replace('"', '""')
    return f'"{escaped}"'
