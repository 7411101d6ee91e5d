"""Callbacks as the API keeps them: configuration, checks, preview and test.

A callback's configuration is checked whole before it is stored (`check`):
the JSONata payload must compile, the URL must be `http(s)://` with a host,
templates (`{{path}}`) in the URL, query parameter values and header values
must parse, header names must be RFC 7230 tokens other than those Nubes
sets itself (`request.RESERVED_HEADERS`), and header values visible ASCII
(CR or LF would split the request; the sender refuses anything else). A problem is reported with
the field and the character position, so the editor can point at it.

Every change bumps `version` (dispatchers compile the payload again when it
grows) and `updated_at`; deleting is soft (`deleted_at`), so the delivery log
of a deleted callback stays readable from its messages. The `secret` is
never part of a view (`has_secret` tells whether one is set) nor of the
audit log; neither are header values, which often hold tokens.

The delivery log and replays are `services.deliveries`'s.

`preview` and `send_test` run a message through the same steps as the
dispatcher (`transform`, `request`, `sender`), without making a delivery.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from nubes.callbacks.model import CallbackConfig, SendResult
from nubes.callbacks.request import RESERVED_HEADERS, RequestError, build_request, log_request
from nubes.callbacks.sender import Sender
from nubes.callbacks.transform import (
    SKIP,
    TransformError,
    check_template,
    compile_payload,
    message_document,
)
from nubes.errors import NotFound, NubesError
from nubes.ids import uuid7
from nubes.services import audit
from nubes.store import tables as t

CALLBACK_SORT_FIELDS = ("name", "created_at", "updated_at")
WAITING_STATES = ("pending", "delivering")  # of deliveries; cancelled when deleted

_c, _d = t.callbacks, t.deliveries
_VIEW_COLUMNS = [
    *(column for column in _c.c if column.name != "secret"),
    _c.c.secret.is_not(None).label("has_secret"),
]

# RFC 7230 section 3.2.6: the characters of a token; and what a header value
# may hold as the sender writes it (visible ASCII, spaces and tabs).
_TOKEN_CHAR = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]")
_VALUE_CHAR = re.compile(r"[\t\x20-\x7e]")


# --- checks ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """What is wrong with one field, and where in its text (None: the whole)."""

    field: str
    message: str
    position: int | None
    code: str

    def details(self) -> dict[str, Any]:
        return {"field": self.field, "position": self.position, "code": self.code}


class InvalidCallback(NubesError):
    """A configuration that cannot be stored; `problems` says where."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        first = problems[0]
        super().__init__(f"{first.field}: {first.message}")
        self.problems = list(problems)


def check(fields: Mapping[str, Any]) -> list[Problem]:
    """The problems of the fields given (an update names only some)."""
    problems: list[Problem | None] = []
    if "payload" in fields:
        problems.append(_check_payload(fields["payload"]))
    if "url" in fields:
        problems.append(_check_url(fields["url"]))
    for i, pair in enumerate(fields.get("query_params") or ()):
        problems.append(_check_text(f"query_params[{i}].name", pair["name"]))
        problems.append(_check_text(f"query_params[{i}].value", pair["value"]))
        problems.append(_check_template(f"query_params[{i}].value", pair["value"]))
    for i, pair in enumerate(fields.get("headers") or ()):
        problems.append(_check_header_name(f"headers[{i}].name", pair["name"]))
        problems.append(_check_header_value(f"headers[{i}].value", pair["value"]))
    return [problem for problem in problems if problem is not None]


def _check_payload(payload: str) -> Problem | None:
    if not payload.strip():
        return None
    try:
        compile_payload(payload)
    except TransformError as err:
        return Problem("payload", err.message, err.position, err.code or "invalid_payload")
    return None


def _check_template(field: str, text: str) -> Problem | None:
    try:
        check_template(text)
    except TransformError as err:
        return Problem(field, err.message, err.position, err.code or "invalid_template")
    return None


