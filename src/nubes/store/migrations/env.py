"""Alembic's entry point for the Nubes migrations.

Two ways in:

- `Database.migrate()`, the normal path (`nubes migrate`, `nubes serve`),
  hands over a sync connection in `config.attributes["connection"]`, already
  inside a transaction that it commits; this file only runs the scripts on it.
- An Alembic command given only a URL, for instance to write a new revision:
  `command.revision(alembic_config(url), "add x", autogenerate=True)` from
  `nubes.store.database`. This file then opens a `Database` itself and runs in
  the same transaction as above, from code that runs no event loop.

SQLite alters tables only by rebuilding them, hence `render_as_batch` there.
No logging set-up here: the process that migrates owns logging.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from nubes.store.database import Database
from nubes.store.partitions import include_name
from nubes.store.tables import metadata


def run_offline() -> None:
    """Render the SQL for the configured URL's dialect (`alembic upgrade --sql`)."""
    url = context.config.get_main_option("sqlalchemy.url")
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url is not None and url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_name=include_name,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_standalone(url: str) -> None:
    database = Database(url)
    try:
        async with database.migration_connection() as connection:
            await connection.run_sync(run_on)
    finally:
        await database.dispose()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("alembic: no connection and no sqlalchemy.url given")
    asyncio.run(run_standalone(url))


if context.is_offline_mode():
    run_offline()
else:
    run_online()
