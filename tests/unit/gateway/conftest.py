"""A running embedded cloud (gateway + worker, SQLite, in-process broker) per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from helpers import embedded_cloud
from nubes.bootstrap import Runtime
from nubes.store.database import Database


@pytest.fixture
async def cloud(migrated_sqlite: Database) -> AsyncIterator[Runtime]:
    async with embedded_cloud(migrated_sqlite.url) as runtime:
        yield runtime
