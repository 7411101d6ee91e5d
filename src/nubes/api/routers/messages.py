"""Messages: list, export, show, delete; a device's messages per day.

`GET /v1/messages` keeps HARDWARIO v1's shape, which existing scripts rely
on: a JSON array, `since`/`before` in Unix milliseconds, `sort_field`,
`sort_order`, `offset`, `limit` (at most 100), the total in `x-total`. It
adds cursor paging for long walks: every page says in `x-has-more` whether
another follows and names it in `x-next-cursor`; following a cursor costs
the same on page 10,000 as on page 2 (an offset does not), and skips the
count, which is the expensive part of a page.

Lists are answered with `Json` directly (no Pydantic pass over 100 rows);
`response_model` still documents the shape in the OpenAPI document.
"""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, cast

import orjson
from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy.engine import RowMapping

from nubes.api import views
from nubes.api.context import ApiContext
from nubes.api.deps import ADMIN, READ, WRITE, ContextDep, Principal, PrincipalDep, require_level
from nubes.api.errors import ApiError, bad_request, not_found
from nubes.api.paging import ByCreation, Limit, Offset, SortOrder
from nubes.api.responses import Json
from nubes.services import messages as service
from nubes.services.messages import MessageFilter, Position

router = APIRouter(tags=["messages"])

MAX_EXPORT = 1_000_000
DEFAULT_COUNT_DAYS = 365
MAX_COUNT_DAYS = 5 * 366
CSV_COLUMNS = (
    "id",
    "created_at",
    "device_id",
    "label",
    "type",
    "direction",
    "session_id",
    "data",
    "raw",
)

MessageType = Literal[
    "session", "data", "config", "decoder", "encoder", "stats", "shell", "firmware", "timestamp"
]

LIST_HEADERS = {
    "x-total": {
        "description": "How many messages match, regardless of paging; absent with `cursor`",
        "schema": {"type": "integer"},
    },
    "x-has-more": {
        "description": "`true` when more messages follow this page",
        "schema": {"type": "string", "enum": ["true", "false"]},
    },
    "x-next-cursor": {
        "description": "Pass as `cursor` for the next page; present when `x-has-more` is true",
        "schema": {"type": "string"},
    },
}

_TIME_HELP = (
    "Unix milliseconds (e.g. 1714564800000) or ISO-8601 (e.g. 2024-05-01T12:00:00Z; "
    "UTC when no offset is given)"
)


class DayCount(BaseModel):
    date: str = Field(description="A UTC day", examples=["2024-05-01"])
    count: int = Field(description="Messages of the device that day")


class Deleted(BaseModel):
    deleted: int = Field(description="How many messages were deleted")


# --- query parameters --------------------------------------------------------

_INTEGER = re.compile(r"[+-]?\d+")
# A "+" of a UTC offset that was not URL-encoded arrives as a space.
_SPACED_OFFSET = re.compile(r"^(.*\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d:?\d\d)$")


def parse_time(name: str, text: str) -> datetime:
    """Unix milliseconds or ISO-8601, as an aware UTC datetime; 422 otherwise."""
    value = _SPACED_OFFSET.sub(r"\1+\2", text.strip())
    try:
        if _INTEGER.fullmatch(value):
            return service.EPOCH + timedelta(milliseconds=int(value))
        parsed = datetime.fromisoformat(value)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        message = f"{name}: expected Unix milliseconds or an ISO-8601 time, got {text!r}"
        details = [{"loc": ["query", name], "msg": message, "type": "value_error"}]
        raise ApiError(422, "validation_error", message, details) from None


def _optional_time(name: str, text: str | None) -> datetime | None:
    return None if text is None else parse_time(name, text)


Since = Annotated[
    str | None, Query(description=f"Messages created at or after this time: {_TIME_HELP}")
]
Before = Annotated[
    str | None, Query(description=f"Messages created before this time: {_TIME_HELP}")
]


@dataclass(frozen=True, slots=True)
class Selection:
    """What the query asks for, before the caller's access is checked."""

    organization_id: uuid.UUID | None
    group_id: uuid.UUID | None
    device_id: uuid.UUID | None
    types: tuple[str, ...]
    direction: str | None
    since: datetime | None
    before: datetime | None

    @property
    def scoped(self) -> bool:
        return any(x is not None for x in (self.organization_id, self.group_id, self.device_id))


def selection(
    organization_id: Annotated[
        uuid.UUID | None, Query(description="Only messages of this organization")
    ] = None,
    group_id: Annotated[uuid.UUID | None, Query(description="Only messages of this group")] = None,
    device_id: Annotated[
        uuid.UUID | None, Query(description="Only messages of this device")
    ] = None,
    type_: Annotated[
        list[MessageType] | None,
        Query(alias="type", description="Only messages of these types (repeat for several)"),
    ] = None,
    direction: Annotated[
        Literal["up", "down"] | None,
        Query(description="Only uplinks (`up`, from devices) or downlinks (`down`)"),
    ] = None,
    since: Since = None,
    before: Before = None,
) -> Selection:
    return Selection(
        organization_id,
        group_id,
        device_id,
        tuple(dict.fromkeys(type_ or ())),
        direction,
        _optional_time("since", since),
        _optional_time("before", before),
    )


