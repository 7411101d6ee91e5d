"""The FastAPI application: routers, error shape, body limit, OpenAPI.

`create_app(ctx)` is all a process needs: `bootstrap` serves it with
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
from nubes.api.routers import (
    auth,
    codecs,
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
    """Refuses request bodies above `limit` bytes with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, "payload_too_large", f"request bodies are limited to {self.limit} bytes"
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def create_app(ctx: ApiContext) -> FastAPI:
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
    ):
        app.include_router(module.router)

    @app.get("/health", tags=["health"], summary="Liveness of the API process")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/docs")

    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    return app
