"""Groups: the devices of one organization that share configuration.

A group's view counts its devices (deleted ones left out). A group that
still has devices cannot be deleted: its devices would lose their callbacks
without anyone deciding so. Soft-deleted devices do not hold a group back;
they are detached from it first (their rows keep only what history needs).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from nubes.errors import NotFound, StoreError
from nubes.services import audit
from nubes.store import tables as t

GROUP_SORT_FIELDS = ("name", "created_at")


def _view_query() -> sa.Select[Any]:
    g, d = t.groups, t.devices
    count = (
        sa.select(sa.func.count())
        .where(d.c.group_id == g.c.id, d.c.deleted_at.is_(None))
        .correlate(g)
        .scalar_subquery()
    )
    return sa.select(g, count.label("device_count"))


async def find_group(conn: AsyncConnection, group_id: uuid.UUID) -> dict[str, Any] | None:
    row = (await conn.execute(_view_query().where(t.groups.c.id == group_id))).mappings().first()
    return None if row is None else dict(row)


async def list_groups(
    engine: AsyncEngine,
    organizations: Sequence[uuid.UUID],
    *,
    sort_field: str = "name",
    descending: bool = False,
    offset: int = 0,
    limit: int = 100,
) -> tuple[int, list[dict[str, Any]]]:
    g = t.groups
    where = g.c.organization_id.in_(list(organizations))
    column = g.c[sort_field]
    query = (
        _view_query()
        .where(where)
        .order_by(column.desc() if descending else column.asc(), g.c.id)
        .offset(offset)
        .limit(limit)
    )
    async with engine.connect() as conn:
        count = sa.select(sa.func.count()).select_from(g).where(where)
        total = int((await conn.execute(count)).scalar() or 0)
        rows = [dict(row) for row in (await conn.execute(query)).mappings()]
    return total, rows


async def create_group(
    engine: AsyncEngine, organization_id: uuid.UUID, name: str, actor: audit.Actor
) -> dict[str, Any]:
    group_id = uuid.uuid4()
    now = datetime.now(UTC)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.insert(t.groups).values(
                    id=group_id,
                    organization_id=organization_id,
                    name=name,
                    created_at=now,
                    updated_at=now,
                )
            )
            await audit.record(
                conn, actor, organization_id, "group.create", "group", group_id, {"name": name}
            )
            created = await find_group(conn, group_id)
    except IntegrityError as err:
        raise StoreError(f"the organization has a group named {name!r}") from err
    assert created is not None
    return created


async def rename_group(
    engine: AsyncEngine, group: Mapping[str, Any], name: str, actor: audit.Actor
) -> dict[str, Any]:
    g = t.groups
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.update(g)
                .where(g.c.id == group["id"])
                .values(name=name, updated_at=datetime.now(UTC))
            )
            details = {"name": name, "was": group["name"]}
            await audit.record(
                conn, actor, group["organization_id"], "group.update", "group", group["id"], details
            )
            renamed = await find_group(conn, group["id"])
    except IntegrityError as err:
        raise StoreError(f"the organization has a group named {name!r}") from err
    if renamed is None:
        raise NotFound("group not found")
    return renamed


async def delete_group(engine: AsyncEngine, group: Mapping[str, Any], actor: audit.Actor) -> None:
    """Deletes an empty group; StoreError (a conflict) while it has devices."""
    try:
        await _delete_group(engine, group, actor)
    except IntegrityError as err:  # a device moved in meanwhile, or rows that need it
        raise StoreError("the group is still in use") from err


async def _delete_group(engine: AsyncEngine, group: Mapping[str, Any], actor: audit.Actor) -> None:
    g, d = t.groups, t.devices
    async with engine.begin() as conn:
        current = await find_group(conn, group["id"])
        if current is None:
            raise NotFound("group not found")
        if current["device_count"]:
            raise StoreError(
                f"the group has {current['device_count']} devices: move or delete them first"
            )
        await conn.execute(
            sa.update(d)
            .where(d.c.group_id == group["id"], d.c.deleted_at.is_not(None))
            .values(group_id=None)
        )
        await conn.execute(sa.delete(g).where(g.c.id == group["id"]))
        details = {"name": group["name"]}
        await audit.record(
            conn, actor, group["organization_id"], "group.delete", "group", group["id"], details
        )
