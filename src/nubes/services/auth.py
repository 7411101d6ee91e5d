"""Users, sign-in tokens, API keys and second factors.

Secrets are handled so that a database dump does not give access:
passwords are argon2 hashes; access tokens and API keys are 256-bit random
strings stored as SHA-256 digests (a fast hash is safe for secrets nobody
can guess, and keeps every request's check cheap). The TOTP secret must be
read back to check a code, so it is stored as is and never returned.

A credential resolves to a `Principal`: who it is and what role it has in
each organization. Everything the API reads or writes is scoped through it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets
import struct
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from nubes.errors import NotFound, StoreError
from nubes.services import audit
from nubes.services.devices import (
    DEFAULT_GROUP,
    DEFAULT_ORGANIZATION,
    ensure_group,
    ensure_organization,
)
from nubes.store import tables as t

ROLES = ("owner", "admin", "member", "viewer")
SCOPES = ("read", "write", "admin")

# What a role or a key's scope may do, as a level: read 1, write 2, admin 3,
# owner 4 (owners may also manage other owners).
READ, WRITE, ADMIN, OWNER = 1, 2, 3, 4
ROLE_LEVEL = {"viewer": READ, "member": WRITE, "admin": ADMIN, "owner": OWNER}
SCOPE_LEVEL = {"read": READ, "write": WRITE, "admin": ADMIN}

API_KEY_PREFIX = "nbk_"
TOKEN_PREFIX = "nbt_"
VISIBLE_PREFIX = 12  # "nbk_" and 8 characters of the key
BOOTSTRAP_EMAIL = "admin@localhost"
MIN_PASSWORD = 8

_hasher = PasswordHasher()
# Verifying against this keeps a login for an unknown email as slow as one
# for a known email, so timing does not tell which emails exist.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: a signed-in user or an API key, with its organizations."""

    kind: str  # user | api_key
    id: uuid.UUID
    label: str
    levels: Mapping[uuid.UUID, int] = field(default_factory=dict)
    token_id: uuid.UUID | None = None

    def level(self, organization_id: uuid.UUID | None) -> int:
        if organization_id is None:
            return 0
        return self.levels.get(organization_id, 0)

    def organizations(self, minimum: int = READ) -> list[uuid.UUID]:
        return [org for org, level in self.levels.items() if level >= minimum]

    @property
    def actor(self) -> audit.Actor:
        return audit.Actor("user" if self.kind == "user" else "api_key", self.id, self.label)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def normalize_email(email: str) -> str:
    text = email.strip().lower()
    if (
        "\x00" in text
        or "@" not in text
        or len(text) > 254
        or text.startswith("@")
        or text.endswith("@")
    ):
        raise ValueError("not an email address")
    return text


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise ValueError(f"password must have at least {MIN_PASSWORD} characters")
    if len(password) > 1024:
        raise ValueError("password must have at most 1024 characters")
    if "\x00" in password:
        raise ValueError("password must not contain NUL characters")


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


# --- TOTP (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits) -------------------

TOTP_STEP = 30
TOTP_DIGITS = 6


def new_totp_secret() -> str:
    return base64.b32encode(os.urandom(20)).decode("ascii")