def _check_text(field: str, text: str) -> Problem | None:
    position = text.find("\x00")
    if position == -1:
        return None
    return Problem(field, "NUL characters are not allowed", position, "invalid_text")


def _check_url(url: str) -> Problem | None:
    for i, char in enumerate(url):
        if char.isspace() or ord(char) < 0x20 or char == "\x7f":
            return Problem("url", f"a URL may not contain {char!r}", i, "invalid_url")
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.lower() not in ("http", "https"):
        return Problem("url", "the URL must start with http:// or https://", 0, "invalid_url")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    host = authority.rpartition("@")[2]
    if not host or host.startswith(":"):
        return Problem("url", "the URL has no host", len(scheme) + 3, "invalid_url")
    return _check_template("url", url)


def _check_header_name(field: str, name: str) -> Problem | None:
    for i, char in enumerate(name):
        if not _TOKEN_CHAR.fullmatch(char):
            message = f"a header name may not contain {char!r}"
            return Problem(field, message, i, "invalid_header_name")
    if name.lower() in RESERVED_HEADERS:
        message = f"{name} is set by Nubes and cannot be configured"
        return Problem(field, message, None, "reserved_header")
    return None


def _check_header_value(field: str, value: str) -> Problem | None:
    for i, char in enumerate(value):
        if not _VALUE_CHAR.fullmatch(char):
            message = f"a header value may hold only ASCII text, spaces and tabs, not {char!r}"
            return Problem(field, message, i, "invalid_header_value")
    return _check_template(field, value)


def ensure_valid(fields: Mapping[str, Any]) -> None:
    problems = check(fields)
    if problems:
        raise InvalidCallback(problems)


# --- callbacks ---------------------------------------------------------------


async def find_callback(conn: AsyncConnection, callback_id: uuid.UUID) -> dict[str, Any] | None:
    """A callback that is not deleted, without its secret; None when there is none."""
    query = sa.select(*_VIEW_COLUMNS).where(_c.c.id == callback_id, _c.c.deleted_at.is_(None))
    row = (await conn.execute(query)).mappings().first()
    return None if row is None else dict(row)


async def get_callback(engine: AsyncEngine, callback_id: uuid.UUID) -> dict[str, Any] | None:
    async with engine.connect() as conn:
        return await find_callback(conn, callback_id)


async def callback_row(engine: AsyncEngine, callback_id: uuid.UUID) -> dict[str, Any] | None:
    """The whole row, secret included (for sending a test request)."""
    query = sa.select(_c).where(_c.c.id == callback_id, _c.c.deleted_at.is_(None))
    async with engine.connect() as conn:
        row = (await conn.execute(query)).mappings().first()
    return None if row is None else dict(row)


async def list_callbacks(
    engine: AsyncEngine,
    group_id: uuid.UUID,
    *,
    sort_field: str = "name",
    descending: bool = False,
    offset: int = 0,
    limit: int = 100,
) -> tuple[int, list[dict[str, Any]]]:
    where = [_c.c.group_id == group_id, _c.c.deleted_at.is_(None)]
    column = _c.c[sort_field]
    query = (
        sa.select(*_VIEW_COLUMNS)
        .where(*where)
        .order_by(column.desc() if descending else column.asc(), _c.c.id)
        .offset(offset)
        .limit(limit)
    )
    async with engine.connect() as conn:
        total = await conn.scalar(sa.select(sa.func.count()).select_from(_c).where(*where))
        rows = [dict(row) for row in (await conn.execute(query)).mappings()]
    return int(total or 0), rows


