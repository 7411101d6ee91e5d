from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from api_kit import Api, running_api
from nubes.store.database import Database

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(migrated_db: Database) -> AsyncIterator[Api]:
    """The API app on SQLite and on PostgreSQL, with tenants `a` and `b`."""
    async with running_api(migrated_db.engine) as running:
        yield running