SelectionDep = Annotated[Selection, Depends(selection)]
MessageId = Annotated[uuid.UUID, Path(description="The message's id")]


async def _filter(
    ctx: ApiContext, principal: Principal, selected: Selection, minimum: int
) -> tuple[MessageFilter, uuid.UUID | None]:
    """The filter to run and the organization it is about (None: all the caller's).

    Each id named must be of an organization the caller belongs to (404
    otherwise, as for a missing one) with at least `minimum` access.
    """
    home: uuid.UUID | None = None
    if selected.device_id is not None:
        owner = await service.device_owner(ctx.engine, selected.device_id)
        home = None if owner is None else owner.organization_id
        require_level(principal, home, minimum, "device")
    if selected.group_id is not None:
        organization_id = await service.group_owner(ctx.engine, selected.group_id)
        require_level(principal, organization_id, minimum, "group")
        home = home or organization_id
    organizations = None
    if selected.organization_id is not None:
        require_level(principal, selected.organization_id, minimum, "organization")
        organizations = [selected.organization_id]
        home = home or selected.organization_id
    elif not selected.scoped:
        organizations = principal.organizations(minimum)
    flt = MessageFilter(
        organizations,
        selected.group_id,
        selected.device_id,
        selected.types,
        selected.direction,
        selected.since,
        selected.before,
    )
    return flt, home


def _cursor(cursor: str | None, order: str, offset: int) -> Position | None:
    if cursor is None:
        return None
    try:
        position = Position.from_cursor(cursor)
    except ValueError:
        message = "cursor: not a cursor of this API (take it from x-next-cursor)"
        details = [{"loc": ["query", "cursor"], "msg": message, "type": "value_error"}]
        raise ApiError(422, "validation_error", message, details) from None
    if offset:
        raise bad_request("offset must be 0 when a cursor is given")
    if position.order != order:
        raise bad_request(f"the cursor continues a {position.order} listing, not {order}")
    return position


# --- routes ------------------------------------------------------------------


@router.get(
    "/v1/messages",
    summary="List messages, newest first (v1 compatible; offset or cursor paging)",
    response_model=list[views.Message],
    responses={200: {"headers": LIST_HEADERS}},
)
async def list_messages(
    principal: PrincipalDep,
    ctx: ContextDep,
    selected: SelectionDep,
    sort_field: Annotated[
        Literal["created_at"], Query(description="Field to sort by (only `created_at`)")
    ] = "created_at",
    sort_order: SortOrder = "desc",
    offset: Offset = 0,
    limit: Limit = 100,
    cursor: Annotated[
        str | None,
        Query(max_length=200, description="The `x-next-cursor` of the previous page"),
    ] = None,
    total: Annotated[
        bool,
        Query(
            description="Count the matching messages into `x-total` (not done with `cursor`); "
            "`false` saves the count, which costs more than the page on large sets"
        ),
    ] = True,
) -> Response:
    """Without organization, group or device: the messages of every organization
    the caller can read. With a cursor, `offset` must be 0 and `x-total` is left out."""
    after = _cursor(cursor, sort_order, offset)
    flt, _ = await _filter(ctx, principal, selected, READ)
    page = await service.list_messages(
        ctx.engine,
        flt,
        order=sort_order,
        offset=offset,
        limit=limit,
        after=after,
        with_total=total and after is None,
    )
    headers = {"x-has-more": "true" if page.has_more else "false"}
    if page.total is not None:
        headers["x-total"] = str(page.total)
    if page.next is not None:
        headers["x-next-cursor"] = page.next.cursor()
    return Json([_view(row, principal) for row in page.rows], headers=headers)


@router.get(
    "/v1/messages/export",
    summary="Export messages as NDJSON or CSV, streamed",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One message a line (NDJSON: the list's shape; CSV: "
            + ", ".join(CSV_COLUMNS)
            + ", with `data` as JSON text and `raw` in base64)",
            "content": {"application/x-ndjson": {}, "text/csv": {}},
        }
    },
)
async def export_messages(
    principal: PrincipalDep,
    ctx: ContextDep,
    selected: SelectionDep,
    format_: Annotated[
        Literal["ndjson", "csv"], Query(alias="format", description="`ndjson` or `csv`")
    ] = "ndjson",
    sort_field: ByCreation = "created_at",
    sort_order: SortOrder = "desc",
    limit: Annotated[
        int, Query(ge=1, le=MAX_EXPORT, description=f"At most this many (up to {MAX_EXPORT})")
    ] = MAX_EXPORT,
) -> StreamingResponse:
    flt, _ = await _filter(ctx, principal, selected, READ)
    chunks = service.export_messages(ctx.engine, flt, order=sort_order, limit=limit)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {"Content-Disposition": f'attachment; filename="messages-{stamp}.{format_}"'}
    if format_ == "csv":
        return StreamingResponse(_csv(chunks, principal), media_type="text/csv", headers=headers)
    return StreamingResponse(
        _ndjson(chunks, principal), media_type="application/x-ndjson", headers=headers
    )


