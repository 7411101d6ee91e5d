"""Organizations, their members, and reading their audit log.

A signed-in user who creates an organization becomes its owner, and the
organization gets its `default` group, as every organization has. An
organization always keeps one owner at least: removing or demoting the last
one is refused (a conflict). The owners are read with a row lock, so two
owners demoting each other at the same moment cannot both succeed.

Who may grant what (owners only grant or take away `owner`) is the API's
business: it knows the caller's level; this module knows the rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from nubes.errors import NotAllowed, NotFound, StoreError
from nubes.services import audit, auth
from nubes.services.devices import DEFAULT_GROUP, ensure_group
from nubes.store import tables as t

ORGANIZATION_SORT_FIELDS = ("name", "created_at")
MEMBER_SORT_FIELDS = ("email", "role", "created_at")
# The column's server default (migration 0006).
DEFAULT_RETENTION_DAYS = 90
MIN_RETENTION_DAYS, MAX_RETENTION_DAYS = 1, 3650  # the column's check constraint


@dataclass(frozen=True, slots=True)
class Page:
    """Ordering and paging of a listing."""

    sort_field: str
    descending: bool = False
    offset: int = 0
    limit: int = 100


async def _page(
    conn: AsyncConnection, query: sa.Select[Any], count: sa.Select[Any]
) -> tuple[int, list[dict[str, Any]]]:
    total = int((await conn.execute(count)).scalar() or 0)
    return total, [dict(row) for row in (await conn.execute(query)).mappings()]


def _order(column: sa.ColumnElement[Any], page: Page) -> sa.ColumnElement[Any]:
    return column.desc() if page.descending else column.asc()


# --- organizations --------------------------------------------------------------


async def list_organizations(
    engine: AsyncEngine, ids: Sequence[uuid.UUID], page: Page
) -> tuple[int, list[dict[str, Any]]]:
    o = t.organizations
    where = o.c.id.in_(list(ids))
    query = (
        sa.select(o)
        .where(where)
        .order_by(_order(o.c[page.sort_field], page), o.c.id)
        .offset(page.offset)
        .limit(page.limit)
    )
    async with engine.connect() as conn:
        return await _page(conn, query, sa.select(sa.func.count()).select_from(o).where(where))


async def find_organization(
    conn: AsyncConnection, organization_id: uuid.UUID
) -> dict[str, Any] | None:
    o = t.organizations
    row = (await conn.execute(sa.select(o).where(o.c.id == organization_id))).mappings().first()
    return None if row is None else dict(row)


async def create_organization(engine: AsyncEngine, name: str, actor: audit.Actor) -> dict[str, Any]:
    """A new organization with its `default` group; the acting user becomes its owner."""
    if actor.type != "user" or actor.id is None:
        raise ValueError("only a user can own an organization")
    organization_id = uuid.uuid4()
    now = datetime.now(UTC)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.insert(t.organizations).values(id=organization_id, name=name, created_at=now)
            )
            await ensure_group(conn, organization_id, DEFAULT_GROUP)
            await conn.execute(
                sa.insert(t.memberships).values(
                    user_id=actor.id, organization_id=organization_id, role="owner", created_at=now
                )
            )
            await audit.record(
                conn, actor, organization_id, "organization.create", "organization",
                organization_id, {"name": name},
            )  # fmt: skip
    except IntegrityError as err:
        raise StoreError(f"an organization named {name!r} exists") from err
    return {
        "id": organization_id,
        "name": name,
        "created_at": now,
        "message_retention_days": DEFAULT_RETENTION_DAYS,
    }


async def update_organization(
    engine: AsyncEngine, organization_id: uuid.UUID, changes: Mapping[str, Any], actor: audit.Actor
) -> dict[str, Any]:
    """Changes the name and/or `message_retention_days`.

    The audit entry holds each changed field's new value and, under `was`,
    the old one (neither is a secret); a rename alone keeps the shape it had
    before retention existed: `{"name": new, "was": old}`.
    """
    days = changes.get("message_retention_days", DEFAULT_RETENTION_DAYS)
    if not MIN_RETENTION_DAYS <= days <= MAX_RETENTION_DAYS:
        raise ValueError(
            f"message_retention_days must be {MIN_RETENTION_DAYS}..{MAX_RETENTION_DAYS}"
        )
    o = t.organizations
    try:
        async with engine.begin() as conn:
            before = await find_organization(conn, organization_id)
            if before is None:
                raise NotFound("organization not found")
            if changes:
                await conn.execute(sa.update(o).where(o.c.id == organization_id).values(**changes))
                await audit.record(
                    conn, actor, organization_id, "organization.update", "organization",
                    organization_id, _update_details(before, changes),
                )  # fmt: skip
    except IntegrityError as err:
        raise StoreError(f"an organization named {changes.get('name')!r} exists") from err
    return {**before, **changes}


def _update_details(before: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    if set(changes) == {"name"}:
        return {"name": changes["name"], "was": before["name"]}
    return {**changes, "was": {field: before[field] for field in changes}}


# --- members ----------------------------------------------------------------------


def _members_query() -> sa.Select[Any]:
    m, u = t.memberships, t.users
    return sa.select(u.c.id, u.c.email, m.c.role, m.c.created_at, m.c.organization_id).join(
        u, u.c.id == m.c.user_id
    )


async def list_members(
    engine: AsyncEngine, organization_id: uuid.UUID, page: Page
) -> tuple[int, list[dict[str, Any]]]:
    m, u = t.memberships, t.users
    where = m.c.organization_id == organization_id
    column = u.c.email if page.sort_field == "email" else m.c[page.sort_field]
    query = (
        _members_query()
        .where(where)
        .order_by(_order(column, page), u.c.id)
        .offset(page.offset)
        .limit(page.limit)
    )
    async with engine.connect() as conn:
        return await _page(conn, query, sa.select(sa.func.count()).select_from(m).where(where))


async def find_member(
    conn: AsyncConnection, organization_id: uuid.UUID, user_id: uuid.UUID
) -> dict[str, Any] | None:
    m = t.memberships
    query = _members_query().where(m.c.organization_id == organization_id, m.c.user_id == user_id)
    row = (await conn.execute(query)).mappings().first()
    return None if row is None else dict(row)


async def _user_to_add(
    conn: AsyncConnection,
    email: str,
    password_hash: str | None,
    visible: Collection[uuid.UUID],
) -> tuple[uuid.UUID, bool]:
    """The user to add and whether it was created now.

    An existing user can be added only by someone who administers an
    organization that user is in already: otherwise any admin could learn
    which emails have accounts, and put strangers into their organization.
    Anyone else must create a new user (`password_hash` given); an email
    taken elsewhere then answers a conflict that does not say where.
    """
    u, m = t.users, t.memberships
    found = (await conn.execute(sa.select(u.c.id).where(u.c.email == email))).scalar()
    if found is not None:
        user_id = uuid.UUID(str(found))
        shared = await conn.execute(
            sa.select(m.c.user_id)
            .where(m.c.user_id == user_id, m.c.organization_id.in_(list(visible)))
            .limit(1)
        )
        if shared.first() is not None:
            return user_id, False
    if password_hash is None:
        raise NotFound(
            "no member of your organizations has this email: give a password to create the user"
        )
    if found is not None:
        raise StoreError("this email cannot be used for a new user")
    user_id, now = uuid.uuid4(), datetime.now(UTC)
    await conn.execute(
        sa.insert(u).values(
            id=user_id, email=email, password_hash=password_hash, created_at=now, updated_at=now
        )
    )
    return user_id, True


async def add_member(
    engine: AsyncEngine,
    organization_id: uuid.UUID,
    *,
    email: str,
    role: str,
    password: str | None,
    actor: audit.Actor,
    visible: Collection[uuid.UUID] = (),
) -> dict[str, Any]:
    """Adds a user the caller knows, or creates one when a password is given.

    `visible`: the organizations the caller administers (see `_user_to_add`).
    The password of a user who exists already is never touched: an admin of
    one organization must not be able to take over an account. The password
    is hashed before anything is looked up, so the answer takes as long
    whether the email exists or not. Raises ValueError for an invalid email
    or weak password.
    """
    email = auth.normalize_email(email)
    password_hash = None
    if password is not None:
        auth.check_password_strength(password)
        password_hash = await auth.hash_password(password)
    try:
        async with engine.begin() as conn:
            user_id, created = await _user_to_add(conn, email, password_hash, visible)
            await conn.execute(
                sa.insert(t.memberships).values(
                    user_id=user_id,
                    organization_id=organization_id,
                    role=role,
                    created_at=datetime.now(UTC),
                )
            )
            details = {"email": email, "role": role, "created_user": created}
            await audit.record(conn, actor, organization_id, "member.add", "user", user_id, details)
            member = await find_member(conn, organization_id, user_id)
    except IntegrityError as err:
        raise StoreError(f"{email} is a member already") from err
    assert member is not None
    return member


async def _owners(conn: AsyncConnection, organization_id: uuid.UUID) -> set[uuid.UUID]:
    m = t.memberships
    query = (
        sa.select(m.c.user_id)
        .where(m.c.organization_id == organization_id, m.c.role == "owner")
        .with_for_update()
    )
    return {uuid.UUID(str(user_id)) for user_id in (await conn.execute(query)).scalars()}


async def _keep_an_owner(
    conn: AsyncConnection, organization_id: uuid.UUID, user_id: uuid.UUID
) -> None:
    owners = await _owners(conn, organization_id)
    if owners == {user_id}:
        raise StoreError("the organization must keep an owner: make someone else owner first")


async def _locked_member(
    conn: AsyncConnection, organization_id: uuid.UUID, user_id: uuid.UUID, caller_is_owner: bool
) -> dict[str, Any]:
    """The member, locked for this transaction; only owners may touch an owner."""
    m = t.memberships
    await conn.execute(
        sa.select(m.c.role)
        .where(m.c.organization_id == organization_id, m.c.user_id == user_id)
        .with_for_update()
    )
    member = await find_member(conn, organization_id, user_id)
    if member is None:
        raise NotFound("member not found")
    if member["role"] == "owner" and not caller_is_owner:
        raise NotAllowed("only an owner may change or remove an owner")
    return member


async def set_role(
    engine: AsyncEngine,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    role: str,
    actor: audit.Actor,
    *,
    caller_is_owner: bool,
) -> dict[str, Any]:
    m = t.memberships
    if role == "owner" and not caller_is_owner:
        raise NotAllowed("only an owner may make owners")
    async with engine.begin() as conn:
        member = await _locked_member(conn, organization_id, user_id, caller_is_owner)
        if member["role"] == "owner" and role != "owner":
            await _keep_an_owner(conn, organization_id, user_id)
        await conn.execute(
            sa.update(m)
            .where(m.c.organization_id == organization_id, m.c.user_id == user_id)
            .values(role=role)
        )
        details = {"role": role, "was": member["role"]}
        await audit.record(conn, actor, organization_id, "member.update", "user", user_id, details)
    return {**member, "role": role}


async def remove_member(
    engine: AsyncEngine,
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    actor: audit.Actor,
    *,
    caller_is_owner: bool,
) -> None:
    m = t.memberships
    async with engine.begin() as conn:
        member = await _locked_member(conn, organization_id, user_id, caller_is_owner)
        if member["role"] == "owner":
            await _keep_an_owner(conn, organization_id, user_id)
        await conn.execute(
            sa.delete(m).where(m.c.organization_id == organization_id, m.c.user_id == user_id)
        )
        details = {"email": member["email"], "role": member["role"]}
        await audit.record(conn, actor, organization_id, "member.remove", "user", user_id, details)


# --- the audit log ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditFilter:
    since: datetime | None = None
    before: datetime | None = None
    action: str | None = None

    def clauses(self, organization_id: uuid.UUID) -> list[sa.ColumnElement[bool]]:
        a = t.audit_log
        where: list[sa.ColumnElement[bool]] = [a.c.organization_id == organization_id]
        if self.since is not None:
            where.append(a.c.at >= self.since)
        if self.before is not None:
            where.append(a.c.at < self.before)
        if self.action and "." in self.action:
            where.append(a.c.action == self.action)
        elif self.action:  # a family: "device" means device.create, device.update, ...
            where.append(a.c.action.startswith(self.action + ".", autoescape=True))
        return where


async def audit_entries(
    engine: AsyncEngine, organization_id: uuid.UUID, where: AuditFilter, page: Page
) -> tuple[int, list[dict[str, Any]]]:
    a = t.audit_log
    clauses = where.clauses(organization_id)
    order = [a.c.at.desc(), a.c.id.desc()] if page.descending else [a.c.at, a.c.id]
    query = sa.select(a).where(*clauses).order_by(*order).offset(page.offset).limit(page.limit)
    async with engine.connect() as conn:
        return await _page(conn, query, sa.select(sa.func.count()).select_from(a).where(*clauses))
