"""What API tests share: an app on a real database, tenants with keys, seed data.

The app runs in-process through httpx's ASGI transport (the same FastAPI app
`nubes serve` serves); the database is the real SQLite or PostgreSQL of the
`migrated_db` fixture. Each test gets two organizations, so isolation can be
checked everywhere: `api.a` and `api.b`, each with keys of every scope.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from nubes.api.app import create_app
from nubes.api.context import ApiContext
from nubes.config import Settings
from nubes.ids import uuid7
from nubes.pipeline.cache import MemoryCache
from nubes.pipeline.live import MemoryLive
from nubes.services import auth
from nubes.services.devices import add_device
from nubes.store import tables as t


@dataclass
class Tenant:
    name: str
    organization_id: uuid.UUID
    group_id: uuid.UUID
    keys: dict[str, str] = field(default_factory=dict)  # scope -> key

    def headers(self, scope: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[scope]}"}


@dataclass
class Api:
    client: httpx.AsyncClient
    ctx: ApiContext
    a: Tenant
    b: Tenant

    @property
    def engine(self) -> AsyncEngine:
        return self.ctx.engine


async def make_tenant(engine: AsyncEngine, name: str) -> Tenant:
    keys = {}
    organization_id = None
    for scope in auth.SCOPES:
        created = await auth.create_api_key(engine, organization=name, scope=scope, name=scope)
        keys[scope] = created["key"]
        organization_id = created["organization_id"]
    assert organization_id is not None
    async with engine.connect() as conn:
        group_id = (
            await conn.execute(
                sa.select(t.groups.c.id).where(t.groups.c.organization_id == organization_id)
            )
        ).scalar_one()
    return Tenant(name, organization_id, group_id, keys)


@asynccontextmanager
async def running_api(engine: AsyncEngine, **settings: Any) -> AsyncIterator[Api]:
    ctx = ApiContext(Settings(**settings), engine, MemoryCache(), MemoryLive())
    app = create_app(ctx)
    a = await make_tenant(engine, "tenant-a")
    b = await make_tenant(engine, "tenant-b")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://nubes.test") as client:
        yield Api(client, ctx, a, b)


async def add_test_device(
    engine: AsyncEngine, tenant: Tenant, serial: int, name: str | None = None
) -> dict[str, Any]:
    return await add_device(
        engine,
        serial=serial,
        claim_token=bytes(range(16)),
        name=name,
        organization=tenant.name,
    )


async def insert_messages(
    engine: AsyncEngine,
    device: dict[str, Any],
    count: int,
    *,
    type_name: str = "data",
    direction: str = "up",
    start: datetime | None = None,
    step: timedelta = timedelta(seconds=1),
    body: dict[str, Any] | None = None,
) -> list[uuid.UUID]:
    """Stores `count` messages of a device, oldest first, `step` apart."""
    start = start or datetime.now(UTC) - step * count
    rows = []
    for i in range(count):
        rows.append(
            {
                "id": uuid7(),
                "created_at": start + step * i,
                "organization_id": device["organization_id"],
                "group_id": device["group_id"],
                "device_id": device["id"],
                "session_id": None,
                "type": type_name,
                "direction": direction,
                "body": body if body is not None else {"counter": i},
                "raw": bytes([i % 256]),
                "codec_hash": None,
                "decode_state": "decoded" if type_name == "data" else None,
            }
        )
    async with engine.begin() as conn:
        await conn.execute(sa.insert(t.messages), rows)
    return [row["id"] for row in rows]