@router.get(
    "/v1/messages/{message_id}",
    summary="One message",
    response_model=views.Message,
)
async def get_message(message_id: MessageId, principal: PrincipalDep, ctx: ContextDep) -> Response:
    row = await service.get_message(ctx.engine, message_id)
    require_level(principal, None if row is None else row["organization_id"], READ, "message")
    assert row is not None
    return Json(_view(row, principal))


@router.delete(
    "/v1/messages/{message_id}",
    status_code=204,
    summary="Delete one message (write access)",
    response_class=Response,
)
async def delete_message(
    message_id: MessageId, principal: PrincipalDep, ctx: ContextDep
) -> Response:
    organization_id = await service.message_owner(ctx.engine, message_id)
    require_level(principal, organization_id, WRITE, "message")
    assert organization_id is not None
    if not await service.delete_message(ctx.engine, principal.actor, organization_id, message_id):
        raise not_found("message")
    return Response(status_code=204)


@router.delete(
    "/v1/messages",
    summary="Delete the messages a filter selects (write access)",
    response_model=Deleted,
)
async def delete_messages(
    principal: PrincipalDep, ctx: ContextDep, selected: SelectionDep
) -> Deleted:
    """Needs at least one of `organization_id`, `group_id`, `device_id`, so that
    no request deletes everything by forgetting a parameter."""
    if not selected.scoped:
        raise bad_request("name an organization_id, group_id or device_id to delete from")
    flt, home = await _filter(ctx, principal, selected, WRITE)
    assert home is not None
    deleted = await service.delete_messages(ctx.engine, principal.actor, home, flt)
    return Deleted(deleted=deleted)


@router.get(
    "/v1/devices/{device_id}/message-counts",
    summary="A device's messages per UTC day (for a calendar heat map)",
    response_model=list[DayCount],
)
async def message_counts(
    device_id: Annotated[uuid.UUID, Path(description="The device")],
    principal: PrincipalDep,
    ctx: ContextDep,
    since: Since = None,
    before: Before = None,
) -> list[DayCount]:
    """Only days with messages, oldest first; by default the last 365 days,
    at most 5 years at once."""
    owner = await service.device_owner(ctx.engine, device_id)
    require_level(principal, None if owner is None else owner.organization_id, READ, "device")
    end = _optional_time("before", before) or datetime.now(UTC)
    start = _optional_time("since", since) or _days_before(end, DEFAULT_COUNT_DAYS)
    if end - start > timedelta(days=MAX_COUNT_DAYS):
        raise bad_request(f"since and before may be at most {MAX_COUNT_DAYS} days apart")
    counts = await service.day_counts(ctx.engine, device_id, start, end)
    return [DayCount(date=day, count=count) for day, count in counts]


def _days_before(end: datetime, days: int) -> datetime:
    """`days` before `end`, or the earliest time there is (before= near year 1)."""
    try:
        return end - timedelta(days=days)
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


# --- bodies ------------------------------------------------------------------


def _view(row: RowMapping, principal: Principal) -> dict[str, Any]:
    # RowMapping's keys are typed loosely; these rows are keyed by column name.
    admin = principal.level(row["organization_id"]) >= ADMIN
    return views.message_view(cast("Mapping[str, Any]", row), row["label"], secrets=admin)


async def _ndjson(
    chunks: AsyncIterator[Sequence[RowMapping]], principal: Principal
) -> AsyncIterator[bytes]:
    async for rows in chunks:
        yield b"".join(_json_line(_view(row, principal)) for row in rows)


def _json_line(view: Mapping[str, Any]) -> bytes:
    return orjson.dumps(view, option=orjson.OPT_UTC_Z, default=str) + b"\n"


async def _csv(
    chunks: AsyncIterator[Sequence[RowMapping]], principal: Principal
) -> AsyncIterator[str]:
    yield _csv_text([CSV_COLUMNS])
    async for rows in chunks:
        yield _csv_text(_csv_row(_view(row, principal)) for row in rows)


def _csv_text(rows: Iterable[Sequence[Any]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


def _csv_row(view: Mapping[str, Any]) -> list[Any]:
    data, session_id = view["data"], view["session_id"]
    return [
        view["id"],
        view["created_at"].isoformat().replace("+00:00", "Z"),
        view["device_id"],
        view["label"] or "",
        view["type"],
        view["direction"],
        "" if session_id is None else session_id,
        "" if data is None else orjson.dumps(data).decode(),
        view["raw"],
    ]
