"""The database adapter: one `AsyncEngine` per process, and its migrations.

A class around the engine rather than a bare `create_async_engine` call,
because the two backends need different care and that care belongs in one
place:

- SQLite (the embedded default) is configured on every new connection,
  since its pragmas are per connection: WAL so that readers never block the
  writer, `synchronous=NORMAL` (safe in WAL mode, and no fsync per commit),
  a busy timeout so that concurrent writers wait instead of failing at once,
  and foreign keys, which SQLite ignores unless asked. The file's folder is
  created, so that a fresh checkout can `make run` with no extra step.
- PostgreSQL gets a bounded pool with pre-ping (a restarted server costs a
  reconnect, not an error per pooled connection) and a connect timeout.

Migrations go through Alembic's programmatic API on a connection of this
engine (`AsyncConnection.run_sync`), so `nubes serve` can migrate from inside
its running event loop and SQLite's pragmas apply to the migration too. The
scripts ship inside the package (`migrations/`); the Alembic `Config` is built
here, so no alembic.ini is needed.

Each migration run is one transaction, and concurrent runs (several
processes starting at once) take turns. PostgreSQL has transactional DDL;
an advisory lock makes the turns. Python's sqlite3 module, however, opens no
transaction before DDL, which would leave a failed migration half applied;
so on SQLite the driver is put in autocommit mode and the transaction is
opened by hand, as `BEGIN IMMEDIATE`, which also makes the turns. Foreign
keys are off meanwhile, as Alembic advises for SQLite's batch mode (it
rebuilds tables), and are checked with `PRAGMA foreign_key_check` before
the commit.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

import asyncpg  # type: ignore[import-untyped]
import orjson
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from nubes.errors import StoreError
from nubes.store import partitions

__all__ = ["Database", "alembic_config", "head_revision", "known_revisions", "migrate_sync"]

MIGRATIONS = Path(__file__).with_name("migrations")

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=5000",
    "PRAGMA foreign_keys=ON",
)

# Seconds. A pool that cannot hand out a connection, or a server that does not
# answer, should surface as an error rather than an endless wait.
CONNECT_TIMEOUT = 10.0
POOL_TIMEOUT = 10.0
# Recycle server connections now and then, so that a pool does not keep
# connections that a proxy or firewall has silently dropped.
POOL_RECYCLE = 1800

# Every process migrates at start (`nubes serve`); when several start at
# once, this transaction-scoped advisory lock lets one migrate while the
# others wait, then find the schema at head. ("nubes" in ASCII.)
MIGRATION_LOCK_KEY = 0x6E75626573
_MIGRATION_LOCK = text("SELECT pg_advisory_xact_lock(:key)")
_ALEMBIC_TURNS: WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = WeakKeyDictionary()


class Database:
    """An `AsyncEngine` set up for SQLite or PostgreSQL, and its migrations."""

    def __init__(
        self, url: str, *, pool_size: int = 10, max_overflow: int = 10, echo: bool = False
    ) -> None:
        self._url = make_url(url)
        if self.is_sqlite:
            self._engine = _sqlite_engine(self._url, echo=echo)
        else:
            self._engine = _server_engine(
                self._url, pool_size=pool_size, max_overflow=max_overflow, echo=echo
            )

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @property
    def url(self) -> str:
        """The URL, password included (never log it)."""
        return self._url.render_as_string(hide_password=False)

    @property
    def is_sqlite(self) -> bool:
        return self._url.get_backend_name() == "sqlite"

    async def dispose(self) -> None:
        """Close every pooled connection; the engine reconnects if used again."""
        await self._engine.dispose()

    async def migrate(self, revision: str = "head") -> None:
        """Apply the migrations up to `revision`; a no-op when already there.

        A database migrated from empty also gets the post-deploy steps at
        once: no process of an older release can be serving a database that
        had no schema.
        """
        config = alembic_config(self.url)
        with _as_store_error("migration"):
            async with _alembic_turn(), self.migration_connection() as connection:
                was_empty = await connection.run_sync(_current_revision) is None
                await connection.run_sync(_upgrade, config, revision)
        if was_empty and revision == "head":
            await self.post_deploy()

    async def post_deploy(self) -> partitions.ConversionReport:
        """The steps that need every running process at this release.

        Today one: `messages` becomes partitioned by month on PostgreSQL,
        online (see `nubes.store.partitions`). Run again, it only adds the
        months ahead.
        """
        with _as_store_error("post-deploy migration"):
            return await partitions.convert(self._engine)

    async def current_revision(self) -> str | None:
        """The revision the database is at, or None if it was never migrated."""
        with _as_store_error("reading the schema revision"):
            async with self._engine.connect() as connection:
                return await connection.run_sync(_current_revision)

    async def ping(self) -> None:
        """Raises StoreError unless the database answers and its schema is not behind.

        A schema newer than this code is fine: migrations only add, so an
        older process keeps working while a newer one takes over.
        """
        revision = await self.current_revision()
        head = head_revision()
        if revision == head:
            return
        if revision is None:
            raise StoreError("the database has no schema: run `nubes migrate`")
        try:
            known = ScriptDirectory(str(MIGRATIONS)).get_revision(revision)
        except CommandError:
            return  # newer than this code: written by a newer `nubes migrate`
        if known is not None:
            raise StoreError(f"the schema is at {revision}, behind {head}: run `nubes migrate`")

    @asynccontextmanager
    async def migration_connection(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside one transaction that commits if the block succeeds.

        Alembic's env.py also runs on it when an Alembic command is given only
        a URL (e.g. to autogenerate a new revision).
        """
        async with self._engine.connect() as connection:
            if self.is_sqlite:
                async with _sqlite_migration_transaction(connection):
                    yield connection
            else:
                async with connection.begin():
                    await connection.execute(_MIGRATION_LOCK, {"key": MIGRATION_LOCK_KEY})
                    yield connection


