"""A running embedded cloud (gateway + worker, SQLite, in-process broker) per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from nubes.bootstrap import Runtime, build_adapters
from nubes.config import Settings
from nubes.store.database import Database


@pytest.fixture
async def cloud(migrated_sqlite: Database) -> AsyncIterator[Runtime]:
    settings = Settings(
        database_url=migrated_sqlite.url,
        broker_url="memory://",
        redis_url="memory://",
        bind="127.0.0.1",
        flap_raw_port=0,
        flap_base64_port=0,
        device_refresh_seconds=0.1,
        publish_linger_ms=1,
    )
    runtime = Runtime(settings, build_adapters(settings))
    await runtime.start(gateway=True, worker=True)
    yield runtime
    await runtime.stop()
