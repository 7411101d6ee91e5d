"""The delivery log of callbacks, and replays of failed deliveries.

Every delivery of a message to a callback, with each attempt: what was sent
(secrets redacted, the body's first 4 KB), what came back, how long it took
and why it failed. Reading needs read access to the callback's (or the
message's) organization, replaying write access. A replay puts failed
deliveries back to `pending`, due now, with the whole retry schedule; their
earlier attempts stay in the log.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Response
from pydantic import BaseModel, Field

from nubes.api.deps import READ, WRITE, ContextDep, PrincipalDep, require_level
from nubes.api.errors import ErrorResponse
from nubes.api.paging import TOTAL_HEADER, ByCreation, Limit, Offset, SortOrder, set_total
from nubes.api.routers.callbacks import CallbackId, visible_callback
from nubes.services import deliveries as service
from nubes.services import messages as message_service

router = APIRouter(tags=["callbacks"])

State = Literal["pending", "delivering", "succeeded", "failed", "skipped", "cancelled"]


class Attempt(BaseModel):
    id: int
    at: datetime
    duration_ms: float | None
    outcome: str = Field(description="success, failure or skipped")
    request: Any = Field(description="method, url, headers (secrets redacted), body (4 KB)")
    response: Any = Field(description="status, headers, body (4 KB); null without an answer")
    error: str | None


class Delivery(BaseModel):
    id: uuid.UUID
    organization_id: uuid.UUID
    callback_id: uuid.UUID
    callback_name: str
    message_id: uuid.UUID
    state: State
    attempts: int = Field(description="Attempts made (since the last replay)")
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


class DeliveryLog(Delivery):
    attempt_log: list[Attempt] = Field(description="Every attempt, oldest first")


class ReplayRequest(BaseModel):
    delivery_id: uuid.UUID | None = Field(
        default=None, description="One failed delivery; all failed ones of the callback if left out"
    )


class Replayed(BaseModel):
    replayed: int = Field(description="How many deliveries are pending again")


@router.get(
    "/v1/callbacks/{callback_id}/deliveries",
    summary="A callback's deliveries, newest first",
    response_model=list[Delivery],
    responses={200: {"headers": TOTAL_HEADER}},
)
async def list_deliveries(
    callback_id: CallbackId,
    principal: PrincipalDep,
    ctx: ContextDep,
    response: Response,
    state: Annotated[State | None, Query(description="Only deliveries in this state")] = None,
    sort_field: ByCreation = "created_at",
    sort_order: SortOrder = "desc",
    offset: Offset = 0,
    limit: Limit = 100,
) -> list[Delivery]:
    await visible_callback(ctx, principal, callback_id, READ)
    total, rows = await service.list_deliveries(
        ctx.engine,
        callback_id,
        state,
        descending=sort_order == "desc",
        offset=offset,
        limit=limit,
    )
    set_total(response, total)
    return [Delivery.model_validate(row) for row in rows]


@router.get(
    "/v1/messages/{message_id}/deliveries",
    summary="A message's deliveries to its group's callbacks, with every attempt",
    response_model=list[DeliveryLog],
    responses={200: {"headers": TOTAL_HEADER}},
)
async def message_deliveries(
    message_id: Annotated[uuid.UUID, Path(description="The message's id")],
    principal: PrincipalDep,
    ctx: ContextDep,
    response: Response,
    sort_field: ByCreation = "created_at",
    sort_order: SortOrder = "asc",
    offset: Offset = 0,
    limit: Limit = 100,
) -> list[DeliveryLog]:
    organization_id = await message_service.message_owner(ctx.engine, message_id)
    require_level(principal, organization_id, READ, "message")
    assert organization_id is not None
    total, rows = await service.message_deliveries(
        ctx.engine,
        message_id,
        organization_id,
        descending=sort_order == "desc",
        offset=offset,
        limit=limit,
    )
    set_total(response, total)
    return [DeliveryLog.model_validate(row) for row in rows]


@router.get(
    "/v1/deliveries/{delivery_id}",
    summary="One delivery with every attempt",
    response_model=DeliveryLog,
)
async def get_delivery(
    delivery_id: Annotated[uuid.UUID, Path(description="The delivery's id")],
    principal: PrincipalDep,
    ctx: ContextDep,
) -> DeliveryLog:
    row = await service.get_delivery(ctx.engine, delivery_id)
    require_level(principal, None if row is None else row["organization_id"], READ, "delivery")
    return DeliveryLog.model_validate(row)


@router.post(
    "/v1/callbacks/{callback_id}/replay",
    summary="Deliver failed deliveries again: one, or all of the callback (write access)",
    response_model=Replayed,
    responses={409: {"model": ErrorResponse, "description": "The delivery is not failed"}},
)
async def replay(
    callback_id: CallbackId,
    principal: PrincipalDep,
    ctx: ContextDep,
    body: Annotated[ReplayRequest | None, Body()] = None,
) -> Replayed:
    """Replayed deliveries are pending again, due now, with the whole retry
    schedule; their earlier attempts stay in the log."""
    row = await visible_callback(ctx, principal, callback_id, WRITE)
    delivery_id = None if body is None else body.delivery_id
    replayed = await service.replay(ctx.engine, row, delivery_id, principal.actor)
    return Replayed(replayed=replayed)