async def create_callback(
    engine: AsyncEngine, group: Mapping[str, Any], fields: Mapping[str, Any], actor: audit.Actor
) -> dict[str, Any]:
    """Stores a new callback of the group; InvalidCallback when `check` finds problems."""
    ensure_valid(fields)
    callback_id, now = uuid.uuid4(), datetime.now(UTC)
    organization_id = group["organization_id"]
    values = {
        **fields,
        "id": callback_id,
        "organization_id": organization_id,
        "group_id": group["id"],
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }
    async with engine.begin() as conn:
        await conn.execute(sa.insert(_c).values(**values))
        details = {
            "name": fields["name"],
            "group_id": str(group["id"]),
            "fields": sorted(fields),
            "has_secret": fields.get("secret") is not None,
        }
        await audit.record(
            conn, actor, organization_id, "callback.create", "callback", callback_id, details
        )
        created = await find_callback(conn, callback_id)
    assert created is not None
    return created


async def update_callback(
    engine: AsyncEngine,
    callback: Mapping[str, Any],
    changes: Mapping[str, Any],
    actor: audit.Actor,
) -> dict[str, Any]:
    """Changes the fields given; every change bumps `version` and `updated_at`."""
    ensure_valid(changes)
    callback_id = callback["id"]
    async with engine.begin() as conn:
        if changes:
            bump = {"version": _c.c.version + 1, "updated_at": datetime.now(UTC)}
            done = await conn.execute(
                sa.update(_c)
                .where(_c.c.id == callback_id, _c.c.deleted_at.is_(None))
                .values(**changes, **bump)
            )
            if done.rowcount == 0:
                raise NotFound("callback not found")
            details = {"fields": sorted(changes)}
            await audit.record(
                conn,
                actor,
                callback["organization_id"],
                "callback.update",
                "callback",
                callback_id,
                details,
            )
        updated = await find_callback(conn, callback_id)
    if updated is None:
        raise NotFound("callback not found")
    return updated


async def delete_callback(
    engine: AsyncEngine, callback: Mapping[str, Any], actor: audit.Actor
) -> None:
    """Soft delete: no new deliveries, waiting ones `cancelled`; the log stays readable.

    A delivery in flight at that moment finishes; its outcome is logged as an
    attempt, and its state stays `cancelled`.
    """
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        done = await conn.execute(
            sa.update(_c)
            .where(_c.c.id == callback["id"], _c.c.deleted_at.is_(None))
            .values(deleted_at=now, updated_at=now, enabled=False, version=_c.c.version + 1)
        )
        if done.rowcount == 0:
            raise NotFound("callback not found")
        await conn.execute(
            sa.update(_d)
            .where(_d.c.callback_id == callback["id"], _d.c.state.in_(WAITING_STATES))
            .values(
                state="cancelled",
                lease_until=None,
                last_error="the callback was deleted",
                updated_at=now,
            )
        )
        details = {"name": callback["name"]}
        await audit.record(
            conn,
            actor,
            callback["organization_id"],
            "callback.delete",
            "callback",
            callback["id"],
            details,
        )


async def record_test(
    engine: AsyncEngine, callback: Mapping[str, Any], actor: audit.Actor, details: dict[str, Any]
) -> None:
    async with engine.begin() as conn:
        await audit.record(
            conn,
            actor,
            callback["organization_id"],
            "callback.test",
            "callback",
            callback["id"],
            details,
        )


# --- the messages callbacks see ------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageAndDevice:
    message: dict[str, Any]  # a row of `messages` with the device's `label`
    device: dict[str, Any]  # id, name, serial, label


async def group_message(
    engine: AsyncEngine,
    group_id: uuid.UUID,
    message_id: uuid.UUID | None,
    types: Sequence[str] = (),
) -> MessageAndDevice | None:
    """The message (NotFound unless it is of the group), or the group's latest.

    The latest is the latest of `types` when the group has one, else the
    latest of any type; None when the group has no messages at all.
    """
    m = t.messages
    async with engine.connect() as conn:
        if message_id is not None:
            query = sa.select(m).where(m.c.id == message_id)
            row = (await conn.execute(query)).mappings().first()
            if row is None or row["group_id"] != group_id:
                raise NotFound("message not found")
        else:
            row = await _latest(conn, group_id, types) if types else None
            row = row or await _latest(conn, group_id, ())
            if row is None:
                return None
        return await _with_device(conn, dict(row))


