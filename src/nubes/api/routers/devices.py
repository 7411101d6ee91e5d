"""Devices: list, add, show, change, delete, and reveal their secrets to admins.

HARDWARIO v1 scripts use `GET /v1/devices?group_id=…` and `PUT /v1/device/{id}`;
both work, beside the plural `/v1/devices/{id}` forms. PUT and PATCH both
change only the fields the body names (v1 scripts send partial PUTs); a
field sent as null is left as it is.

The claim token and the PSK are write-only: no answer carries them except
`POST /v1/devices/{id}/reveal`, which needs admin access and is audited.
Setting them needs admin access too; the Bluetooth passkey is shown to
admins only. Deleting is soft; adding the serial number of a deleted device
again gives a new device (see `nubes.services.devices`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from nubes.api.deps import ADMIN, READ, WRITE, ContextDep, Principal, PrincipalDep, require_level
from nubes.api.errors import ErrorResponse, not_found
from nubes.api.paging import TOTAL_HEADER, Limit, Offset, SortOrder, set_total
from nubes.api.routers.organizations import organization_for
from nubes.services import devices as service
from nubes.services import groups as group_service

router = APIRouter(tags=["devices"])

TOKEN_PATTERN = r"^[0-9a-fA-F]{32}$"
PSK_PATTERN = r"^([0-9a-fA-F]{2}){16,32}$"
TEXT_PATTERN = r"^[^\x00]*$"
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorResponse, "description": "The serial number is taken"}
}

Name = Annotated[str, Field(min_length=1, max_length=100, pattern=TEXT_PATTERN)]
Label = Annotated[str, Field(max_length=100, pattern=TEXT_PATTERN)]
DeviceId = Annotated[uuid.UUID, Path(description="The device's id")]


class Device(BaseModel):
    """A device as the API shows it: never its claim token or PSK."""

    id: uuid.UUID
    organization_id: uuid.UUID
    group_id: uuid.UUID | None
    serial: int = Field(description="The hardware serial number (HSN)")
    name: str
    label: str | None = Field(description="Shown beside messages; hsn:<serial> by default")
    enabled: bool
    created_at: datetime
    last_seen_at: datetime | None
    session_id: int | None = Field(description="The current session")
    vendor: str | None
    product: str | None
    hw_variant: str | None
    hw_revision: str | None
    fw_bundle: str | None
    fw_name: str | None
    fw_version: str | None
    modem_fw: str | None
    imei: str | None
    imsi: str | None
    iccid: str | None
    ble_passkey: str | None = Field(description="Shown to admins only, null for others")
    decoder_hash: str | None
    encoder_hash: str | None
    config_hash: str | None
    config_lines: Any = Field(description="The configuration the device last reported")
    has_psk: bool = Field(description="Whether a DTLS PSK is set (the PSK itself is not shown)")
    psk_previous_until: datetime | None = Field(
        default=None,
        description="The PSK replaced last is still accepted until then (gapless rotation)",
    )


class DeviceCreate(BaseModel):
    serial: int = Field(ge=1, le=0xFFFF_FFFF, examples=[2159018247])
    claim_token: str = Field(
        min_length=32,
        max_length=32,
        pattern=TOKEN_PATTERN,
        description="The MAC key, 32 hex digits",
    )
    psk: str | None = Field(
        default=None, pattern=PSK_PATTERN, description="DTLS PSK, 16 to 32 bytes in hex"
    )
    name: Name | None = Field(default=None, description="CHESTER <serial> when left out")
    label: Label | None = Field(default=None, description="hsn:<serial> when left out")
    group_id: uuid.UUID | None = Field(
        default=None, description="The group; the organization's `default` group when left out"
    )
    organization_id: uuid.UUID | None = Field(
        default=None, description="Needed only when neither group_id nor a single organization"
    )


class DeviceUpdate(BaseModel):
    name: Name | None = None
    label: Label | None = None
    enabled: bool | None = None
    group_id: uuid.UUID | None = Field(default=None, description="A group of the same organization")
    claim_token: str | None = Field(
        default=None, pattern=TOKEN_PATTERN, description="New MAC key (needs admin access)"
    )
    psk: str | None = Field(
        default=None,
        pattern=r"^(([0-9a-fA-F]{2}){16,32})?$",
        description='New DTLS PSK in hex, "" removes it (needs admin access)',
    )
    psk_grace_seconds: int | None = Field(
        default=None,
        ge=0,
        le=90 * 24 * 3600,
        description=(
            "With a new psk: how long the replaced PSK stays valid beside it, so a device"
            " still holding it keeps connecting (default 7 days; 0: invalid at once)"
        ),
    )


class DeviceSecrets(BaseModel):
    claim_token: str = Field(description="The MAC key, hex")
    psk: str | None = Field(description="The DTLS PSK, hex; null when none")


def view(principal: Principal, row: dict[str, Any]) -> Device:
    device = Device.model_validate(row)
    if principal.level(row["organization_id"]) < ADMIN:
        device.ble_passkey = None
    return device


async def visible_device(
    ctx: ContextDep, principal: Principal, device_id: uuid.UUID, minimum: int
) -> dict[str, Any]:
    """The device, when the caller's level in its organization reaches `minimum`."""
    async with ctx.engine.connect() as conn:
        row = await service.find_device(conn, device_id)
    if row is None:
        raise not_found("device")
    require_level(principal, row["organization_id"], minimum, "device")
    return row


