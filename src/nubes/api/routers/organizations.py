"""Organizations, their members and their audit log.

`GET /v1/organizations` lists the caller's organizations (v1 shape: `id`,
`name`, `created_at`); one organization also shows its
`message_retention_days`. A signed-in user creates organizations and becomes
their owner; API keys belong to one organization and cannot. Renaming and
changing the retention need admin access, as do members and the audit log;
only owners grant or take away `owner`, and the last owner stays (409).

Adding a member names an existing user by email; with a `password` too, a
user who does not exist yet is created (the password of an existing user is
never changed this way).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from nubes.api.deps import ADMIN, OWNER, READ, ContextDep, Principal, PrincipalDep, require_level
from nubes.api.errors import ApiError, ErrorResponse, forbidden, not_found
from nubes.api.paging import TOTAL_HEADER, Limit, Offset, SortOrder, set_total
from nubes.services import organizations as service
from nubes.services.organizations import AuditFilter, Page

router = APIRouter(tags=["organizations"])

TEXT_PATTERN = r"^[^\x00]*$"
Role = Literal["owner", "admin", "member", "viewer"]
OrganizationId = Annotated[uuid.UUID, Path(description="The organization's id")]
UserId = Annotated[uuid.UUID, Path(description="The member's user id")]
OrganizationName = Annotated[str, Field(min_length=1, max_length=200, pattern=TEXT_PATTERN)]
RetentionDays = Annotated[
    int,
    Field(
        strict=True,
        ge=1,
        le=3650,
        description="Messages, their callback deliveries and the communication log "
        "older than this many days are deleted (default 90)",
        examples=[90],
    ),
]


def _conflict(what: str) -> dict[int | str, dict[str, Any]]:
    return {409: {"model": ErrorResponse, "description": what}}


class Organization(BaseModel):
    id: uuid.UUID
    name: str
    created_at: datetime


class OrganizationDetail(Organization):
    message_retention_days: RetentionDays


class OrganizationCreate(BaseModel):
    name: OrganizationName


class OrganizationUpdate(BaseModel):
    name: OrganizationName
    message_retention_days: RetentionDays | None = None


class OrganizationPatch(BaseModel):
    """The fields to change; those left out (or null) stay as they are."""

    name: OrganizationName | None = None
    message_retention_days: RetentionDays | None = None


class Member(BaseModel):
    id: uuid.UUID = Field(description="The user's id")
    email: str
    role: Role
    created_at: datetime = Field(description="When the user joined the organization")


class MemberCreate(BaseModel):
    email: str = Field(
        min_length=3,
        max_length=254,
        pattern=r"^[^\s\x00@]+@[^\s\x00@]+$",
        examples=["ada@example.com"],
    )
    role: Role = "member"
    password: str | None = Field(
        default=None,
        min_length=8,
        max_length=1024,
        description="Creates the user when no user has this email yet",
    )


class MemberUpdate(BaseModel):
    role: Role


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor_type: Literal["user", "api_key", "system"]
    actor_id: uuid.UUID | None
    actor_label: str
    action: str = Field(examples=["device.update"])
    object_type: str
    object_id: str | None
    details: dict[str, Any] | None = Field(description="What changed; never a secret's value")


def organization_for(
    principal: Principal, organization_id: uuid.UUID | None, minimum: int
) -> uuid.UUID:
    """The organization named, or the caller's only one; checked against `minimum`."""
    if organization_id is None:
        candidates = principal.organizations(READ)
        if len(candidates) != 1:
            raise ApiError(
                422,
                "organization_required",
                "name the organization with organization_id (you belong to "
                f"{len(candidates)} organizations)",
            )
        organization_id = candidates[0]
    require_level(principal, organization_id, minimum, "organization")
    return organization_id


@router.get(
    "/v1/organizations",
    summary="List your organizations",
    response_model=list[Organization],
    responses={200: {"headers": TOTAL_HEADER}},
)
async def list_organizations(
    principal: PrincipalDep,
    ctx: ContextDep,
    response: Response,
    sort_field: Annotated[
        Literal["name", "created_at"], Query(description="Order by this field")
    ] = "name",
    sort_order: SortOrder = "asc",
    offset: Offset = 0,
    limit: Limit = 100,
) -> list[Organization]:
    page = Page(sort_field, sort_order == "desc", offset, limit)
    total, rows = await service.list_organizations(ctx.engine, principal.organizations(READ), page)
    set_total(response, total)
    return [Organization.model_validate(row) for row in rows]


