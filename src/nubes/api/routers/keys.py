"""API keys of an organization: list, create (the key is shown once), revoke.

Managing keys needs admin access to the organization: an admin user, or an
admin key (an owner who made an admin key meant it to administer; revoking
it does not revoke keys it made, which the audit log lists). No key gives
more than admin: the scopes are read, write and admin.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from nubes.api.deps import ADMIN, ContextDep, PrincipalDep, require_level
from nubes.api.errors import not_found
from nubes.api.paging import TOTAL_HEADER, ByCreation, Limit, Offset, SortOrder, set_total
from nubes.api.params import ApiKeyIdPath, OrganizationIdPath
from nubes.services import auth
from nubes.store import tables as t

router = APIRouter(tags=["api keys"])


class ApiKey(BaseModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    prefix: str = Field(description="The visible start of the key, to recognise it")
    scope: Literal["read", "write", "admin"]
    created_by: uuid.UUID | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewApiKey(ApiKey):
    key: str = Field(description="The key itself: shown this once, never again")


class ApiKeyCreate(BaseModel):
    name: str = Field(default="", max_length=100, pattern=r"^[^\x00]*$")
    scope: Literal["read", "write", "admin"] = "read"


_PUBLIC = [c for c in t.api_keys.c if c.name != "secret_hash"]


@router.get(
    "/v1/organizations/{organization_id}/api-keys",
    summary="The organization's API keys (without the secrets)",
    response_model=list[ApiKey],
    responses={200: {"headers": TOTAL_HEADER}},
)
async def list_keys(
    organization_id: OrganizationIdPath,
    principal: PrincipalDep,
    ctx: ContextDep,
    response: Response,
    offset: Offset = 0,
    limit: Limit = 100,
    sort_field: ByCreation = "created_at",
    sort_order: SortOrder = "desc",
) -> list[ApiKey]:
    require_level(principal, organization_id, ADMIN, "organization")
    k = t.api_keys
    where = k.c.organization_id == organization_id
    async with ctx.engine.connect() as conn:
        total = (
            await conn.execute(sa.select(sa.func.count()).select_from(k).where(where))
        ).scalar()
        rows = await conn.execute(
            sa.select(*_PUBLIC)
            .where(where)
            .order_by(
                *(
                    (k.c.created_at.desc(), k.c.id.desc())
                    if sort_order == "desc"
                    else (k.c.created_at, k.c.id)
                )
            )
            .offset(offset)
            .limit(limit)
        )
        keys = [ApiKey.model_validate(dict(row)) for row in rows.mappings()]
    set_total(response, int(total or 0))
    return keys


@router.post(
    "/v1/organizations/{organization_id}/api-keys",
    status_code=201,
    summary="Create an API key; the answer holds the key, shown only this once",
    response_model=NewApiKey,
)
async def create_key(
    organization_id: OrganizationIdPath,
    body: ApiKeyCreate,
    principal: PrincipalDep,
    ctx: ContextDep,
) -> NewApiKey:
    require_level(principal, organization_id, ADMIN, "organization")
    created = await auth.create_api_key(
        ctx.engine,
        organization_id=organization_id,
        scope=body.scope,
        name=body.name,
        actor=principal.actor,
    )
    return NewApiKey.model_validate(created)


@router.delete(
    "/v1/api-keys/{key_id}",
    status_code=204,
    summary="Revoke an API key (it stops working at once)",
    response_class=Response,
)
async def revoke_key(key_id: ApiKeyIdPath, principal: PrincipalDep, ctx: ContextDep) -> Response:
    k = t.api_keys
    async with ctx.engine.connect() as conn:
        organization_id = (
            await conn.execute(sa.select(k.c.organization_id).where(k.c.id == key_id))
        ).scalar()
    if organization_id is None:
        raise not_found("API key")
    require_level(principal, organization_id, ADMIN, "API key")
    await auth.revoke_api_key(ctx.engine, organization_id, key_id, principal.actor)
    return Response(status_code=204)