@router.get(
    "/v1/devices",
    summary="List devices of your organizations",
    response_model=list[Device],
    responses={200: {"headers": TOTAL_HEADER}},
)
async def list_devices(
    principal: PrincipalDep,
    ctx: ContextDep,
    response: Response,
    group_id: Annotated[uuid.UUID | None, Query(description="Only this group")] = None,
    organization_id: Annotated[
        uuid.UUID | None, Query(description="Only this organization")
    ] = None,
    q: Annotated[
        str | None,
        Query(max_length=100, pattern=TEXT_PATTERN, description="Search name, label, serial"),
    ] = None,
    enabled: Annotated[bool | None, Query(description="Only enabled or disabled ones")] = None,
    sort_field: Annotated[
        Literal["name", "label", "created_at", "serial", "last_seen_at"],
        Query(description="Order by this field"),
    ] = "created_at",
    sort_order: SortOrder = "asc",
    offset: Offset = 0,
    limit: Limit = 100,
) -> list[Device]:
    if organization_id is not None:
        require_level(principal, organization_id, READ, "organization")
    if group_id is not None:
        async with ctx.engine.connect() as conn:
            group = await group_service.find_group(conn, group_id)
        require_level(principal, None if group is None else group["organization_id"], READ, "group")
    where = service.DeviceFilter(
        principal.organizations(READ), organization_id, group_id, q, enabled
    )
    total, rows = await service.search_devices(
        ctx.engine,
        where,
        sort_field=sort_field,
        descending=sort_order == "desc",
        offset=offset,
        limit=limit,
    )
    set_total(response, total)
    return [view(principal, row) for row in rows]


@router.post(
    "/v1/devices",
    status_code=201,
    summary="Add a device (needs write access)",
    response_model=Device,
    responses=CONFLICT,
)
async def create_device(body: DeviceCreate, principal: PrincipalDep, ctx: ContextDep) -> Device:
    organization_id = body.organization_id
    if body.group_id is not None:
        async with ctx.engine.connect() as conn:
            group = await group_service.find_group(conn, body.group_id)
        if group is None or principal.level(group["organization_id"]) == 0:
            raise not_found("group")
        if organization_id not in (None, group["organization_id"]):
            raise not_found("group")
        organization_id = group["organization_id"]
    organization_id = organization_for(principal, organization_id, WRITE)
    row = await service.create_device(
        ctx.engine,
        organization_id=organization_id,
        serial=body.serial,
        claim_token=bytes.fromhex(body.claim_token),
        psk=None if body.psk is None else bytes.fromhex(body.psk),
        name=body.name,
        label=body.label,
        group_id=body.group_id,
        actor=principal.actor,
    )
    return view(principal, row)


@router.get("/v1/devices/{device_id}", summary="Show a device", response_model=Device)
@router.get("/v1/device/{device_id}", summary="Show a device (v1 path)", response_model=Device)
async def get_device(device_id: DeviceId, principal: PrincipalDep, ctx: ContextDep) -> Device:
    return view(principal, await visible_device(ctx, principal, device_id, READ))


def _changes(body: DeviceUpdate) -> dict[str, Any]:
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    for secret in service.SECRET_FIELDS & changes.keys():
        changes[secret] = bytes.fromhex(changes[secret]) if changes[secret] else None
    return changes


async def _update(
    device_id: uuid.UUID, body: DeviceUpdate, principal: Principal, ctx: ContextDep
) -> Device:
    changes = _changes(body)
    minimum = ADMIN if service.SECRET_FIELDS & changes.keys() else WRITE
    row = await visible_device(ctx, principal, device_id, minimum)
    updated = await service.update_device(ctx.engine, row, changes, principal.actor)
    return view(principal, updated)


@router.put(
    "/v1/devices/{device_id}",
    summary="Change a device (the fields given; secrets need admin access)",
    response_model=Device,
)
@router.put(
    "/v1/device/{device_id}",
    summary="Change a device (v1 path; the fields given)",
    response_model=Device,
)
async def put_device(
    device_id: DeviceId, body: DeviceUpdate, principal: PrincipalDep, ctx: ContextDep
) -> Device:
    return await _update(device_id, body, principal, ctx)


@router.patch(
    "/v1/devices/{device_id}",
    summary="Change some fields of a device (secrets need admin access)",
    response_model=Device,
)
async def patch_device(
    device_id: DeviceId, body: DeviceUpdate, principal: PrincipalDep, ctx: ContextDep
) -> Device:
    return await _update(device_id, body, principal, ctx)


@router.delete(
    "/v1/devices/{device_id}",
    status_code=204,
    summary="Delete a device (it stops being served at once)",
    response_class=Response,
)
@router.delete(
    "/v1/device/{device_id}",
    status_code=204,
    summary="Delete a device (v1 path)",
    response_class=Response,
)
async def delete_device(device_id: DeviceId, principal: PrincipalDep, ctx: ContextDep) -> Response:
    row = await visible_device(ctx, principal, device_id, WRITE)
    await service.delete_device(ctx.engine, row, principal.actor)
    return Response(status_code=204)


@router.post(
    "/v1/devices/{device_id}/reveal",
    summary="Show the claim token and PSK (admin access; audited)",
    response_model=DeviceSecrets,
)
async def reveal(device_id: DeviceId, principal: PrincipalDep, ctx: ContextDep) -> DeviceSecrets:
    row = await visible_device(ctx, principal, device_id, ADMIN)
    claim_token, psk = await service.reveal_secrets(ctx.engine, row, principal.actor)
    return DeviceSecrets(claim_token=claim_token.hex(), psk=None if psk is None else psk.hex())
