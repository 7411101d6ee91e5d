"""Live messages as Server-Sent Events: `GET /v1/messages/stream`.

The stream shows each stored message of its scope (the caller's
organizations, or one organization, group or device) as it arrives:

    id: <message id>
    event: message
    data: <the message, exactly as GET /v1/messages shows it>

Workers publish every stored batch on the `Live` port (see
`nubes.pipeline.live`); a stream filters a batch by scope, then reads those
rows back from the database by id, in one query per batch. That re-checks
the scope against the source of truth and gives the exact shape of the REST
API (label, raw bytes), which the published event leaves out.

Resumption: after a `Last-Event-ID` header (what EventSource sends when it
reconnects) or `last_event_id` parameter, the stream first replays the
scope's messages stored after that one (keyset on `(created_at, id)`), then
goes live. It subscribes before the replay, so nothing falls in between,
and it never sends an id twice (replay and live overlap; batches may be
announced twice). Live delivery is best effort: a stream that fell behind
(its queue overflowed), or whose replay reached `REPLAY_LIMIT`, sends
`event: resync` and ends; the client reconnects with the last id it got
and the replay fills the gap.

Idle streams get a comment (`: ping`) every `sse_heartbeat_seconds`, so
proxies keep them open and clients notice a dead connection. Browsers'
EventSource cannot send headers, so this route alone also accepts the
credential as `?access_token=` (uvicorn's access log is off, so the URL is
not logged by Nubes; proxies in front may log it). Credentials and scope are
checked when the stream opens: a key revoked later keeps its open streams
until they end (at the latest on the next resync or reconnection).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from fastapi.security import APIKeyHeader, APIKeyQuery, HTTPAuthorizationCredentials, HTTPBearer

from nubes.api.context import ApiContext
from nubes.api.deps import ADMIN, READ, ContextDep, Principal, authenticate, require_level
from nubes.api.errors import bad_request, not_found
from nubes.api.views import message_view
from nubes.pipeline.live import Subscription
from nubes.services import queries
from nubes.services.queries import MessageScope

log = logging.getLogger(__name__)

router = APIRouter(tags=["live"])

REPLAY_PAGE = 500
# A replay longer than this ends with `resync`: one connection does bounded work.
REPLAY_LIMIT = 10_000
# How often a quiet stream looks whether its client went away.
DISCONNECT_POLL_SECONDS = 1.0
# Ids already sent, remembered to drop repeats (replay/live overlap, re-announcements).
SENT_MEMORY = 10_000
LABEL_MEMORY = 10_000
RETRY_MILLISECONDS = 2000

_bearer = HTTPBearer(auto_error=False, description="An access token (sign-in) or an API key")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key")
_query_token = APIKeyQuery(
    name="access_token",
    auto_error=False,
    description="An access token or API key in the URL, for EventSource (no headers)",
)


async def stream_principal(
    request: Request,
    ctx: ContextDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
    access_token: Annotated[str | None, Depends(_query_token)],
) -> Principal:
    """The caller, from the usual headers or, for this route only, `?access_token=`."""
    return await authenticate(request, ctx, bearer, api_key or access_token)


StreamPrincipal = Annotated[Principal, Depends(stream_principal)]

_STREAM_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": (
            "An endless `text/event-stream`: `message` events (id = message id, data = "
            "the message as JSON), `resync` (reconnect with Last-Event-ID), `: ping` comments"
        ),
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


@router.get(
    "/v1/messages/stream",
    summary="Stored messages as they arrive (Server-Sent Events)",
    description=(
        "Give at most one of `organization_id`, `group_id`, `device_id`; none means all "
        "your organizations. Resume with the `Last-Event-ID` header or `last_event_id` "
        "(400 when it is not a UUID, 404 when it names no message and is no UUIDv7). "
        "EventSource may pass its credential as `access_token`. Credentials are checked "
        "when the stream opens."
    ),
    response_class=StreamingResponse,
    responses=_STREAM_RESPONSE,
)
async def stream_messages(
    request: Request,
    principal: StreamPrincipal,
    ctx: ContextDep,
    organization_id: Annotated[
        uuid.UUID | None, Query(description="Only this organization's messages")
    ] = None,
    group_id: Annotated[uuid.UUID | None, Query(description="Only this group's messages")] = None,
    device_id: Annotated[uuid.UUID | None, Query(description="Only this device's messages")] = None,
    last_event_id: Annotated[
        uuid.UUID | None, Query(description="Replay the messages stored after this one first")
    ] = None,
    last_event_id_header: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=64,
            description="Set by EventSource on reconnection; like `last_event_id`",
        ),
    ] = None,
) -> StreamingResponse:
    scope = await _scope(ctx, principal, organization_id, group_id, device_id)
    resume = last_event_id or _parse_event_id(last_event_id_header)
    after = None if resume is None else await _cursor(ctx, scope, resume)
    events = LiveStream(ctx, scope, request, principal).events(after)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events, media_type="text/event-stream", headers=headers)


async def _scope(
    ctx: ApiContext,
    principal: Principal,
    organization_id: uuid.UUID | None,
    group_id: uuid.UUID | None,
    device_id: uuid.UUID | None,
) -> MessageScope:
    """The stream's scope; 404 for objects outside the caller's organizations."""
    given = [value for value in (organization_id, group_id, device_id) if value is not None]
    if len(given) > 1:
        raise bad_request("give at most one of organization_id, group_id, device_id")
    if device_id is not None:
        device = await queries.device_by_id(ctx.engine, device_id)
        owner = _owner(principal, None if device is None else device["organization_id"], "device")
        return MessageScope(frozenset({owner}), device_id=device_id)
    if group_id is not None:
        found = await queries.group_organization(ctx.engine, group_id)
        owner = _owner(principal, found, "group")
        return MessageScope(frozenset({owner}), group_id=group_id)
    if organization_id is not None:
        require_level(principal, organization_id, READ, "organization")
        return MessageScope(frozenset({organization_id}))
    return MessageScope(frozenset(principal.organizations(READ)))


def _owner(principal: Principal, organization_id: uuid.UUID | None, what: str) -> uuid.UUID:
    if organization_id is None:
        raise not_found(what)
    require_level(principal, organization_id, READ, what)
    return organization_id


def _parse_event_id(value: str | None) -> uuid.UUID | None:
    if value is None or not value.strip():
        return None
    try:
        return uuid.UUID(value.strip())
    except ValueError as err:
        raise bad_request("Last-Event-ID is not a message id") from err


async def _cursor(
    ctx: ApiContext, scope: MessageScope, message_id: uuid.UUID
) -> tuple[datetime, uuid.UUID]:
    """Where to replay from: the message's position, or the time in its UUIDv7.

    A message that is gone (or not in scope) still names its time, as message
    ids are UUIDv7 made from the time the gateway received the message.
    """
    position = await queries.message_position(ctx.engine, scope, message_id)
    if position is not None:
        return position
    if message_id.version != 7:
        raise not_found("message")
    millis = message_id.int >> 80
    try:
        return datetime.fromtimestamp(millis / 1000, UTC), message_id
    except (ValueError, OverflowError, OSError):
        raise not_found("message") from None


class _Recent:
    """A bounded set that forgets its oldest members."""

    def __init__(self, capacity: int) -> None:
        self._items: OrderedDict[uuid.UUID, None] = OrderedDict()
        self._capacity = capacity

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def add(self, item: uuid.UUID) -> None:
        self._items[item] = None
        if len(self._items) > self._capacity:
            self._items.popitem(last=False)


def sse_event(event: str, data: bytes, event_id: str | None = None) -> bytes:
    """One event in the text/event-stream format (data is one JSON line)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\n".encode() + b"data: " + data + b"\n\n"


