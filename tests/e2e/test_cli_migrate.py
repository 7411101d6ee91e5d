"""`nubes migrate` and `nubes migrate --post-deploy` as an operator runs them on PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import sqlalchemy as sa

from nubes.store.database import Database

pytestmark = pytest.mark.e2e

PARTITIONED = "SELECT count(*) FROM pg_partitioned_table WHERE partrelid = 'messages'::regclass"


async def _scalar(url: str, query: str) -> Any:
    database = Database(url)
    try:
        async with database.engine.connect() as conn:
            return (await conn.execute(sa.text(query))).scalar()
    finally:
        await database.dispose()


async def _migrate_to(url: str, revision: str) -> None:
    database = Database(url)
    try:
        await database.migrate(revision)
    finally:
        await database.dispose()


def test_an_upgrade_partitions_messages_only_with_post_deploy(
    nubes_factory: Any, fresh_pg_url: str
) -> None:
    asyncio.run(_migrate_to(fresh_pg_url, "0005"))  # the database of an older release
    nubes = nubes_factory({"NUBES_DATABASE_URL": fresh_pg_url})

    said = nubes.run("migrate")
    assert "database at revision" in said
    assert "partitioned" not in said
    assert asyncio.run(_scalar(fresh_pg_url, PARTITIONED)) == 0

    said = nubes.run("migrate", "--post-deploy")
    assert "messages partitioned by month" in said
    assert asyncio.run(_scalar(fresh_pg_url, PARTITIONED)) == 1

    again = nubes.run("migrate", "--post-deploy")
    assert "partitioned" not in again
    assert "database at revision" in again


def test_a_new_database_is_partitioned_by_migrate(nubes_factory: Any, fresh_pg_url: str) -> None:
    nubes = nubes_factory({"NUBES_DATABASE_URL": fresh_pg_url})
    nubes.run("migrate")
    assert asyncio.run(_scalar(fresh_pg_url, PARTITIONED)) == 1
