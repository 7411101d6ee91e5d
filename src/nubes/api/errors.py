"""One JSON shape for every error the API answers.

`{"error": {"code": "...", "message": "...", "details": ...}}`: `code` is a
stable machine word (`not_found`, `validation_error`, `unauthorized`,
`forbidden`, `conflict`, `rate_limited`, ...), `message` a sentence for
people, `details` whatever helps (the invalid fields, a position).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from nubes.api.responses import Json
from nubes.errors import DownlinkError, NotAllowed, NotFound, NubesError, StoreError

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Raised by routes and dependencies; becomes the error response."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


def not_found(what: str = "object") -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def forbidden(message: str = "not allowed") -> ApiError:
    return ApiError(403, "forbidden", message)


def bad_request(message: str, details: Any = None) -> ApiError:
    return ApiError(400, "bad_request", message, details)


def conflict(message: str) -> ApiError:
    return ApiError(409, "conflict", message)


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    """The shape of every error response."""

    error: ErrorBody


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> Json:
    body = {"error": {"code": code, "message": message, "details": details}}
    return Json(body, status_code=status, headers=headers)


# Documented on every route: what any request may get back.
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Malformed request"},
    401: {"model": ErrorResponse, "description": "Missing or invalid credentials"},
    403: {"model": ErrorResponse, "description": "The credentials do not allow this"},
    404: {"model": ErrorResponse, "description": "No such object in your organizations"},
    409: {"model": ErrorResponse, "description": "Conflicts with the stored state"},
    413: {"model": ErrorResponse, "description": "Request body too large"},
    422: {"model": ErrorResponse, "description": "Invalid parameters or body"},
    429: {"model": ErrorResponse, "description": "Too many failed attempts; see Retry-After"},
}

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def _plain_errors(errors: Any) -> list[dict[str, Any]]:
    """Validation errors without the parts that are not JSON (exceptions in ctx)."""
    plain = []
    for error in errors:
        item = {k: error[k] for k in ("loc", "msg", "type") if k in error}
        plain.append(item)
    return plain


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Json:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Json:
        errors = _plain_errors(exc.errors())
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(part) for part in first.get("loc", []))
        return error_response(422, "validation_error", f"{where}: {first['msg']}", errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Json:
        code = _STATUS_CODES.get(exc.status_code, "error")
        headers = getattr(exc, "headers", None)
        return error_response(exc.status_code, code, str(exc.detail), None, headers)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> Json:
        return error_response(404, "not_found", str(exc))

    @app.exception_handler(NotAllowed)
    async def _not_allowed(request: Request, exc: NotAllowed) -> Json:
        return error_response(403, "forbidden", str(exc))

    @app.exception_handler(DownlinkError)
    async def _downlink(request: Request, exc: DownlinkError) -> Json:
        return error_response(422, "downlink_error", str(exc))

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> Json:
        return error_response(409, "conflict", str(exc))

    @app.exception_handler(NubesError)
    async def _nubes(request: Request, exc: NubesError) -> Json:
        return error_response(400, "bad_request", str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Json:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal error")