def totp_code(secret: str, at: float | None = None) -> str:
    counter = int((time.time() if at is None else at) // TOTP_STEP)
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    number = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFF_FFFF
    return str(number % 10**TOTP_DIGITS).zfill(TOTP_DIGITS)


def totp_step(secret: str, code: str, at: float | None = None) -> int | None:
    """The time step whose code this is: this step or one on either side (clock skew).

    None when the code matches none. Callers refuse a step at or before the
    last one accepted (`use_totp_step`), so a code works once.
    """
    now = time.time() if at is None else at
    code = code.strip().replace(" ", "")
    if not (code.isascii() and code.isdigit()):
        return None
    for drift in (-1, 0, 1):
        moment = now + drift * TOTP_STEP
        if hmac.compare_digest(totp_code(secret, moment), code):
            return int(moment // TOTP_STEP)
    return None


def check_totp(secret: str, code: str, at: float | None = None) -> bool:
    return totp_step(secret, code, at) is not None


async def use_totp_step(conn: AsyncConnection, user_id: uuid.UUID, step: int) -> bool:
    """Records `step` as used; False when it (or a later one) was used already."""
    u = t.users
    done = await conn.execute(
        sa.update(u)
        .where(
            u.c.id == user_id,
            sa.or_(u.c.totp_last_step.is_(None), u.c.totp_last_step < step),
        )
        .values(totp_last_step=step)
    )
    return bool(done.rowcount)


def totp_uri(secret: str, email: str, issuer: str = "Nubes") -> str:
    return f"otpauth://totp/{issuer}:{email}?secret={secret}&issuer={issuer}"


# --- users ------------------------------------------------------------------


async def create_user(
    engine: AsyncEngine,
    *,
    email: str,
    password: str,
    organization: str = DEFAULT_ORGANIZATION,
    role: str = "member",
    actor: audit.Actor = audit.SYSTEM,
) -> dict[str, Any]:
    """Creates a user and makes it a member of `organization` (created if new)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    email = normalize_email(email)
    check_password_strength(password)
    password_hash = await hash_password(password)
    now = datetime.now(UTC)
    user_id = uuid.uuid4()
    try:
        async with engine.begin() as conn:
            organization_id = await ensure_organization(conn, organization)
            await ensure_group(conn, organization_id, DEFAULT_GROUP)
            await conn.execute(
                sa.insert(t.users).values(
                    id=user_id,
                    email=email,
                    password_hash=password_hash,
                    created_at=now,
                    updated_at=now,
                )
            )
            await conn.execute(
                sa.insert(t.memberships).values(
                    user_id=user_id, organization_id=organization_id, role=role, created_at=now
                )
            )
            await audit.record(
                conn, actor, organization_id, "member.add", "user", user_id, {"role": role}
            )
    except IntegrityError as err:
        raise StoreError(f"a user with email {email} exists") from err
    return {"id": user_id, "email": email, "organization_id": organization_id, "role": role}


async def bootstrap_admin(engine: AsyncEngine) -> str | None:
    """On an empty database: organization and group `default`, user admin@localhost.

    Returns the generated password (to be printed once), or None when users
    exist already. Safe to call from several processes at once: the unique
    email lets only one of them create the user.
    """
    async with engine.connect() as conn:
        if (await conn.execute(sa.select(t.users.c.id).limit(1))).first() is not None:
            return None
    password = secrets.token_urlsafe(12)
    try:
        await create_user(engine, email=BOOTSTRAP_EMAIL, password=password, role="owner")
    except StoreError:
        return None
    return password


async def user_levels(conn: AsyncConnection, user_id: uuid.UUID) -> dict[uuid.UUID, int]:
    m = t.memberships
    rows = await conn.execute(
        sa.select(m.c.organization_id, m.c.role).where(m.c.user_id == user_id)
    )
    return {row.organization_id: ROLE_LEVEL.get(row.role, 0) for row in rows}


# --- sign-in tokens -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginResult:
    ok: bool
    reason: str = ""  # bad_credentials | totp_required | bad_totp | disabled
    token: str | None = None
    expires_in: int = 0
    user_id: uuid.UUID | None = None


async def login(
    engine: AsyncEngine, email: str, password: str, totp: str | None, ttl_seconds: int
) -> LoginResult:
    try:
        email = normalize_email(email)
    except ValueError:
        email = ""
    u = t.users
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(u).where(u.c.email == email))).mappings().first()
    if not await verify_password(None if row is None else row["password_hash"], password):
        return LoginResult(False, "bad_credentials")
    assert row is not None
    if row["disabled"]:
        return LoginResult(False, "bad_credentials")
    step = None
    if row["totp_enabled"]:
        if not totp:
            return LoginResult(False, "totp_required", user_id=row["id"])
        step = totp_step(row["totp_secret"], totp)
        if step is None:
            return LoginResult(False, "bad_totp", user_id=row["id"])
    token = new_secret(TOKEN_PREFIX)
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        if step is not None and not await use_totp_step(conn, row["id"], step):
            return LoginResult(False, "bad_totp", user_id=row["id"])
        await conn.execute(
            sa.insert(t.access_tokens).values(
                id=uuid.uuid4(),
                user_id=row["id"],
                secret_hash=digest(token),
                created_at=now,
                expires_at=now + timedelta(seconds=ttl_seconds),
            )
        )
        await conn.execute(sa.update(u).where(u.c.id == row["id"]).values(last_login_at=now))
    return LoginResult(True, token=token, expires_in=ttl_seconds, user_id=row["id"])


async def revoke_token(engine: AsyncEngine, token_id: uuid.UUID) -> None:
    a = t.access_tokens
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(a).where(a.c.id == token_id).values(revoked_at=datetime.now(UTC))
        )


# --- API keys ---------------------------------------------------------------


async def create_api_key(
    engine: AsyncEngine,
    *,
    organization_id: uuid.UUID | None = None,
    organization: str = DEFAULT_ORGANIZATION,
    scope: str = "read",
    name: str = "",
    actor: audit.Actor = audit.SYSTEM,
) -> dict[str, Any]:
    """Creates a key; the returned `key` is the only time the secret is seen."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    key = new_secret(API_KEY_PREFIX)
    key_id = uuid.uuid4()
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        if organization_id is None:
            organization_id = await ensure_organization(conn, organization)
            await ensure_group(conn, organization_id, DEFAULT_GROUP)
        row = {
            "id": key_id,
            "organization_id": organization_id,
            "name": name or f"{scope} key",
            "prefix": key[:VISIBLE_PREFIX],
            "secret_hash": digest(key),
            "scope": scope,
            "created_by": actor.id if actor.type == "user" else None,
            "created_at": now,
        }
        await conn.execute(sa.insert(t.api_keys).values(**row))
        await audit.record(
            conn, actor, organization_id, "api_key.create", "api_key", key_id, {"scope": scope}
        )
    public = {k: v for k, v in row.items() if k != "secret_hash"}
    return {**public, "key": key, "last_used_at": None, "revoked_at": None}


async def revoke_api_key(
    engine: AsyncEngine, organization_id: uuid.UUID, key_id: uuid.UUID, actor: audit.Actor
) -> None:
    k = t.api_keys
    async with engine.begin() as conn:
        done = await conn.execute(
            sa.update(k)
            .where(k.c.id == key_id, k.c.organization_id == organization_id)
            .values(revoked_at=sa.func.coalesce(k.c.revoked_at, datetime.now(UTC)))
        )
        if done.rowcount == 0:
            raise NotFound("API key not found")
        await audit.record(conn, actor, organization_id, "api_key.revoke", "api_key", key_id)


# --- resolving a credential ---------------------------------------------------


async def resolve(engine: AsyncEngine, credential: str) -> Principal | None:
    """The principal behind an access token or an API key; None when invalid."""
    if not credential or len(credential) > 200:
        return None
    hashed = digest(credential)
    now = datetime.now(UTC)
    async with engine.connect() as conn:
        if credential.startswith(API_KEY_PREFIX):
            return await _key_principal(conn, hashed, now)
        return await _token_principal(conn, hashed, now)


async def _key_principal(conn: AsyncConnection, hashed: str, now: datetime) -> Principal | None:
    k = t.api_keys
    row = (
        await conn.execute(
            sa.select(k.c.id, k.c.organization_id, k.c.scope, k.c.prefix, k.c.name).where(
                k.c.secret_hash == hashed, k.c.revoked_at.is_(None)
            )
        )
    ).first()
    if row is None:
        return None
    level = SCOPE_LEVEL.get(row.scope, 0)
    return Principal("api_key", row.id, f"{row.name} ({row.prefix}…)", {row.organization_id: level})


async def _token_principal(conn: AsyncConnection, hashed: str, now: datetime) -> Principal | None:
    a, u = t.access_tokens, t.users
    row = (
        await conn.execute(
            sa.select(a.c.id, a.c.user_id, a.c.expires_at, u.c.email, u.c.disabled)
            .join(u, u.c.id == a.c.user_id)
            .where(a.c.secret_hash == hashed, a.c.revoked_at.is_(None))
        )
    ).first()
    if row is None or row.expires_at <= now or row.disabled:
        return None
    levels = await user_levels(conn, row.user_id)
    return Principal("user", row.user_id, row.email, levels, token_id=row.id)


async def touch_api_key(engine: AsyncEngine, key_id: uuid.UUID) -> None:
    """Records a key's use (at most about once a minute per key: callers throttle)."""
    k = t.api_keys
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(k).where(k.c.id == key_id).values(last_used_at=datetime.now(UTC))
        )