@router.post(
    "/v1/organizations",
    status_code=201,
    summary="Create an organization (signed-in users; you become its owner)",
    response_model=OrganizationDetail,
    responses=_conflict("The name is taken"),
)
async def create_organization(
    body: OrganizationCreate, principal: PrincipalDep, ctx: ContextDep
) -> OrganizationDetail:
    if principal.kind != "user":
        raise forbidden("only a signed-in user can create organizations, not an API key")
    row = await service.create_organization(ctx.engine, body.name, principal.actor)
    return OrganizationDetail.model_validate(row)


async def _organization(
    ctx: ContextDep, principal: Principal, organization_id: uuid.UUID, minimum: int
) -> dict[str, Any]:
    require_level(principal, organization_id, minimum, "organization")
    async with ctx.engine.connect() as conn:
        row = await service.find_organization(conn, organization_id)
    if row is None:
        raise not_found("organization")
    return row


@router.get(
    "/v1/organizations/{organization_id}",
    summary="Show an organization",
    response_model=OrganizationDetail,
)
@router.get(
    "/v1/organization/{organization_id}",
    summary="Show an organization (v1 path)",
    response_model=OrganizationDetail,
)
async def get_organization(
    organization_id: OrganizationId, principal: PrincipalDep, ctx: ContextDep
) -> OrganizationDetail:
    row = await _organization(ctx, principal, organization_id, READ)
    return OrganizationDetail.model_validate(row)


async def _update(
    organization_id: uuid.UUID,
    body: OrganizationUpdate | OrganizationPatch,
    principal: Principal,
    ctx: ContextDep,
) -> OrganizationDetail:
    await _organization(ctx, principal, organization_id, ADMIN)
    changes = {key: value for key, value in body.model_dump().items() if value is not None}
    row = await service.update_organization(ctx.engine, organization_id, changes, principal.actor)
    return OrganizationDetail.model_validate(row)


@router.put(
    "/v1/organizations/{organization_id}",
    summary="Rename an organization, optionally changing its retention (admin access)",
    response_model=OrganizationDetail,
    responses=_conflict("The name is taken"),
)
@router.put(
    "/v1/organization/{organization_id}",
    summary="Rename an organization (v1 path; admin access)",
    response_model=OrganizationDetail,
    responses=_conflict("The name is taken"),
)
async def put_organization(
    organization_id: OrganizationId,
    body: OrganizationUpdate,
    principal: PrincipalDep,
    ctx: ContextDep,
) -> OrganizationDetail:
    return await _update(organization_id, body, principal, ctx)


@router.patch(
    "/v1/organizations/{organization_id}",
    summary="Rename an organization or change its message retention (admin access)",
    response_model=OrganizationDetail,
    responses=_conflict("The name is taken"),
)
async def patch_organization(
    organization_id: OrganizationId,
    body: OrganizationPatch,
    principal: PrincipalDep,
    ctx: ContextDep,
) -> OrganizationDetail:
    return await _update(organization_id, body, principal, ctx)


# --- members ----------------------------------------------------------------------


@router.get(
    "/v1/organizations/{organization_id}/members",
    summary="List the members of an organization",
    response_model=list[Member],
    responses={200: {"headers": TOTAL_HEADER}},
)
async def list_members(
    organization_id: OrganizationId,
    principal: PrincipalDep,
    ctx: ContextDep,
    response: Response,
    sort_field: Annotated[
        Literal["email", "role", "created_at"], Query(description="Order by this field")
    ] = "email",
    sort_order: SortOrder = "asc",
    offset: Offset = 0,
    limit: Limit = 100,
) -> list[Member]:
    require_level(principal, organization_id, READ, "organization")
    page = Page(sort_field, sort_order == "desc", offset, limit)
    total, rows = await service.list_members(ctx.engine, organization_id, page)
    set_total(response, total)
    return [Member.model_validate(row) for row in rows]


@router.post(
    "/v1/organizations/{organization_id}/members",
    status_code=201,
    summary="Add a member (admin access; owners only for the owner role)",
    response_model=Member,
    responses=_conflict("The user is a member already"),
)
async def add_member(
    organization_id: OrganizationId, body: MemberCreate, principal: PrincipalDep, ctx: ContextDep
) -> Member:
    minimum = OWNER if body.role == "owner" else ADMIN
    require_level(principal, organization_id, minimum, "organization")
    try:
        row = await service.add_member(
            ctx.engine,
            organization_id,
            email=body.email,
            role=body.role,
            password=body.password,
            actor=principal.actor,
            visible=principal.organizations(ADMIN),
        )
    except ValueError as err:
        raise ApiError(422, "validation_error", str(err)) from err
    return Member.model_validate(row)


