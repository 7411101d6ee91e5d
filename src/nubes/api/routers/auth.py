"""Signing in and out, the caller's identity, and the second factor (TOTP).

`POST /v1/auth/login` answers an opaque access token (OAuth2-style body).
With TOTP enabled, the same request must carry `totp`; without it the answer
is 401 with code `totp_required`, which tells a client to ask for the code
and send the request again. Failures count toward the rate limit of the
source address and of the account.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

import sqlalchemy as sa
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from nubes.api import ratelimit
from nubes.api.deps import ContextDep, PrincipalDep, source_of
from nubes.api.errors import ApiError
from nubes.services import audit, auth
from nubes.store import tables as t

router = APIRouter(prefix="/v1/auth", tags=["auth"])

# No NUL characters (PostgreSQL refuses them in text); TOTP codes are digits.
TEXT = r"^[^\x00]*$"
TOTP = r"^[0-9 ]{6,12}$"


class LoginRequest(BaseModel):
    email: str = Field(max_length=254, pattern=TEXT, examples=["admin@localhost"])
    password: str = Field(max_length=1024, pattern=TEXT)
    totp: str | None = Field(
        default=None, pattern=TOTP, description="The current code, when TOTP is enabled"
    )


class LoginResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the token expires")


class Membership(BaseModel):
    organization_id: uuid.UUID
    organization_name: str
    role: str


class Me(BaseModel):
    kind: Literal["user", "api_key"]
    id: uuid.UUID
    email: str | None = None
    label: str
    totp_enabled: bool = False
    organizations: list[Membership]


class TotpSetup(BaseModel):
    secret: str = Field(description="Base32 secret for the authenticator app")
    uri: str = Field(description="otpauth:// URI (show it as a QR code)")


class TotpCode(BaseModel):
    code: str = Field(pattern=TOTP, description="The code the authenticator shows now")


class PasswordChange(BaseModel):
    current_password: str = Field(max_length=1024, pattern=TEXT)
    new_password: str = Field(min_length=auth.MIN_PASSWORD, max_length=1024, pattern=TEXT)


class TotpDisable(BaseModel):
    password: str = Field(max_length=1024, pattern=TEXT)
    code: str = Field(pattern=TOTP, description="The code the authenticator shows now")


@router.post(
    "/login",
    summary="Sign in with email and password (and a TOTP code when enabled)",
    response_model=LoginResponse,
)
async def login(body: LoginRequest, request: Request, ctx: ContextDep) -> LoginResponse:
    source = source_of(request)
    await ratelimit.attempt(ctx.cache, source, body.email)
    result = await auth.login(
        ctx.engine, body.email, body.password, body.totp, ctx.settings.access_token_ttl_seconds
    )
    if result.ok and result.token is not None:
        await ratelimit.succeeded(ctx.cache, source, body.email)
        return LoginResponse(access_token=result.token, expires_in=result.expires_in)
    if result.reason == "totp_required":
        # The password was right: not a failed guess.
        await ratelimit.succeeded(ctx.cache, source, body.email)
        raise ApiError(401, "totp_required", "this account needs a TOTP code: send `totp` too")
    if result.reason == "bad_totp":
        raise ApiError(401, "bad_totp", "wrong or expired TOTP code")
    raise ApiError(401, "bad_credentials", "wrong email or password")


@router.post(
    "/logout",
    status_code=204,
    summary="Revoke the access token of this request",
    response_class=Response,
)
async def logout(principal: PrincipalDep, ctx: ContextDep) -> Response:
    if principal.token_id is None:
        raise ApiError(400, "bad_request", "API keys are revoked through /v1/api-keys, not logout")
    await auth.revoke_token(ctx.engine, principal.token_id)
    return Response(status_code=204)


@router.post(
    "/password",
    status_code=204,
    summary="Change your password; your other sign-in tokens are revoked",
    response_class=Response,
)
async def change_password(
    body: PasswordChange, principal: PrincipalDep, ctx: ContextDep, request: Request
) -> Response:
    user_id = _user_only(principal)
    source = source_of(request)
    await ratelimit.attempt(ctx.cache, source, principal.label)
    u, a = t.users, t.access_tokens
    async with ctx.engine.connect() as conn:
        password_hash = (
            await conn.execute(sa.select(u.c.password_hash).where(u.c.id == user_id))
        ).scalar()
    if not await auth.verify_password(password_hash, body.current_password):
        raise ApiError(400, "bad_credentials", "wrong current password")
    new_hash = await auth.hash_password(body.new_password)
    now = datetime.now(UTC)
    async with ctx.engine.begin() as conn:
        await conn.execute(
            sa.update(u).where(u.c.id == user_id).values(password_hash=new_hash, updated_at=now)
        )
        await conn.execute(
            sa.update(a)
            .where(a.c.user_id == user_id, a.c.id != principal.token_id, a.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        for organization_id in principal.levels:
            await audit.record(
                conn, principal.actor, organization_id, "user.password_change", "user", user_id
            )
    await ratelimit.succeeded(ctx.cache, source, principal.label)
    return Response(status_code=204)


@router.get("/me", summary="Who the credentials belong to", response_model=Me)
async def me(principal: PrincipalDep, ctx: ContextDep) -> Me:
    o = t.organizations
    ids = list(principal.levels)
    async with ctx.engine.connect() as conn:
        names = {
            row.id: row.name
            for row in await conn.execute(sa.select(o.c.id, o.c.name).where(o.c.id.in_(ids)))
        }
        totp_enabled = False
        if principal.kind == "user":
            u = t.users
            query = sa.select(u.c.totp_enabled).where(u.c.id == principal.id)
            totp_enabled = bool((await conn.execute(query)).scalar())
    roles = {level: role for role, level in auth.ROLE_LEVEL.items()}
    memberships = [
        Membership(organization_id=org, organization_name=names.get(org, ""), role=roles[level])
        for org, level in principal.levels.items()
    ]
    return Me(
        kind="user" if principal.kind == "user" else "api_key",
        id=principal.id,
        email=principal.label if principal.kind == "user" else None,
        label=principal.label,
        totp_enabled=totp_enabled,
        organizations=sorted(memberships, key=lambda m: m.organization_name),
    )


def _user_only(principal: auth.Principal) -> uuid.UUID:
    if principal.kind != "user":
        raise ApiError(403, "forbidden", "only a signed-in user has a second factor")
    return principal.id


@router.post(
    "/totp/setup",
    summary="Start enabling TOTP: a new secret, confirmed by /totp/enable",
    response_model=TotpSetup,
)
async def totp_setup(principal: PrincipalDep, ctx: ContextDep) -> TotpSetup:
    user_id = _user_only(principal)
    u = t.users
    async with ctx.engine.begin() as conn:
        enabled = (
            await conn.execute(sa.select(u.c.totp_enabled).where(u.c.id == user_id))
        ).scalar()
        if enabled:
            raise ApiError(409, "conflict", "TOTP is enabled already: disable it first")
        secret = auth.new_totp_secret()
        await conn.execute(
            sa.update(u)
            .where(u.c.id == user_id)
            .values(totp_secret=secret, updated_at=datetime.now(UTC))
        )
        for organization_id in principal.levels:
            await audit.record(
                conn, principal.actor, organization_id, "user.totp_setup", "user", user_id
            )
    return TotpSetup(secret=secret, uri=auth.totp_uri(secret, principal.label))


@router.post(
    "/totp/enable",
    status_code=204,
    summary="Enable TOTP by proving the authenticator has the secret",
    response_class=Response,
)
async def totp_enable(
    body: TotpCode, principal: PrincipalDep, ctx: ContextDep, request: Request
) -> Response:
    user_id = _user_only(principal)
    source = source_of(request)
    await ratelimit.attempt(ctx.cache, source, principal.label)
    u = t.users
    async with ctx.engine.begin() as conn:
        secret = (await conn.execute(sa.select(u.c.totp_secret).where(u.c.id == user_id))).scalar()
        if not secret:
            raise ApiError(409, "conflict", "call /v1/auth/totp/setup first")
        step = auth.totp_step(secret, body.code)
        if step is None or not await auth.use_totp_step(conn, user_id, step):
            raise ApiError(400, "bad_totp", "wrong, expired or already used TOTP code")
        await conn.execute(
            sa.update(u)
            .where(u.c.id == user_id)
            .values(totp_enabled=True, updated_at=datetime.now(UTC))
        )
        for organization_id in principal.levels:
            await audit.record(
                conn, principal.actor, organization_id, "user.totp_enable", "user", user_id
            )
    await ratelimit.succeeded(ctx.cache, source, principal.label)
    return Response(status_code=204)


@router.post(
    "/totp/disable",
    status_code=204,
    summary="Disable TOTP (needs the password and a current code)",
    response_class=Response,
)
async def totp_disable(
    body: TotpDisable, principal: PrincipalDep, ctx: ContextDep, request: Request
) -> Response:
    user_id = _user_only(principal)
    source = source_of(request)
    await ratelimit.attempt(ctx.cache, source, principal.label)
    u = t.users
    async with ctx.engine.connect() as conn:
        user = (
            await conn.execute(
                sa.select(u.c.password_hash, u.c.totp_secret, u.c.totp_enabled).where(
                    u.c.id == user_id
                )
            )
        ).one()
    if not await auth.verify_password(user.password_hash, body.password):
        raise ApiError(400, "bad_credentials", "wrong password")
    if not user.totp_enabled:
        raise ApiError(409, "conflict", "TOTP is not enabled")
    step = auth.totp_step(user.totp_secret, body.code)
    async with ctx.engine.begin() as conn:
        if step is None or not await auth.use_totp_step(conn, user_id, step):
            raise ApiError(400, "bad_totp", "wrong, expired or already used TOTP code")
        await conn.execute(
            sa.update(u)
            .where(u.c.id == user_id)
            .values(totp_enabled=False, totp_secret=None, updated_at=datetime.now(UTC))
        )
        for organization_id in principal.levels:
            await audit.record(
                conn, principal.actor, organization_id, "user.totp_disable", "user", user_id
            )
    await ratelimit.succeeded(ctx.cache, source, principal.label)
    return Response(status_code=204)
