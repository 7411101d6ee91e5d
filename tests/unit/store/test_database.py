"""The database adapter on SQLite: set-up, migrations, persistence.

SQLite is embedded, so these need no service; the same behaviour on
PostgreSQL is covered in tests/integration/store.
"""

from __future__ import annotations

import asyncio
import io
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy.exc import IntegrityError

from nubes.errors import StoreError
from nubes.store import tables as t
from nubes.store.database import (
    MIGRATIONS,
    Database,
    alembic_config,
    head_revision,
    migrate_sync,
)

NOW = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


async def _pragmas(database: Database) -> tuple[object, ...]:
    async with database.engine.connect() as connection:
        values = []
        for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys"):
            values.append((await connection.exec_driver_sql(f"PRAGMA {name}")).scalar())
        return tuple(values)


async def _organization_names(database: Database) -> list[str]:
    async with database.engine.connect() as connection:
        result = await connection.execute(sa.select(t.organizations.c.name))
        return list(result.scalars())


def _organization(name: str) -> dict[str, object]:
    return {"id": uuid.uuid4(), "name": name, "created_at": NOW}


def test_migrate_sync_creates_the_file_and_its_folder(sqlite_path: Path, sqlite_url: str) -> None:
    assert not sqlite_path.parent.exists()
    migrate_sync(sqlite_url)
    migrate_sync(sqlite_url)
    assert sqlite_path.is_file()


async def test_pragmas_are_set_on_every_connection(sqlite_url: str) -> None:
    database = Database(sqlite_url)
    try:
        # Two connections at once: the second cannot be the first one reused.
        first, second = await asyncio.gather(_pragmas(database), _pragmas(database))
    finally:
        await database.dispose()
    assert first == second == ("wal", 1, 5000, 1)


async def test_foreign_keys_are_enforced(migrated_sqlite: Database) -> None:
    group = {"id": uuid.uuid4(), "organization_id": uuid.uuid4(), "name": "g", "created_at": NOW}
    with pytest.raises(IntegrityError):
        async with migrated_sqlite.engine.begin() as connection:
            await connection.execute(sa.insert(t.groups), [group])


async def test_current_revision_is_none_until_migrated(sqlite_url: str) -> None:
    database = Database(sqlite_url)
    try:
        assert await database.current_revision() is None
        await database.migrate()
        assert await database.current_revision() == head_revision()
    finally:
        await database.dispose()


async def test_migrating_twice_changes_nothing(migrated_sqlite: Database) -> None:
    async with migrated_sqlite.engine.begin() as connection:
        await connection.execute(sa.insert(t.organizations), [_organization("kept")])
    await migrated_sqlite.migrate()
    assert await migrated_sqlite.current_revision() == head_revision()
    assert await _organization_names(migrated_sqlite) == ["kept"]


async def test_data_survives_dispose_and_reopen(sqlite_url: str) -> None:
    database = Database(sqlite_url)
    await database.migrate()
    async with database.engine.begin() as connection:
        await connection.execute(sa.insert(t.organizations), [_organization("durable")])
    await database.dispose()

    reopened = Database(sqlite_url)
    try:
        assert await reopened.current_revision() == head_revision()
        assert await _organization_names(reopened) == ["durable"]
    finally:
        await reopened.dispose()


async def _create_a_table_then_fail(database: Database) -> None:
    async with database.migration_connection() as connection:
        await connection.exec_driver_sql("CREATE TABLE half (id INTEGER)")
        raise RuntimeError("halfway")


async def test_a_failed_migration_transaction_leaves_no_ddl_behind(sqlite_url: str) -> None:
    database = Database(sqlite_url)
    try:
        with pytest.raises(RuntimeError, match="halfway"):
            await _create_a_table_then_fail(database)
        async with database.engine.connect() as connection:
            names = await connection.run_sync(lambda sync: sa.inspect(sync).get_table_names())
        assert "half" not in names
        assert (await _pragmas(database))[3] == 1, "foreign keys are back on"
    finally:
        await database.dispose()


async def test_an_in_memory_database_migrates() -> None:
    database = Database("sqlite+aiosqlite://")
    try:
        await database.migrate()
        assert await database.current_revision() == head_revision()
    finally:
        await database.dispose()


def test_alembic_config_uses_the_packaged_scripts_and_keeps_percent_signs() -> None:
    url = "postgresql+asyncpg://nubes:p%40ss@db:5432/nubes"
    config = alembic_config(url)
    assert Path(config.get_main_option("script_location") or "") == MIGRATIONS
    assert config.get_main_option("sqlalchemy.url") == url


def test_migration_history_is_one_straight_line_with_downgrades() -> None:
    scripts = ScriptDirectory(str(MIGRATIONS))
    assert scripts.get_heads() == [head_revision()]
    revisions = list(scripts.walk_revisions())
    assert revisions[-1].down_revision is None
    for script in revisions:
        assert not script.is_merge_point
        assert callable(getattr(script.module, "downgrade", None))


async def test_postgresql_gets_a_bounded_pre_pinging_pool() -> None:
    database = Database("postgresql+asyncpg://nobody@127.0.0.1:1/none", pool_size=3)
    try:
        pool = database.engine.pool
        assert pool.size() == 3  # type: ignore[attr-defined]
        assert pool._pre_ping
        assert not database.is_sqlite
    finally:
        await database.dispose()


@pytest.mark.parametrize(
    ("url", "dialect_sql"),
    [
        ("postgresql+asyncpg://nubes@db/nubes", "JSONB"),
        ("sqlite+aiosqlite:///nubes.db", "CHAR(32)"),
    ],
)
def test_offline_mode_renders_the_sql_for_review(url: str, dialect_sql: str) -> None:
    config = alembic_config(url)
    config.output_buffer = io.StringIO()
    command.upgrade(config, "head", sql=True)
    sql = config.output_buffer.getvalue()
    assert "CREATE TABLE messages" in sql
    assert dialect_sql in sql


async def test_migrations_of_two_databases_at_once(tmp_path: Path) -> None:
    databases = [Database(f"sqlite+aiosqlite:///{tmp_path / name}") for name in ("a.db", "b.db")]
    try:
        await asyncio.gather(*(database.migrate() for database in databases))
        for database in databases:
            assert await database.current_revision() == head_revision()
    finally:
        await asyncio.gather(*(database.dispose() for database in databases))


async def test_an_unreachable_server_is_a_store_error(closed_port: int) -> None:
    database = Database(f"postgresql+asyncpg://nobody@127.0.0.1:{closed_port}/none")
    try:
        with pytest.raises(StoreError, match="migration failed"):
            await database.migrate()
        with pytest.raises(StoreError, match="schema revision"):
            await database.current_revision()
    finally:
        await database.dispose()


async def test_an_unknown_revision_is_a_store_error(sqlite_url: str) -> None:
    database = Database(sqlite_url)
    try:
        with pytest.raises(StoreError, match="migration failed"):
            await database.migrate("nonexistent")
    finally:
        await database.dispose()
