"""Callbacks: a group's webhooks, their live preview and test requests.

A callback belongs to a group; reading it needs read access to the group's
organization, changing it write access. Like devices, PUT and PATCH both
change only the fields the body names (a field sent as null is left as it
is); every change bumps `version` and `updated_at`; deleting is soft.

The `secret` (HMAC signatures) is write-only: no answer carries it, a
callback says `has_secret` instead. Setting it on a new callback needs write
access (as a new device's PSK does); changing or removing it later (`""`)
needs admin access, as a device's secrets do. Header and query parameter
values that look like credentials (`Authorization`, `*token*`, `*key*`, ...)
are shown as `[redacted]` to callers without write access, as in the
delivery log.

A configuration the dispatcher could not use is refused at save time with
422 `validation_error`; `details` says which field and where:
`{"field": "payload", "position": 12, "code": "S0203"}` (the JSONata error
code; `invalid_url`, `invalid_header_name`, `invalid_header_value`,
`reserved_header`, `invalid_template` or `invalid_text` otherwise). Header
values must be visible ASCII (templates may fill in anything; what cannot be
sent fails that attempt), and the headers Nubes sets itself (`User-Agent`,
`X-Nubes-*`, `Idempotency-Key`, framing) cannot be configured.

The preview answers 200 even for an expression that does not compile or
fails on the message: it is the editor's live view, and the error (message,
position, code) is part of what it shows.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Body, Path, Query, Response
from pydantic import BaseModel, Field

from nubes import __version__
from nubes.api.deps import ADMIN, READ, WRITE, ContextDep, Principal, PrincipalDep, require_level
from nubes.api.errors import ApiError, ErrorResponse, conflict, not_found
from nubes.api.paging import TOTAL_HEADER, Limit, Offset, SortOrder, set_total
from nubes.api.routers.groups import GroupId, visible_group
from nubes.callbacks import model
from nubes.callbacks.model import CallbackConfig
from nubes.callbacks.request import REDACTED, looks_secret
from nubes.callbacks.sender import Sender
from nubes.services import callbacks as service
from nubes.services.callbacks import InvalidCallback

router = APIRouter(tags=["callbacks"])

USER_AGENT = f"nubes/{__version__}"
TEXT_PATTERN = r"^[^\x00]*$"
MAX_WEEK = 7 * 24 * 3600.0

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=TEXT_PATTERN)]
Note = Annotated[str, Field(max_length=2000, pattern=TEXT_PATTERN)]
Url = Annotated[str, Field(min_length=1, max_length=2048, examples=["https://example.com/hook"])]
Payload = Annotated[str, Field(max_length=20_000, pattern=TEXT_PATTERN)]
Method = Literal["POST", "GET", "PUT", "PATCH"]
ContentType = Literal[
    "application/json", "application/x-www-form-urlencoded", "application/octet-stream"
]
MessageType = Literal[
    "session", "data", "config", "decoder", "encoder", "stats", "shell", "firmware", "timestamp"
]
Triggers = Annotated[list[MessageType], Field(min_length=1, max_length=9)]
Timeout = Annotated[float, Field(ge=0.1, le=60, description="Seconds for one attempt")]
Delays = Annotated[
    list[Annotated[float, Field(gt=0, le=MAX_WEEK)]],
    Field(max_length=20, description="Seconds before each retry (at most 20, each up to 7 days)"),
]
Secret = Annotated[str, Field(max_length=200, pattern=TEXT_PATTERN)]
CallbackId = Annotated[uuid.UUID, Path(description="The callback's id")]

_INVALID: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorResponse, "description": "Invalid settings; details say where"}
}


class NameValue(BaseModel):
    """A query parameter or header; values may hold `{{path}}` templates."""

    name: str = Field(min_length=1, max_length=200)
    value: str = Field(max_length=2048)


class CallbackCreate(BaseModel):
    name: Name
    enabled: bool = True
    note: Note | None = None
    method: Method = "POST"
    url: Url = Field(description="http:// or https://; may hold {{path}} templates")
    query_params: list[NameValue] = Field(default_factory=list, max_length=50)
    headers: list[NameValue] = Field(default_factory=list, max_length=50)
    content_type: ContentType = "application/json"
    payload: Payload = Field(default="", description="JSONata; empty sends the message as-is")
    triggers: Triggers = Field(
        default_factory=lambda: cast("list[MessageType]", list(model.DEFAULT_TRIGGERS))
    )
    timeout: Timeout = model.DEFAULT_TIMEOUT
    retry_delays: Delays = Field(
        default_factory=lambda: [float(d) for d in model.DEFAULT_RETRY_DELAYS]
    )
    secret: Secret | None = Field(
        default=None, min_length=1, description="Signs requests (HMAC-SHA256); write-only"
    )


class CallbackUpdate(BaseModel):
    name: Name | None = None
    enabled: bool | None = None
    note: Note | None = Field(default=None, description='"" removes the note')
    method: Method | None = None
    url: Url | None = None
    query_params: list[NameValue] | None = Field(default=None, max_length=50)
    headers: list[NameValue] | None = Field(default=None, max_length=50)
    content_type: ContentType | None = None
    payload: Payload | None = None
    triggers: Triggers | None = None
    timeout: Timeout | None = None
    retry_delays: Delays | None = None
    secret: Secret | None = Field(
        default=None, description='A new secret, "" removes it (needs admin access)'
    )


class Pair(BaseModel):
    name: str
    value: str


class Callback(BaseModel):
    """A callback as the API shows it: never its secret."""

    id: uuid.UUID
    organization_id: uuid.UUID
    group_id: uuid.UUID
    name: str
    enabled: bool
    note: str | None
    method: str
    url: str
    query_params: list[Pair]
    headers: list[Pair]
    content_type: str
    payload: str
    triggers: list[str]
    timeout: float
    retry_delays: list[float]
    has_secret: bool = Field(description="Whether a secret signs the requests")
    version: int = Field(description="Grows with every change")
    created_at: datetime
    updated_at: datetime
    last_success_at: datetime | None
    last_failure_at: datetime | None
    failure_streak: int = Field(description="Failed attempts since the last success")
    paused_until: datetime | None = Field(description="Paused by the circuit breaker until then")
    state: Literal["healthy", "failing", "paused"]


class PreviewRequest(BaseModel):
    payload: Payload = Field(default="", description="JSONata; empty shows the message as-is")
    message_id: uuid.UUID | None = Field(
        default=None, description="A message of the group; the group's latest when left out"
    )


class TransformProblem(BaseModel):
    message: str
    position: int | None = Field(description="Character offset in the expression")
    code: str | None = Field(description="The JSONata error code, e.g. S0202")


class Preview(BaseModel):
    original: dict[str, Any] | None = Field(description="The document the callback sees")
    transformed: Any = Field(description="The payload's result; null when skipped or failed")
    skipped: bool = Field(description="The result is undefined or null: delivery is skipped")
    error: TransformProblem | None


class MessageChoice(BaseModel):
    message_id: uuid.UUID | None = Field(
        default=None, description="A message of the group; the group's latest when left out"
    )


class TestResponse(BaseModel):
    status: int
    headers: list[list[str]] = Field(description="[name, value] pairs")
    body: str = Field(description="The first 4 KB of the body")


class TestResult(BaseModel):
    ok: bool = Field(description="The endpoint answered 2xx")
    skipped: bool = Field(description="The payload skipped this message: nothing was sent")
    request: dict[str, Any] | None = Field(description="What was sent (secrets redacted)")
    response: TestResponse | None
    error: str | None = Field(description="Why the request failed or was not sent")
    duration_ms: float


# --- helpers -------------------------------------------------------------------


def _view(principal: Principal, row: Mapping[str, Any]) -> Callback:
    paused = row["paused_until"]
    state = "failing" if row["failure_streak"] else "healthy"
    if paused is not None and paused > datetime.now(UTC):
        state = "paused"
    callback = Callback.model_validate({**row, "state": state})
    if principal.level(row["organization_id"]) < WRITE:
        callback.headers = _redacted(callback.headers)
        callback.query_params = _redacted(callback.query_params)
    return callback


def _redacted(pairs: list[Pair]) -> list[Pair]:
    return [Pair(name=p.name, value=REDACTED if looks_secret(p.name) else p.value) for p in pairs]


async def visible_callback(
    ctx: ContextDep, principal: Principal, callback_id: uuid.UUID, minimum: int
) -> dict[str, Any]:
    row = await service.get_callback(ctx.engine, callback_id)
    if row is None:
        raise not_found("callback")
    require_level(principal, row["organization_id"], minimum, "callback")
    return row


def _invalid(err: InvalidCallback) -> ApiError:
    return ApiError(422, "validation_error", str(err), err.problems[0].details())


def _fields(body: CallbackCreate | CallbackUpdate, *, partial: bool) -> dict[str, Any]:
    fields = body.model_dump(exclude_unset=partial)
    fields = {k: v for k, v in fields.items() if v is not None or not partial}
    if "triggers" in fields:
        fields["triggers"] = list(dict.fromkeys(fields["triggers"]))
    for key in ("note", "secret"):
        if fields.get(key) == "":
            fields[key] = None
    return fields


# --- configuration ---------------------------------------------------------------


@router.get(
    "/v1/groups/{group_id}/callbacks",
    summary="A group's callbacks",
    response_model=list[Callback],
    responses={200: {"headers": TOTAL_HEADER}},
)
async def list_callbacks(
    group_id: GroupId,
    principal: PrincipalDep,
    ctx: ContextDep,
    response: Response,
    sort_field: Annotated[
        Literal["name", "created_at", "updated_at"], Query(description="Order by this field")
    ] = "name",
    sort_order: SortOrder = "asc",
    offset: Offset = 0,
    limit: Limit = 100,
) -> list[Callback]:
    await visible_group(ctx, principal, group_id, READ)
    total, rows = await service.list_callbacks(
        ctx.engine,
        group_id,
        sort_field=sort_field,
        descending=sort_order == "desc",
        offset=offset,
        limit=limit,
    )
    set_total(response, total)
    return [_view(principal, row) for row in rows]


@router.post(
    "/v1/groups/{group_id}/callbacks",
    status_code=201,
    summary="Add a callback to a group (write access)",
    response_model=Callback,
    responses=_INVALID,
)
async def create_callback(
    group_id: GroupId, body: CallbackCreate, principal: PrincipalDep, ctx: ContextDep
) -> Callback:
    group = await visible_group(ctx, principal, group_id, WRITE)
    try:
        row = await service.create_callback(
            ctx.engine, group, _fields(body, partial=False), principal.actor
        )
    except InvalidCallback as err:
        raise _invalid(err) from err
    return _view(principal, row)


@router.get("/v1/callbacks/{callback_id}", summary="Show a callback", response_model=Callback)
async def get_callback(
    callback_id: CallbackId, principal: PrincipalDep, ctx: ContextDep
) -> Callback:
    return _view(principal, await visible_callback(ctx, principal, callback_id, READ))


async def _update(
    callback_id: uuid.UUID, body: CallbackUpdate, principal: Principal, ctx: ContextDep
) -> Callback:
    changes = _fields(body, partial=True)
    minimum = ADMIN if "secret" in changes else WRITE
    row = await visible_callback(ctx, principal, callback_id, minimum)
    try:
        updated = await service.update_callback(ctx.engine, row, changes, principal.actor)
    except InvalidCallback as err:
        raise _invalid(err) from err
    return _view(principal, updated)


@router.put(
    "/v1/callbacks/{callback_id}",
    summary="Change a callback (the fields given; the secret needs admin access)",
    response_model=Callback,
    responses=_INVALID,
)
async def put_callback(
    callback_id: CallbackId, body: CallbackUpdate, principal: PrincipalDep, ctx: ContextDep
) -> Callback:
    return await _update(callback_id, body, principal, ctx)


@router.patch(
    "/v1/callbacks/{callback_id}",
    summary="Change some fields of a callback (the secret needs admin access)",
    response_model=Callback,
    responses=_INVALID,
)
async def patch_callback(
    callback_id: CallbackId, body: CallbackUpdate, principal: PrincipalDep, ctx: ContextDep
) -> Callback:
    return await _update(callback_id, body, principal, ctx)


@router.delete(
    "/v1/callbacks/{callback_id}",
    status_code=204,
    summary="Delete a callback (write access; its delivery log stays)",
    response_class=Response,
)
async def delete_callback(
    callback_id: CallbackId, principal: PrincipalDep, ctx: ContextDep
) -> Response:
    row = await visible_callback(ctx, principal, callback_id, WRITE)
    await service.delete_callback(ctx.engine, row, principal.actor)
    return Response(status_code=204)


# --- preview and test ----------------------------------------------------------------


@router.post(
    "/v1/groups/{group_id}/callbacks/preview",
    summary="Transform a message of the group with a JSONata payload (the editor's live view)",
    response_model=Preview,
)
async def preview(
    group_id: GroupId, body: PreviewRequest, principal: PrincipalDep, ctx: ContextDep
) -> Preview:
    """Without `message_id`, the group's latest message. A bad expression or a
    failed evaluation answers 200 with `error` set (message, position, code)."""
    await visible_group(ctx, principal, group_id, READ)
    found = await service.group_message(ctx.engine, group_id, body.message_id)
    result = service.preview(body.payload, found)
    return Preview.model_validate(result, from_attributes=True)


@router.post(
    "/v1/callbacks/{callback_id}/test",
    summary="Send one real request with a message and show the answer (write access)",
    response_model=TestResult,
    responses={409: {"model": ErrorResponse, "description": "The group has no messages"}},
)
async def send_test(
    callback_id: CallbackId,
    principal: PrincipalDep,
    ctx: ContextDep,
    body: Annotated[MessageChoice | None, Body()] = None,
) -> TestResult:
    """Without `message_id`, the group's latest message of the callback's
    triggers (or of any type). No delivery is recorded; the test is audited."""
    row = await visible_callback(ctx, principal, callback_id, WRITE)
    message_id = None if body is None else body.message_id
    found = await service.group_message(ctx.engine, row["group_id"], message_id, row["triggers"])
    if found is None:
        raise conflict(service.NO_MESSAGE)
    config = await service.callback_row(ctx.engine, callback_id)
    if config is None:
        raise not_found("callback")
    sender = Sender(allow_private=ctx.settings.callback_allow_private, user_agent=USER_AGENT)
    try:
        result = await service.send_test(
            CallbackConfig.from_row(config),
            found,
            sender,
            user_agent=USER_AGENT,
            with_raw=principal.level(row["organization_id"]) >= ADMIN,
        )
    finally:
        await sender.close()
    status = None if result.response is None else result.response["status"]
    details = {"message_id": str(found.message["id"]), "status": status, "ok": result.ok}
    await service.record_test(ctx.engine, row, principal.actor, details)
    return TestResult.model_validate(result, from_attributes=True)
