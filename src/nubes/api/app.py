"""The FastAPI application: routers, error shape, body limit, OpenAPI.

`create_app(ctx)` is all a process needs (it serves the built web portal
at `/` too, see `portal`): `bootstrap` serves it with
uvicorn inside `nubes serve` and `nubes api`; tests drive it in-process
(httpx's ASGI transport) or over a real socket.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nubes import __version__
from nubes.api.context import ApiContext
from nubes.api.errors import COMMON_ERRORS, error_response, install_error_handlers
from nubes.api.metrics import HttpStats, RequestMetrics
from nubes.api.portal import Portal, portal_directory
from nubes.api.routers import (
    auth,
    callbacks,
    codecs,
    deliveries,
    devices,
    downlinks,
    groups,
    keys,
    live,
    messages,
    organizations,
    sessions,
)

MAX_BODY_BYTES = 1024 * 1024

DESCRIPTION = """\
The REST API of Nubes, the self-hostable IoT device cloud.

Authenticate with `Authorization: Bearer <token>` (an access token from
`POST /v1/auth/login`, or an API key) or `X-API-Key: <key>`. Every object
belongs to an organization; objects of organizations you do not belong to
answer 404. Errors have one shape: `{"error": {"code", "message", "details"}}`.
Lists are JSON arrays with the total in the `x-total` header.
"""


class BodyLimit:
    """Refuses request bodies above `limit` bytes with 413, declared or streamed.

    A declared `Content-Length` above the limit is refused before reading. A
    body without one (chunked) is read here, up to the limit, and handed on
    whole; past the limit the request is answered 413 at once.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.limit:
                await self._refuse(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        body = await self._read_up_to_limit(receive)
        if body is None:
            await self._refuse(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read_up_to_limit(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)  # the client went away; the app will see it
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, "payload_too_large", f"request bodies are limited to {self.limit} bytes"
        )
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the buffered body first, then what the client sends."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def create_app(ctx: ApiContext, stats: HttpStats | None = None) -> FastAPI:
    """The app; with `stats`, its requests are counted there for /metrics."""
    app = FastAPI(
        title="Nubes",
        version=__version__,
        description=DESCRIPTION,
        responses=COMMON_ERRORS,
    )
    app.state.ctx = ctx
    install_error_handlers(app)
    for module in (
        auth,
        keys,
        organizations,
        groups,
        devices,
        codecs,
        # Before messages: /v1/messages/stream must not be taken for a message id.
        live,
        messages,
        sessions,
        downlinks,
        callbacks,
        deliveries,
    ):
        app.include_router(module.router)

    @app.get("/health", tags=["health"], summary="Liveness of the API process")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/docs")  # when the portal is not built

    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    portal = portal_directory(ctx.settings.portal_dir)
    if portal is not None:
        app.add_middleware(Portal, directory=portal)
    # Added last, so outermost: it counts what the others answer too.
    if stats is not None:  # only a process with an ops port is scraped
        app.add_middleware(RequestMetrics, stats=stats)
    return app
