"""Readiness of the database: it answers, and its schema is not behind the code."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from nubes.errors import StoreError
from nubes.store.database import MIGRATIONS, Database, head_revision

pytestmark = pytest.mark.integration


async def test_an_unmigrated_database_is_not_ready(empty_db_url: str) -> None:
    database = Database(empty_db_url)
    try:
        with pytest.raises(StoreError, match="no schema: run `nubes migrate`"):
            await database.ping()
    finally:
        await database.dispose()


async def test_a_database_at_head_is_ready(migrated_db: Database) -> None:
    await migrated_db.ping()


async def test_a_schema_behind_the_code_is_not_ready(empty_db_url: str) -> None:
    previous = ScriptDirectory(str(MIGRATIONS)).get_revision(head_revision()).down_revision
    assert isinstance(previous, str)
    database = Database(empty_db_url)
    try:
        await database.migrate(previous)
        with pytest.raises(StoreError, match=f"at {previous}, behind {head_revision()}"):
            await database.ping()
        await database.migrate()
        await database.ping()
    finally:
        await database.dispose()


async def test_a_schema_newer_than_the_code_is_ready(migrated_db: Database) -> None:
    # A newer `nubes migrate` ran: old processes keep serving (migrations only add).
    async with migrated_db.engine.begin() as connection:
        await connection.execute(sa.text("UPDATE alembic_version SET version_num = 'f00dfeed'"))
    await migrated_db.ping()
