"""Devices: add, list, show, change, delete; the organization and group they belong to.

Claim tokens and PSKs are secrets: they are written here and read back only
by the gateway (the MAC key must be known to verify a tag, so it cannot be
hashed) and by `reveal_secrets`, which the API allows admins only; nothing
else here returns them. Every change that the gateway must see bumps
`changed_at`.

Deleting is soft: the row stays (its sessions, messages and downlinks point
at it) with `deleted_at` set and `enabled` off, and the gateway drops it from
its directory when it sees the row change. The serial number stays on the
deleted row, because the gateway forgets a device by its serial. Adding the
serial again (in any organization) *retires* the deleted row first: its
serial moves out of the uint32 range (`-(random << 32 | serial)`, the low 32
bits keep the old serial for forensics) and a new row with a new id is
inserted. The new device so starts with an empty history, and a device that
changed hands never shows its former owner's messages.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from nubes.errors import NotFound, StoreError
from nubes.services import audit
from nubes.store import tables as t

DEFAULT_ORGANIZATION = "default"
DEFAULT_GROUP = "default"
_HEX = re.compile(r"^[0-9a-fA-F]*$")

SECRET_COLUMNS = frozenset({"claim_token", "psk", "psk_previous"})
PUBLIC_COLUMNS = [c for c in t.devices.c if c.name not in SECRET_COLUMNS | {"deleted_at"}]
# How long a replaced DTLS PSK stays valid, unless a change says otherwise:
# long enough for the device to be given the new key (`cloud psk set`).
PSK_GRACE_SECONDS = 7 * 24 * 3600


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
            await free_serial(conn, serial)
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


async def free_serial(conn: AsyncConnection, serial: int) -> None:
    """Retires a soft-deleted device that still holds `serial` (see the module docstring)."""
    d = t.devices
    retired = -(((secrets.randbelow(2**31 - 1) + 1) << 32) | serial)
    await conn.execute(
        sa.update(d)
        .where(d.c.serial == serial, d.c.deleted_at.is_not(None))
        .values(serial=retired, changed_at=datetime.now(UTC))
    )


# --- what the API needs -------------------------------------------------------

DEVICE_SORT_FIELDS = ("name", "label", "created_at", "serial", "last_seen_at")
# Only the names of changed secrets reach the audit log, never their values.
SECRET_FIELDS = frozenset({"claim_token", "psk"})
_VIEW_COLUMNS = [*PUBLIC_COLUMNS, t.devices.c.psk.is_not(None).label("has_psk")]


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    """Which devices a listing shows; `organizations` are those the caller may read."""

    organizations: Sequence[uuid.UUID]
    organization_id: uuid.UUID | None = None
    group_id: uuid.UUID | None = None
    q: str | None = None
    enabled: bool | None = None

    def clauses(self) -> list[sa.ColumnElement[bool]]:
        d = t.devices
        where: list[sa.ColumnElement[bool]] = [
            d.c.deleted_at.is_(None),
            d.c.organization_id.in_(list(self.organizations)),
        ]
        if self.organization_id is not None:
            where.append(d.c.organization_id == self.organization_id)
        if self.group_id is not None:
            where.append(d.c.group_id == self.group_id)
        if self.enabled is not None:
            where.append(d.c.enabled.is_(self.enabled))
        if self.q:
            where.append(
                sa.or_(
                    d.c.name.icontains(self.q, autoescape=True),
                    d.c.label.icontains(self.q, autoescape=True),
                    sa.cast(d.c.serial, sa.String).contains(self.q, autoescape=True),
                )
            )
        return where


async def search_devices(
    engine: AsyncEngine,
    where: DeviceFilter,
    *,
    sort_field: str = "created_at",
    descending: bool = False,
    offset: int = 0,
    limit: int = 100,
) -> tuple[int, list[dict[str, Any]]]:
    """One page of devices and how many match in all."""
    d = t.devices
    clauses = where.clauses()
    column = d.c[sort_field]
    order = [column.desc() if descending else column.asc(), d.c.id]
    query = sa.select(*_VIEW_COLUMNS).where(*clauses).order_by(*order).offset(offset).limit(limit)
    async with engine.connect() as conn:
        count = sa.select(sa.func.count()).select_from(d).where(*clauses)
        total = int((await conn.execute(count)).scalar() or 0)
        rows = [dict(row) for row in (await conn.execute(query)).mappings()]
    return total, rows


async def find_device(conn: AsyncConnection, device_id: uuid.UUID) -> dict[str, Any] | None:
    """A device that is not deleted, without its secrets; None when there is none."""
    d = t.devices
    query = sa.select(*_VIEW_COLUMNS).where(d.c.id == device_id, d.c.deleted_at.is_(None))
    row = (await conn.execute(query)).mappings().first()
    return None if row is None else dict(row)


async def _group_of(
    conn: AsyncConnection, organization_id: uuid.UUID, group_id: uuid.UUID | None
) -> uuid.UUID:
    if group_id is None:
        return await ensure_group(conn, organization_id, DEFAULT_GROUP)
    g = t.groups
    query = sa.select(g.c.id).where(g.c.id == group_id, g.c.organization_id == organization_id)
    if (await conn.execute(query)).scalar() is None:
        raise NotFound("group not found in the device's organization")
    return group_id


async def create_device(
    engine: AsyncEngine,
    *,
    organization_id: uuid.UUID,
    serial: int,
    claim_token: bytes,
    actor: audit.Actor,
    group_id: uuid.UUID | None = None,
    psk: bytes | None = None,
    name: str | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    """Adds a device to an organization (its `default` group unless told otherwise)."""
    now = datetime.now(UTC)
    device_id = uuid.uuid4()
    try:
        async with engine.begin() as conn:
            group_id = await _group_of(conn, organization_id, group_id)
            await free_serial(conn, serial)
            await conn.execute(
                sa.insert(t.devices).values(
                    id=device_id,
                    organization_id=organization_id,
                    group_id=group_id,
                    serial=serial,
                    claim_token=claim_token,
                    psk=psk,
                    name=name or f"CHESTER {serial}",
                    label=f"hsn:{serial}" if label is None else label,
                    enabled=True,
                    created_at=now,
                    changed_at=now,
                )
            )
            details = {"serial": serial, "group_id": str(group_id), "has_psk": psk is not None}
            await audit.record(
                conn, actor, organization_id, "device.create", "device", device_id, details
            )
            created = await find_device(conn, device_id)
    except IntegrityError as err:
        raise StoreError(f"a device with serial number {serial} exists") from err
    assert created is not None
    return created


async def update_device(
    engine: AsyncEngine,
    device: Mapping[str, Any],
    changes: Mapping[str, Any],
    actor: audit.Actor,
) -> dict[str, Any]:
    """Changes some of name, label, enabled, group_id, claim_token, psk.

    A new `psk` keeps the one it replaces valid for `psk_grace_seconds`
    (default `PSK_GRACE_SECONDS`; 0: at once invalid), so that a device still
    holding the old key keeps connecting until it is given the new one.
    """
    device_id, organization_id = device["id"], device["organization_id"]
    changes = dict(changes)
    grace = changes.pop("psk_grace_seconds", None)
    details = {"fields": sorted(changes)}  # what the caller changed, never values
    async with engine.begin() as conn:
        if "group_id" in changes:
            await _group_of(conn, organization_id, changes["group_id"])
        if "psk" in changes:
            changes |= await _rotated_psk(conn, device_id, changes["psk"], grace)
        if changes:
            d = t.devices
            await conn.execute(sa.update(d).where(d.c.id == device_id).values(**changes))
            await touch_device(conn, device_id)
            await audit.record(
                conn, actor, organization_id, "device.update", "device", device_id, details
            )
        updated = await find_device(conn, device_id)
    if updated is None:
        raise NotFound("device not found")
    return updated


async def _rotated_psk(
    conn: AsyncConnection, device_id: uuid.UUID, new: bytes | None, grace: int | None
) -> dict[str, Any]:
    """The previous-key columns for a PSK change: the replaced key, valid for `grace` s."""
    d = t.devices
    current = (await conn.execute(sa.select(d.c.psk).where(d.c.id == device_id))).scalar()
    seconds = PSK_GRACE_SECONDS if grace is None else grace
    if current is None or new is None or bytes(current) == new or seconds <= 0:
        if current is not None and bytes(current) == new:
            return {}  # the same key again: the previous one keeps its window
        return {"psk_previous": None, "psk_previous_until": None}
    until = datetime.now(UTC) + timedelta(seconds=seconds)
    return {"psk_previous": bytes(current), "psk_previous_until": until}


async def set_psk(
    engine: AsyncEngine, serial: int, psk: bytes | None, grace_seconds: int | None = None
) -> dict[str, Any]:
    """The CLI's PSK change: as the API's, by serial number, audited as the system."""
    async with engine.connect() as conn:
        found = (
            await conn.execute(
                sa.select(t.devices.c.id).where(
                    t.devices.c.serial == serial, t.devices.c.deleted_at.is_(None)
                )
            )
        ).scalar()
        device = None if found is None else await find_device(conn, found)
    if device is None:
        raise NotFound(f"no device with serial {serial}")
    changes: dict[str, Any] = {"psk": psk, "psk_grace_seconds": grace_seconds}
    return await update_device(engine, device, changes, audit.SYSTEM)


async def delete_device(engine: AsyncEngine, device: Mapping[str, Any], actor: audit.Actor) -> None:
    """Soft delete: hidden everywhere, disabled, and dropped by the gateways."""
    d = t.devices
    async with engine.begin() as conn:
        done = await conn.execute(
            sa.update(d)
            .where(d.c.id == device["id"], d.c.deleted_at.is_(None))
            .values(deleted_at=datetime.now(UTC), enabled=False)
        )
        if done.rowcount == 0:
            raise NotFound("device not found")
        await touch_device(conn, device["id"])
        details = {"serial": device["serial"]}
        await audit.record(
            conn, actor, device["organization_id"], "device.delete", "device", device["id"], details
        )


async def reveal_secrets(
    engine: AsyncEngine, device: Mapping[str, Any], actor: audit.Actor
) -> tuple[bytes, bytes | None]:
    """The claim token and PSK of a device; the reading itself is audited."""
    d = t.devices
    async with engine.begin() as conn:
        query = sa.select(d.c.claim_token, d.c.psk).where(d.c.id == device["id"])
        row = (await conn.execute(query)).first()
        if row is None:
            raise NotFound("device not found")
        await audit.record(
            conn, actor, device["organization_id"], "device.reveal", "device", device["id"]
        )
    return bytes(row.claim_token), None if row.psk is None else bytes(row.psk)
