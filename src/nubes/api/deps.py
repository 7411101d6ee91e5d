"""Dependencies of the routes: the context, the caller, tenant checks.

Credentials: `Authorization: Bearer <access token or API key>` or
`X-API-Key: <key>`. Tenancy: a caller sees only the organizations it belongs
to (a user through memberships, a key through its one organization). An
object of another organization answers 404, exactly like a missing one, so
ids of other tenants cannot even be confirmed; a known object the caller may
read but not change answers 403.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncEngine

from nubes.api import ratelimit
from nubes.api.context import ApiContext
from nubes.api.errors import ApiError, forbidden, not_found
from nubes.services import auth
from nubes.services.auth import ADMIN, OWNER, READ, WRITE, Principal

__all__ = [
    "ADMIN",
    "OWNER",
    "READ",
    "WRITE",
    "ContextDep",
    "EngineDep",
    "Principal",
    "PrincipalDep",
    "require_level",
    "source_of",
]

_bearer = HTTPBearer(auto_error=False, description="An access token (sign-in) or an API key")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key")

# Recording `last_used_at` on every request would write on every read.
_KEY_TOUCH_SECONDS = 60.0
_key_touched: dict[uuid.UUID, float] = {}


def get_context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[ApiContext, Depends(get_context)]


def get_engine(ctx: ContextDep) -> AsyncEngine:
    return ctx.engine


EngineDep = Annotated[AsyncEngine, Depends(get_engine)]


def source_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(
    request: Request,
    ctx: ContextDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Principal:
    credential = bearer.credentials if bearer is not None else api_key
    if not credential:
        raise _unauthorized("credentials required: Authorization: Bearer <token> or X-API-Key")
    source = source_of(request)
    await ratelimit.check(ctx.cache, source)
    principal = await auth.resolve(ctx.engine, credential.strip())
    if principal is None:
        await ratelimit.failed(ctx.cache, source)
        raise _unauthorized("invalid, expired or revoked credentials")
    if principal.kind == "api_key":
        await _touch_key(ctx, principal.id)
    return principal


async def _touch_key(ctx: ApiContext, key_id: uuid.UUID) -> None:
    now = time.monotonic()
    if now - _key_touched.get(key_id, -_KEY_TOUCH_SECONDS) < _KEY_TOUCH_SECONDS:
        return
    if len(_key_touched) > 10_000:
        _key_touched.clear()
    _key_touched[key_id] = now
    await auth.touch_api_key(ctx.engine, key_id)


PrincipalDep = Annotated[Principal, Depends(authenticate)]


def require_level(
    principal: Principal, organization_id: uuid.UUID | None, minimum: int, what: str = "object"
) -> None:
    """404 when the caller does not belong to the organization, 403 when too weak."""
    level = principal.level(organization_id)
    if level == 0:
        raise not_found(what)
    if level < minimum:
        needed = {READ: "read", WRITE: "write", ADMIN: "admin", OWNER: "owner"}[minimum]
        raise forbidden(f"this needs {needed} access to the organization")