async def _latest(conn: AsyncConnection, group_id: uuid.UUID, types: Sequence[str]) -> Any:
    m = t.messages
    query = sa.select(m).where(m.c.group_id == group_id)
    if types:
        query = query.where(m.c.type.in_(list(types)))
    query = query.order_by(m.c.created_at.desc(), m.c.id.desc()).limit(1)
    return (await conn.execute(query)).mappings().first()


async def _with_device(conn: AsyncConnection, message: dict[str, Any]) -> MessageAndDevice:
    d = t.devices
    query = sa.select(d.c.id, d.c.name, d.c.serial, d.c.label).where(d.c.id == message["device_id"])
    found = (await conn.execute(query)).mappings().first()
    device = dict(found) if found is not None else {"id": message["device_id"]}
    device = {"name": None, "serial": None, "label": None, **device}
    message["label"] = device["label"]
    return MessageAndDevice(message, device)


# --- preview and test ------------------------------------------------------------

NO_MESSAGE = "the group has no messages yet: a device of the group must send one first"
SKIPPED = "the payload is undefined or null for this message: the delivery would be skipped"


@dataclass(frozen=True, slots=True)
class Preview:
    """The editor's live view: the document a callback sees and what the payload makes of it."""

    original: dict[str, Any] | None
    transformed: Any
    skipped: bool
    error: dict[str, Any] | None


def preview(payload: str, found: MessageAndDevice | None) -> Preview:
    """`payload` over the message; errors are part of the answer, not raised."""
    document = None if found is None else message_document(found.message, found.device)
    try:
        compiled = compile_payload(payload)
        if document is None:
            error = {"message": NO_MESSAGE, "position": None, "code": "no_message"}
            return Preview(None, None, False, error)
        result = compiled.apply(document)
    except TransformError as err:
        return Preview(document, None, False, _transform_error(err))
    skipped = result is SKIP
    return Preview(document, None if skipped else result, skipped, None)


def _transform_error(err: TransformError) -> dict[str, Any]:
    return {"message": err.message, "position": err.position, "code": err.code}


@dataclass(frozen=True, slots=True)
class TestResult:
    """What one test request sent and got back (or why nothing was sent)."""

    request: dict[str, Any] | None
    response: dict[str, Any] | None
    error: str | None
    duration_ms: float
    skipped: bool = False

    @property
    def ok(self) -> bool:
        status = None if self.response is None else self.response["status"]
        return status is not None and 200 <= status < 300


async def send_test(
    callback: CallbackConfig,
    found: MessageAndDevice,
    sender: Sender,
    *,
    user_agent: str,
    with_raw: bool,
) -> TestResult:
    """One real request for the message, as the dispatcher would send it.

    `with_raw` False leaves a session message's bytes out (they hold the
    Bluetooth passkey, which only admins may see, and the answer shows the body).
    """
    document = message_document(found.message, found.device)
    try:
        transformed = compile_payload(callback.payload).apply(document)
    except TransformError as err:
        return TestResult(None, None, f"the payload failed: {err.message}", 0.0)
    if transformed is SKIP:
        return TestResult(None, None, SKIPPED, 0.0, skipped=True)
    message = found.message
    shown = with_raw or message["type"] != "session"
    raw: bytes = (message["raw"] or b"") if shown else b""
    try:
        request = build_request(
            callback,
            document,
            transformed,
            raw,
            delivery_id=uuid7(),
            message_id=message["id"],
            timestamp=int(time.time()),
            user_agent=user_agent,
        )
    except RequestError as err:
        return TestResult(None, None, str(err), 0.0)
    result = await sender.send(request, callback.timeout)
    return TestResult(log_request(request), _response(result), result.error, result.duration_ms)


def _response(result: SendResult) -> dict[str, Any] | None:
    if result.status is None:
        return None
    return {
        "status": result.status,
        "headers": [[name, value] for name, value in result.headers],
        "body": result.body.decode("utf-8", "replace"),
    }
