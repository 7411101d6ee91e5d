"""Downlinks: config lines, shell commands and data queued for a device.

A device receives its downlinks when it next talks to the cloud (see
device-protocol.md), so queueing answers at once with the `pending`
downlink; its state then follows `pending → sent → delivered`, or ends
`cancelled` or `expired`. A shell downlink's answer (the device's
UPLOAD_SHELL message) is shown as `reply` once it arrived.

Queueing and cancelling need write access and are audited; both bump the
device so that the gateways reload its downlinks.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from nubes.api.deps import READ, WRITE, ContextDep, Principal, PrincipalDep, require_level
from nubes.api.errors import ErrorResponse, conflict, not_found
from nubes.api.paging import TOTAL_HEADER, ByCreation, Limit, Offset, SortOrder, set_total
from nubes.api.params import DeviceIdPath, DownlinkIdPath
from nubes.services import downlinks, queries
from nubes.services.downlinks import Built

router = APIRouter(tags=["downlinks"])

State = Literal["pending", "sent", "delivered", "cancelled", "expired"]
Text = Annotated[str, Field(min_length=1, max_length=1024)]


class ConfigDownlink(BaseModel):
    """Config lines: the device applies them, saves and reboots (never send `config save`)."""

    kind: Literal["config"]
    lines: list[Text] = Field(min_length=1, max_length=500, examples=[["app config interval 60"]])


class ShellDownlink(BaseModel):
    """Shell commands; the device's answer shows as the downlink's `reply`."""

    kind: Literal["shell"]
    commands: list[Text] = Field(min_length=1, max_length=100, examples=[["app config show"]])


class DataDownlink(BaseModel):
    """JSON data, encoded with the encoder the device uploaded."""

    kind: Literal["data"]
    data: dict[str, Any] = Field(examples=[{"led_r": 1}])


NewDownlink = Annotated[ConfigDownlink | ShellDownlink | DataDownlink, Field(discriminator="kind")]


class Downlink(BaseModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    device_id: uuid.UUID
    kind: Literal["config", "shell", "data"]
    request: Any = Field(description="The config lines, shell commands or data asked for")
    state: State
    attempts: int = Field(description="How often sending was started")
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    expires_at: datetime = Field(description="Undelivered by then, it expires")
    reply_message_id: uuid.UUID | None = Field(description="The device's answer (shell)")
    reply: Any = Field(default=None, description="The decoded body of the answer, once it came")


_NOT_QUEUEABLE = {"model": ErrorResponse, "description": "The downlink cannot be encoded"}
_FINAL = {"model": ErrorResponse, "description": "The downlink is no longer pending or sent"}


async def _device(
    ctx: ContextDep, principal: Principal, device_id: uuid.UUID, minimum: int
) -> dict[str, Any]:
    device = await queries.device_by_id(ctx.engine, device_id)
    if device is None:
        raise not_found("device")
    require_level(principal, device["organization_id"], minimum, "device")
    return device


async def _downlink(
    ctx: ContextDep, principal: Principal, downlink_id: uuid.UUID, minimum: int
) -> dict[str, Any]:
    row = await downlinks.get_downlink(ctx.engine, downlink_id)
    if row is None:
        raise not_found("downlink")
    require_level(principal, row["organization_id"], minimum, "downlink")
    return row


async def _build(ctx: ContextDep, device: dict[str, Any], body: NewDownlink) -> Built:
    if isinstance(body, ConfigDownlink):
        return downlinks.build_config(body.lines)
    if isinstance(body, ShellDownlink):
        return downlinks.build_shell(body.commands)
    return await downlinks.build_data(ctx.engine, device, body.data)


@router.post(
    "/v1/devices/{device_id}/downlinks",
    status_code=201,
    summary="Queue a downlink: config lines, shell commands or data",
    description=(
        'The body names its `kind`: `{"kind": "config", "lines": [...]}`, '
        '`{"kind": "shell", "commands": [...]}` or `{"kind": "data", "data": {...}}` '
        "(data needs the encoder the device uploaded). The device receives it when it "
        "next talks to the cloud. 422 `downlink_error` when it cannot be encoded."
    ),
    response_model=Downlink,
    responses={422: _NOT_QUEUEABLE},
)
async def queue_downlink(
    device_id: DeviceIdPath, body: NewDownlink, principal: PrincipalDep, ctx: ContextDep
) -> Downlink:
    device = await _device(ctx, principal, device_id, WRITE)
    built = await _build(ctx, device, body)
    row = await downlinks.queue(
        ctx.engine,
        device,
        built,
        expiry_days=ctx.settings.downlink_expiry_days,
        actor=principal.actor,
    )
    return Downlink.model_validate(row)


@router.get(
    "/v1/devices/{device_id}/downlinks",
    summary="A device's downlinks, newest first",
    response_model=list[Downlink],
    responses={200: {"headers": TOTAL_HEADER}},
)
async def list_downlinks(
    device_id: DeviceIdPath,
    principal: PrincipalDep,
    ctx: ContextDep,
    response: Response,
    state: Annotated[State | None, Query(description="Only downlinks in this state")] = None,
    offset: Offset = 0,
    limit: Limit = 100,
    sort_field: ByCreation = "created_at",
    sort_order: SortOrder = "desc",
) -> list[Downlink]:
    await _device(ctx, principal, device_id, READ)
    total, rows = await downlinks.downlinks_page(
        ctx.engine,
        device_id,
        state=state,
        offset=offset,
        limit=limit,
        descending=sort_order == "desc",
    )
    set_total(response, total)
    return [Downlink.model_validate(row) for row in rows]


@router.get(
    "/v1/downlinks/{downlink_id}",
    summary="One downlink: its state, times and the device's answer",
    response_model=Downlink,
)
async def get_downlink(
    downlink_id: DownlinkIdPath, principal: PrincipalDep, ctx: ContextDep
) -> Downlink:
    return Downlink.model_validate(await _downlink(ctx, principal, downlink_id, READ))


async def _cancel(ctx: ContextDep, principal: Principal, downlink_id: uuid.UUID) -> Downlink:
    await _downlink(ctx, principal, downlink_id, WRITE)
    row = await downlinks.cancel(ctx.engine, downlink_id, principal.actor)
    if row is None:
        current = await downlinks.get_downlink(ctx.engine, downlink_id)
        state = current["state"] if current is not None else "gone"
        raise conflict(f"the downlink is {state}: only pending or sent downlinks can be cancelled")
    return Downlink.model_validate(row)


@router.post(
    "/v1/downlinks/{downlink_id}/cancel",
    summary="Cancel a pending or sent downlink",
    description="409 when it is already delivered, cancelled or expired.",
    response_model=Downlink,
    responses={409: _FINAL},
)
async def cancel_downlink(
    downlink_id: DownlinkIdPath, principal: PrincipalDep, ctx: ContextDep
) -> Downlink:
    return await _cancel(ctx, principal, downlink_id)


@router.delete(
    "/v1/downlinks/{downlink_id}",
    summary="Cancel a pending or sent downlink (same as POST .../cancel)",
    description="The downlink stays listed, as `cancelled`. 409 when it is already final.",
    response_model=Downlink,
    responses={409: _FINAL},
)
async def delete_downlink(
    downlink_id: DownlinkIdPath, principal: PrincipalDep, ctx: ContextDep
) -> Downlink:
    return await _cancel(ctx, principal, downlink_id)