async def _member(
    ctx: ContextDep, organization_id: uuid.UUID, user_id: uuid.UUID
) -> dict[str, Any]:
    async with ctx.engine.connect() as conn:
        row = await service.find_member(conn, organization_id, user_id)
    if row is None:
        raise not_found("member")
    return row


async def _set_role(
    organization_id: uuid.UUID,
    user_id: uuid.UUID,
    body: MemberUpdate,
    principal: Principal,
    ctx: ContextDep,
) -> Member:
    require_level(principal, organization_id, ADMIN, "organization")
    row = await service.set_role(
        ctx.engine,
        organization_id,
        user_id,
        body.role,
        principal.actor,
        caller_is_owner=principal.level(organization_id) >= OWNER,
    )
    return Member.model_validate(row)


@router.put(
    "/v1/organizations/{organization_id}/members/{user_id}",
    summary="Change a member's role (admin access; owners only around `owner`)",
    response_model=Member,
    responses=_conflict("The last owner cannot be demoted"),
)
async def put_member(
    organization_id: OrganizationId,
    user_id: UserId,
    body: MemberUpdate,
    principal: PrincipalDep,
    ctx: ContextDep,
) -> Member:
    return await _set_role(organization_id, user_id, body, principal, ctx)


@router.patch(
    "/v1/organizations/{organization_id}/members/{user_id}",
    summary="Change a member's role (admin access; owners only around `owner`)",
    response_model=Member,
    responses=_conflict("The last owner cannot be demoted"),
)
async def patch_member(
    organization_id: OrganizationId,
    user_id: UserId,
    body: MemberUpdate,
    principal: PrincipalDep,
    ctx: ContextDep,
) -> Member:
    return await _set_role(organization_id, user_id, body, principal, ctx)


@router.delete(
    "/v1/organizations/{organization_id}/members/{user_id}",
    status_code=204,
    summary="Remove a member (admin access; owners only for owners)",
    response_class=Response,
    responses=_conflict("The last owner cannot be removed"),
)
async def remove_member(
    organization_id: OrganizationId, user_id: UserId, principal: PrincipalDep, ctx: ContextDep
) -> Response:
    require_level(principal, organization_id, ADMIN, "organization")
    await service.remove_member(
        ctx.engine,
        organization_id,
        user_id,
        principal.actor,
        caller_is_owner=principal.level(organization_id) >= OWNER,
    )
    return Response(status_code=204)


# --- the audit log ----------------------------------------------------------------


def _utc(name: str, value: datetime | None) -> datetime | None:
    """The time in UTC; 422 for times that UTC cannot hold (year 1 with an offset, ...)."""
    if value is None:
        return None
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        message = f"{name}: {value.isoformat()} is out of range in UTC"
        details = [{"loc": ["query", name], "msg": message, "type": "value_error"}]
        raise ApiError(422, "validation_error", message, details) from None


@router.get(
    "/v1/organizations/{organization_id}/audit",
    summary="Who changed what in the organization, newest first (admin access)",
    response_model=list[AuditEntry],
    responses={200: {"headers": TOTAL_HEADER}},
)
async def audit_log(
    organization_id: OrganizationId,
    principal: PrincipalDep,
    ctx: ContextDep,
    response: Response,
    since: Annotated[
        datetime | None,
        Query(description="From this time on (ISO 8601, or Unix seconds or milliseconds)"),
    ] = None,
    before: Annotated[datetime | None, Query(description="Before this time")] = None,
    action: Annotated[
        str | None,
        Query(
            max_length=64,
            pattern=TEXT_PATTERN,
            description="An action (`device.update`) or a family of them (`device`)",
        ),
    ] = None,
    sort_field: Annotated[Literal["at"], Query(description="Order by this field")] = "at",
    sort_order: SortOrder = "desc",
    offset: Offset = 0,
    limit: Limit = 100,
) -> list[AuditEntry]:
    require_level(principal, organization_id, ADMIN, "organization")
    where = AuditFilter(_utc("since", since), _utc("before", before), action)
    page = Page(sort_field, sort_order == "desc", offset, limit)
    total, rows = await service.audit_entries(ctx.engine, organization_id, where, page)
    set_total(response, total)
    return [AuditEntry.model_validate(row) for row in rows]
