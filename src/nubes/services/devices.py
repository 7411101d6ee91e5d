"""Devices: add, list, show; the organization and group they belong to.

Claim tokens and PSKs are secrets: they are written here and read back only
by the gateway (the MAC key must be known to verify a tag, so it cannot be
hashed); nothing here returns them. Every change that the gateway must see
bumps `changed_at`.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from nubes.errors import NotFound, StoreError
from nubes.store import tables as t

DEFAULT_ORGANIZATION = "default"
DEFAULT_GROUP = "default"
_HEX = re.compile(r"^[0-9a-fA-F]*$")

PUBLIC_COLUMNS = [c for c in t.devices.c if c.name not in ("claim_token", "psk", "deleted_at")]


def parse_serial(value: int | str) -> int:
    serial = int(value)
    if not 0 < serial <= 0xFFFF_FFFF:
        raise ValueError("serial number must be between 1 and 4294967295")
    return serial


def parse_hex_secret(value: str, *, name: str, sizes: range) -> bytes:
    text = value.strip()
    if not _HEX.match(text) or len(text) % 2:
        raise ValueError(f"{name} must be hexadecimal")
    secret = bytes.fromhex(text)
    if len(secret) not in sizes:
        if len(sizes) == 1:
            raise ValueError(f"{name} must be {sizes.start} bytes ({2 * sizes.start} hex digits)")
        raise ValueError(f"{name} must be {sizes.start} to {sizes.stop - 1} bytes")
    return secret


async def ensure_organization(conn: AsyncConnection, name: str) -> uuid.UUID:
    o = t.organizations
    found = (await conn.execute(sa.select(o.c.id).where(o.c.name == name))).scalar()
    if found is not None:
        return uuid.UUID(str(found))
    new_id = uuid.uuid4()
    await conn.execute(sa.insert(o).values(id=new_id, name=name, created_at=datetime.now(UTC)))
    return new_id


async def ensure_group(conn: AsyncConnection, organization_id: uuid.UUID, name: str) -> uuid.UUID:
    g = t.groups
    query = sa.select(g.c.id).where(g.c.organization_id == organization_id, g.c.name == name)
    found = (await conn.execute(query)).scalar()
    if found is not None:
        return uuid.UUID(str(found))
    new_id = uuid.uuid4()
    await conn.execute(
        sa.insert(g).values(
            id=new_id, organization_id=organization_id, name=name, created_at=datetime.now(UTC)
        )
    )
    return new_id


async def add_device(
    engine: AsyncEngine,
    *,
    serial: int,
    claim_token: bytes,
    name: str | None = None,
    group: str = DEFAULT_GROUP,
    psk: bytes | None = None,
    organization: str = DEFAULT_ORGANIZATION,
) -> dict[str, Any]:
    """Adds a device; StoreError when the serial number is taken."""
    now = datetime.now(UTC)
    device_id = uuid.uuid4()
    try:
        async with engine.begin() as conn:
            organization_id = await ensure_organization(conn, organization)
            group_id = await ensure_group(conn, organization_id, group)
            await conn.execute(
                sa.insert(t.devices).values(
                    id=device_id,
                    organization_id=organization_id,
                    group_id=group_id,
                    serial=serial,
                    claim_token=claim_token,
                    psk=psk,
                    name=name or f"CHESTER {serial}",
                    label=f"hsn:{serial}",
                    enabled=True,
                    created_at=now,
                    changed_at=now,
                )
            )
    except IntegrityError as err:
        raise StoreError(f"a device with serial number {serial} exists") from err
    return await get_device(engine, serial)


async def get_device(engine: AsyncEngine, serial: int) -> dict[str, Any]:
    query = (
        sa.select(*PUBLIC_COLUMNS, t.groups.c.name.label("group"))
        .outerjoin(t.groups, t.groups.c.id == t.devices.c.group_id)
        .where(t.devices.c.serial == serial, t.devices.c.deleted_at.is_(None))
    )
    async with engine.connect() as conn:
        row = (await conn.execute(query)).mappings().first()
    if row is None:
        raise NotFound(f"no device with serial number {serial}")
    return dict(row)


async def list_devices(engine: AsyncEngine) -> list[dict[str, Any]]:
    query = (
        sa.select(*PUBLIC_COLUMNS, t.groups.c.name.label("group"))
        .outerjoin(t.groups, t.groups.c.id == t.devices.c.group_id)
        .where(t.devices.c.deleted_at.is_(None))
        .order_by(t.devices.c.serial)
    )
    async with engine.connect() as conn:
        return [dict(row) for row in (await conn.execute(query)).mappings()]


async def touch_device(conn: AsyncConnection, device_id: uuid.UUID) -> None:
    """Tells the gateways that something of this device changed."""
    await conn.execute(
        sa.update(t.devices).where(t.devices.c.id == device_id).values(changed_at=datetime.now(UTC))
    )
