"""Migrations on SQLite and PostgreSQL: they reach head, build exactly the
schema of `nubes.store.tables`, can be run again, and can be undone.
"""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from nubes.store.database import Database, alembic_config, head_revision
from nubes.store.partitions import include_name, is_partition_name
from nubes.store.tables import metadata

pytestmark = pytest.mark.integration


def _schema_differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(
        connection,
        opts={"compare_type": True, "compare_server_default": True, "include_name": include_name},
    )
    return list(compare_metadata(context, metadata))


def _table_names(connection: Connection) -> set[str]:
    """Tables, the monthly partitions of `messages` (PostgreSQL) aside."""
    names = sa.inspect(connection).get_table_names()
    return {name for name in names if not is_partition_name(name)}


async def _differences(database: Database) -> list[object]:
    async with database.engine.connect() as connection:
        return await connection.run_sync(_schema_differences)


async def test_migrate_to_head(empty_db_url: str) -> None:
    database = Database(empty_db_url)
    try:
        await database.migrate()
        assert await database.current_revision() == head_revision()
        async with database.engine.connect() as connection:
            names = await connection.run_sync(_table_names)
        assert names == set(metadata.tables) | {"alembic_version"}
    finally:
        await database.dispose()


async def test_migrated_schema_matches_the_tables(migrated_db: Database) -> None:
    assert await _differences(migrated_db) == []


async def test_the_comparison_would_see_a_missing_index(empty_db_url: str) -> None:
    database = Database(empty_db_url)
    try:
        await database.migrate()
        async with database.engine.begin() as connection:
            await connection.execute(sa.text("DROP INDEX ix_messages_device_id_created_at_id"))
        differences = await _differences(database)
    finally:
        await database.dispose()
    assert [diff[0] for diff in differences] == ["add_index"]  # type: ignore[index]


async def test_migrating_again_is_harmless(empty_db_url: str) -> None:
    database = Database(empty_db_url)
    try:
        await database.migrate()
        await database.migrate()
        assert await database.current_revision() == head_revision()
        assert await _differences(database) == []
    finally:
        await database.dispose()


def _downgrade_to_base(connection: Connection, url: str) -> None:
    config = alembic_config(url)
    config.attributes["connection"] = connection
    command.downgrade(config, "base")


async def test_downgrade_to_base_then_up_again(empty_db_url: str) -> None:
    database = Database(empty_db_url)
    try:
        await database.migrate()
        async with database.migration_connection() as connection:
            await connection.run_sync(_downgrade_to_base, database.url)
        assert await database.current_revision() is None
        async with database.engine.connect() as connection:
            assert await connection.run_sync(_table_names) == {"alembic_version"}
        await database.migrate()
        assert await _differences(database) == []
    finally:
        await database.dispose()


async def test_concurrent_migrations_take_turns(empty_db_url: str) -> None:
    databases = [Database(empty_db_url) for _ in range(3)]
    try:
        await asyncio.gather(*(database.migrate() for database in databases))
        assert await databases[0].current_revision() == head_revision()
        assert await _differences(databases[0]) == []
    finally:
        await asyncio.gather(*(database.dispose() for database in databases))