def _resync(reason: str) -> bytes:
    return sse_event("resync", orjson.dumps({"reason": reason}))


PING = b": ping\n\n"


class LiveStream:
    """One client's stream: replay, then live batches, heartbeats while idle."""

    def __init__(
        self, ctx: ApiContext, scope: MessageScope, request: Request, principal: Principal
    ) -> None:
        self._ctx = ctx
        self._principal = principal
        self._scope = scope
        self._request = request
        self._sent = _Recent(SENT_MEMORY)
        self._labels: dict[uuid.UUID, str | None] = {}
        self._ended = False

    async def events(self, after: tuple[datetime, uuid.UUID] | None) -> AsyncIterator[bytes]:
        # Subscribed before the replay: what is stored meanwhile is queued, not lost.
        subscription = self._ctx.live.subscribe()
        try:
            yield f"retry: {RETRY_MILLISECONDS}\n\n".encode()
            if after is not None:
                async for chunk in self._replay(after):
                    yield chunk
            if not self._ended:
                async for chunk in self._follow(subscription):
                    yield chunk
        finally:
            subscription.close()

    async def _replay(self, after: tuple[datetime, uuid.UUID]) -> AsyncIterator[bytes]:
        replayed = 0
        while True:
            rows = await queries.messages_after(self._ctx.engine, self._scope, after, REPLAY_PAGE)
            for chunk in await self._render(rows):
                yield chunk
            replayed += len(rows)
            if len(rows) < REPLAY_PAGE or await self._request.is_disconnected():
                return
            if replayed >= REPLAY_LIMIT:
                self._ended = True
                yield _resync("replay_limit")
                return
            after = (rows[-1]["created_at"], rows[-1]["id"])

    async def _follow(self, subscription: Subscription) -> AsyncIterator[bytes]:
        heartbeat = self._ctx.settings.sse_heartbeat_seconds
        last_sent = time.monotonic()
        while True:
            if subscription.overflowed:
                yield _resync("overflow")
                return
            quiet = time.monotonic() - last_sent
            wait = max(0.01, min(heartbeat - quiet, DISCONNECT_POLL_SECONDS))
            body = await subscription.next(wait)
            if await self._request.is_disconnected():
                return
            if body is not None:
                for chunk in await self._batch(body):
                    yield chunk
                    last_sent = time.monotonic()
            if time.monotonic() - last_sent >= heartbeat:
                yield PING
                last_sent = time.monotonic()

    async def _batch(self, body: bytes) -> list[bytes]:
        """The events of a published batch that are in scope and not sent yet."""
        ids = [
            message_id
            for event in _stored_events(body)
            if self._scope.matches(event)
            and (message_id := queries.as_uuid(event.get("id"))) is not None
            and message_id not in self._sent
        ]
        if not ids:
            return []
        rows = await queries.messages_by_ids(self._ctx.engine, self._scope, ids)
        return await self._render(rows)

    async def _render(self, rows: list[dict[str, Any]]) -> list[bytes]:
        await self._learn_labels(row["device_id"] for row in rows)
        chunks = []
        for row in rows:
            message_id = uuid.UUID(str(row["id"]))
            if message_id in self._sent:
                continue
            self._sent.add(message_id)
            admin = self._principal.level(row["organization_id"]) >= ADMIN
            view = message_view(row, self._labels.get(row["device_id"]), secrets=admin)
            data = orjson.dumps(view, option=orjson.OPT_UTC_Z, default=str)
            chunks.append(sse_event("message", data, str(message_id)))
        return chunks

    async def _learn_labels(self, device_ids: Iterable[uuid.UUID]) -> None:
        missing = {device_id for device_id in device_ids if device_id not in self._labels}
        if not missing:
            return
        if len(self._labels) + len(missing) > LABEL_MEMORY:
            self._labels.clear()
        self._labels.update(await queries.device_labels(self._ctx.engine, missing))


def _stored_events(body: bytes) -> list[Mapping[str, Any]]:
    """The messages of a `{"v": 1, "messages": [...]}` body; nothing if malformed."""
    try:
        payload = orjson.loads(body)
        events = payload["messages"] if payload.get("v") == 1 else []
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
        log.warning("live: dropped a malformed batch of %d bytes", len(body))
        return []
    return [event for event in events if isinstance(event, Mapping)]
