"""Sessions of a device and the communication log, packet by packet.

A session is one session start (MAC envelopes) or DTLS association; its id
is the number the device was told. The log holds every datagram the gateway
received or sent, with the outcome the transfer state machine gave it, so a
device owner can see why a device repeats, resets or is refused. Datagrams
before any session (a bad MAC, an unknown session) are in the device's log
only.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from nubes.api.deps import ADMIN, READ, ContextDep, Principal, PrincipalDep, require_level
from nubes.api.errors import not_found
from nubes.api.paging import TOTAL_HEADER, ByStart, ByTime, Limit, Offset, SortOrder, set_total
from nubes.api.params import DeviceIdPath
from nubes.api.views import without_secrets
from nubes.services import queries
from nubes.services.queries import Page

router = APIRouter(tags=["sessions"])

MAX_LOG_LIMIT = 1000

SessionId = Annotated[
    int, Path(ge=0, le=2**63 - 1, description="The session id the device was told")
]
LogLimit = Annotated[
    int,
    Query(ge=1, le=MAX_LOG_LIMIT, description=f"Rows to return (at most {MAX_LOG_LIMIT})"),
]
Direction = Annotated[
    Literal["in", "out"] | None,
    Query(description="Only datagrams received from (`in`) or sent to (`out`) the device"),
]
Outcome = Annotated[
    str | None,
    Query(
        pattern=r"^[a-z_]{1,16}$",
        description="Only datagrams with this outcome, e.g. `accepted`, `ack`, `bad_mac`",
    ),
]


class Session(BaseModel):
    id: int = Field(description="The session id the device was told")
    device_id: uuid.UUID
    organization_id: uuid.UUID
    envelope: str = Field(description="`raw`, `base64` or `dtls`")
    remote_address: str
    remote_port: int
    started_at: datetime
    last_activity_at: datetime
    ended_at: datetime | None
    end_reason: str | None
    packets_in: int
    packets_out: int
    bytes_in: int
    bytes_out: int
    messages_in: int
    messages_out: int
    attributes: Any = Field(
        description="What the device told at the session start (the Bluetooth passkey "
        "only to admins)"
    )


class LogEntry(BaseModel):
    id: int
    at: datetime
    session_id: int | None = Field(description="None for datagrams outside any session")
    device_id: uuid.UUID
    direction: Literal["in", "out"]
    envelope: str
    remote: str = Field(description="The device's address:port")
    flags: int | None = Field(description="The FLAP flag nibble; None when unreadable")
    flags_text: str | None = Field(description="The flags in log notation, e.g. `[FLxx]`")
    seq: int | None
    size: int = Field(description="Bytes of the datagram")
    outcome: str = Field(description="What the gateway made of it: accepted, ack, repeat, ...")
    detail: str | None
    message_id: uuid.UUID | None = Field(description="The message this datagram completed")


def _session_view(row: dict[str, Any], principal: Principal) -> Session:
    session = Session.model_validate(row)
    if principal.level(session.organization_id) < ADMIN:
        session.attributes = without_secrets(session.attributes)
    return session


async def _device(ctx: ContextDep, principal: Principal, device_id: uuid.UUID) -> dict[str, Any]:
    device = await queries.device_by_id(ctx.engine, device_id)
    if device is None:
        raise not_found("device")
    require_level(principal, device["organization_id"], READ, "device")
    return device


async def _session(ctx: ContextDep, principal: Principal, session_id: int) -> dict[str, Any]:
    session = await queries.session_by_id(ctx.engine, session_id)
    if session is None:
        raise not_found("session")
    require_level(principal, session["organization_id"], READ, "session")
    return session


@router.get(
    "/v1/devices/{device_id}/sessions",
    summary="A device's sessions, newest first",
    response_model=list[Session],
    responses={200: {"headers": TOTAL_HEADER}},
)
async def list_sessions(
    device_id: DeviceIdPath,
    principal: PrincipalDep,
    ctx: ContextDep,
    response: Response,
    offset: Offset = 0,
    limit: Limit = 100,
    sort_field: ByStart = "started_at",
    sort_order: SortOrder = "desc",
) -> list[Session]:
    await _device(ctx, principal, device_id)
    page = Page(offset, limit, descending=sort_order == "desc")
    total, rows = await queries.sessions_page(ctx.engine, device_id, page)
    set_total(response, total)
    return [_session_view(row, principal) for row in rows]


@router.get(
    "/v1/sessions/{session_id}",
    summary="One session with its counters",
    response_model=Session,
)
async def get_session(session_id: SessionId, principal: PrincipalDep, ctx: ContextDep) -> Session:
    return _session_view(await _session(ctx, principal, session_id), principal)


@router.get(
    "/v1/sessions/{session_id}/log",
    summary="A session's communication log, packet by packet, in time order",
    response_model=list[LogEntry],
    responses={200: {"headers": TOTAL_HEADER}},
)
async def session_log(
    session_id: SessionId,
    principal: PrincipalDep,
    ctx: ContextDep,
    response: Response,
    direction: Direction = None,
    outcome: Outcome = None,
    offset: Offset = 0,
    limit: LogLimit = 100,
    sort_field: ByTime = "at",
    sort_order: SortOrder = "asc",
) -> list[LogEntry]:
    await _session(ctx, principal, session_id)
    page = Page(offset, limit, descending=sort_order == "desc")
    where = queries.session_log_where(session_id)
    total, rows = await queries.log_page(
        ctx.engine, where, page, direction=direction, outcome=outcome
    )
    set_total(response, total)
    return [LogEntry.model_validate(row) for row in rows]


@router.get(
    "/v1/devices/{device_id}/log",
    summary="A device's latest datagrams across sessions, newest first",
    description=(
        "Every datagram of the device, in or outside sessions (a bad MAC before any "
        "session shows here only). Newest first by default; `sort_order=asc` walks "
        "from the oldest."
    ),
    response_model=list[LogEntry],
    responses={200: {"headers": TOTAL_HEADER}},
)
async def device_log(
    device_id: DeviceIdPath,
    principal: PrincipalDep,
    ctx: ContextDep,
    response: Response,
    direction: Direction = None,
    outcome: Outcome = None,
    offset: Offset = 0,
    limit: LogLimit = 100,
    sort_field: ByTime = "at",
    sort_order: SortOrder = "desc",
) -> list[LogEntry]:
    await _device(ctx, principal, device_id)
    page = Page(offset, limit, descending=sort_order == "desc")
    where = queries.device_log_where(device_id)
    total, rows = await queries.log_page(
        ctx.engine, where, page, direction=direction, outcome=outcome
    )
    set_total(response, total)
    return [LogEntry.model_validate(row) for row in rows]
