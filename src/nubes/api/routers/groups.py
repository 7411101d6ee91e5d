"""Groups: list, create, show, rename, delete.

HARDWARIO v1 scripts use `GET /v1/groups?organization_id=…` and
`PUT /v1/group/{id}`; both work, beside the plural `/v1/groups/{id}` forms.
A group that still has devices cannot be deleted (409).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from nubes.api.deps import READ, WRITE, ContextDep, Principal, PrincipalDep, require_level
from nubes.api.errors import ErrorResponse, not_found
from nubes.api.paging import TOTAL_HEADER, Limit, Offset, SortOrder, set_total
from nubes.api.routers.organizations import organization_for
from nubes.services import groups as service

router = APIRouter(tags=["groups"])

GroupId = Annotated[uuid.UUID, Path(description="The group's id")]
GroupName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
NAME_TAKEN: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorResponse, "description": "The name is taken"}
}


class Group(BaseModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    created_at: datetime
    updated_at: datetime | None
    device_count: int = Field(description="Devices in the group (deleted ones not counted)")


class GroupCreate(BaseModel):
    organization_id: uuid.UUID | None = Field(
        default=None, description="Needed when you belong to several organizations"
    )
    name: GroupName


class GroupUpdate(BaseModel):
    name: GroupName


async def visible_group(
    ctx: ContextDep, principal: Principal, group_id: uuid.UUID, minimum: int
) -> dict[str, Any]:
    """The group, when the caller's level in its organization reaches `minimum`."""
    async with ctx.engine.connect() as conn:
        row = await service.find_group(conn, group_id)
    if row is None:
        raise not_found("group")
    require_level(principal, row["organization_id"], minimum, "group")
    return row


@router.get(
    "/v1/groups",
    summary="List groups of your organizations",
    response_model=list[Group],
    responses={200: {"headers": TOTAL_HEADER}},
)
async def list_groups(
    principal: PrincipalDep,
    ctx: ContextDep,
    response: Response,
    organization_id: Annotated[
        uuid.UUID | None, Query(description="Only this organization")
    ] = None,
    sort_field: Annotated[
        Literal["name", "created_at"], Query(description="Order by this field")
    ] = "name",
    sort_order: SortOrder = "asc",
    offset: Offset = 0,
    limit: Limit = 100,
) -> list[Group]:
    organizations = principal.organizations(READ)
    if organization_id is not None:
        require_level(principal, organization_id, READ, "organization")
        organizations = [organization_id]
    total, rows = await service.list_groups(
        ctx.engine,
        organizations,
        sort_field=sort_field,
        descending=sort_order == "desc",
        offset=offset,
        limit=limit,
    )
    set_total(response, total)
    return [Group.model_validate(row) for row in rows]


@router.post(
    "/v1/groups",
    status_code=201,
    summary="Create a group (write access)",
    response_model=Group,
    responses=NAME_TAKEN,
)
async def create_group(body: GroupCreate, principal: PrincipalDep, ctx: ContextDep) -> Group:
    organization_id = organization_for(principal, body.organization_id, WRITE)
    row = await service.create_group(ctx.engine, organization_id, body.name, principal.actor)
    return Group.model_validate(row)


@router.get("/v1/groups/{group_id}", summary="Show a group", response_model=Group)
@router.get("/v1/group/{group_id}", summary="Show a group (v1 path)", response_model=Group)
async def get_group(group_id: GroupId, principal: PrincipalDep, ctx: ContextDep) -> Group:
    return Group.model_validate(await visible_group(ctx, principal, group_id, READ))


async def _rename(
    group_id: uuid.UUID, body: GroupUpdate, principal: Principal, ctx: ContextDep
) -> Group:
    group = await visible_group(ctx, principal, group_id, WRITE)
    row = await service.rename_group(ctx.engine, group, body.name, principal.actor)
    return Group.model_validate(row)


@router.put(
    "/v1/groups/{group_id}",
    summary="Rename a group (write access)",
    response_model=Group,
    responses=NAME_TAKEN,
)
@router.put(
    "/v1/group/{group_id}",
    summary="Rename a group (v1 path; write access)",
    response_model=Group,
    responses=NAME_TAKEN,
)
async def put_group(
    group_id: GroupId, body: GroupUpdate, principal: PrincipalDep, ctx: ContextDep
) -> Group:
    return await _rename(group_id, body, principal, ctx)


@router.patch(
    "/v1/groups/{group_id}",
    summary="Rename a group (write access)",
    response_model=Group,
    responses=NAME_TAKEN,
)
async def patch_group(
    group_id: GroupId, body: GroupUpdate, principal: PrincipalDep, ctx: ContextDep
) -> Group:
    return await _rename(group_id, body, principal, ctx)


@router.delete(
    "/v1/groups/{group_id}",
    status_code=204,
    summary="Delete an empty group (write access)",
    response_class=Response,
    responses={409: {"model": ErrorResponse, "description": "The group has devices"}},
)
@router.delete(
    "/v1/group/{group_id}",
    status_code=204,
    summary="Delete an empty group (v1 path; write access)",
    response_class=Response,
    responses={409: {"model": ErrorResponse, "description": "The group has devices"}},
)
async def delete_group(group_id: GroupId, principal: PrincipalDep, ctx: ContextDep) -> Response:
    group = await visible_group(ctx, principal, group_id, WRITE)
    await service.delete_group(ctx.engine, group, principal.actor)
    return Response(status_code=204)