def alembic_config(url: str) -> Config:
    """Alembic's configuration for the packaged scripts and `url`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolates '%', which percent-encoded passwords contain.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str | None:
    """The newest revision among the packaged migration scripts."""
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def known_revisions() -> set[str]:
    """Every revision among the packaged migration scripts (a database at
    another one was migrated by a newer Nubes)."""
    return {script.revision for script in ScriptDirectory(str(MIGRATIONS)).walk_revisions()}


def migrate_sync(url: str) -> None:
    """Migrate `url` to head from code that runs no event loop (scripts, tests)."""
    asyncio.run(_migrate_and_dispose(url))


async def _migrate_and_dispose(url: str) -> None:
    database = Database(url)
    try:
        await database.migrate()
    finally:
        await database.dispose()


def read_json(text: str | bytes) -> Any:
    """JSON columns read with orjson (5x the standard library on message bodies).

    orjson refuses what the standard library accepts in a few corners
    (integers beyond 64 bits, NaN); those fall back to `json.loads`.
    """
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _sqlite_engine(url: URL, *, echo: bool) -> AsyncEngine:
    _create_parent_folder(url)
    engine = create_async_engine(url, echo=echo, json_deserializer=read_json, hide_parameters=True)
    event.listen(engine.sync_engine, "connect", _set_sqlite_pragmas)
    return engine


def _server_engine(url: URL, *, pool_size: int, max_overflow: int, echo: bool) -> AsyncEngine:
    return create_async_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=POOL_TIMEOUT,
        pool_recycle=POOL_RECYCLE,
        pool_pre_ping=True,
        connect_args=_connect_args(url),
        json_deserializer=read_json,
        # Errors would otherwise carry bound values (claim tokens, key hashes)
        # into exception texts and so into logs.
        hide_parameters=True,
    )


def _connect_args(url: URL) -> dict[str, Any]:
    if url.get_driver_name() != "asyncpg":
        return {}
    return {"timeout": CONNECT_TIMEOUT, "server_settings": {"application_name": "nubes"}}


def _create_parent_folder(url: URL) -> None:
    path = url.database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        for pragma in SQLITE_PRAGMAS:
            cursor.execute(pragma)
    finally:
        cursor.close()


@asynccontextmanager
async def _sqlite_migration_transaction(connection: AsyncConnection) -> AsyncIterator[None]:
    await connection.execution_options(isolation_level="AUTOCOMMIT")
    await connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    try:
        await connection.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield
            await _check_foreign_keys(connection)
        except BaseException:
            # The driver's rollback is a no-op if SQLite already ended the transaction.
            await connection.rollback()
            raise
        await connection.commit()
    finally:
        await connection.exec_driver_sql("PRAGMA foreign_keys=ON")


async def _check_foreign_keys(connection: AsyncConnection) -> None:
    violations = (await connection.exec_driver_sql("PRAGMA foreign_key_check")).all()
    if violations:
        raise StoreError(f"migration broke {len(violations)} foreign keys, e.g. {violations[0]}")


@contextmanager
def _as_store_error(action: str) -> Iterator[None]:
    try:
        yield
    # asyncpg's own errors come from statements sent to the driver directly
    # (the partitions' DDL), past SQLAlchemy.
    except (SQLAlchemyError, asyncpg.PostgresError, OSError, CommandError) as err:
        raise StoreError(f"{action} failed: {err}") from err


def _alembic_turn() -> asyncio.Lock:
    """One Alembic run at a time in this event loop.

    Alembic keeps the running migration in module globals (`alembic.context`,
    `alembic.op`), and a run yields to the loop at every statement; two runs
    interleaved, even on different databases, would trip over each other.
    """
    loop = asyncio.get_running_loop()
    return _ALEMBIC_TURNS.setdefault(loop, asyncio.Lock())


def _upgrade(connection: Connection, config: Config, revision: str) -> None:
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()
