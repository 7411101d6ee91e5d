"""The shapes the parts of `callbacks` share.

A `CallbackConfig` is a row of the `callbacks` table as the dispatcher and
the API use it; an `OutgoingRequest` is what `request.build_request` makes
and `sender.send` sends; a `SendResult` is what came back (or why nothing did).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

METHODS = ("POST", "GET", "PUT", "PATCH")
CONTENT_TYPES = (
    "application/json",
    "application/x-www-form-urlencoded",
    "application/octet-stream",
)
DEFAULT_TRIGGERS = ("data",)
DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRY_DELAYS = (10, 30, 60, 600, 1800, 3600, 10800, 21600, 43200)
# What the delivery log keeps of a request or response body.
LOGGED_BODY_BYTES = 4096


@dataclass(frozen=True, slots=True)
class NameValue:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class CallbackConfig:
    id: uuid.UUID
    organization_id: uuid.UUID
    group_id: uuid.UUID
    version: int
    name: str
    enabled: bool
    method: str
    url: str
    query_params: tuple[NameValue, ...]
    headers: tuple[NameValue, ...]
    content_type: str
    payload: str  # JSONata; "" sends the message as-is
    triggers: tuple[str, ...] = DEFAULT_TRIGGERS
    timeout: float = DEFAULT_TIMEOUT
    retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS
    secret: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> CallbackConfig:
        return cls(
            id=row["id"],
            organization_id=row["organization_id"],
            group_id=row["group_id"],
            version=row["version"],
            name=row["name"],
            enabled=row["enabled"],
            method=row["method"],
            url=row["url"],
            query_params=tuple(NameValue(p["name"], p["value"]) for p in row["query_params"]),
            headers=tuple(NameValue(h["name"], h["value"]) for h in row["headers"]),
            content_type=row["content_type"],
            payload=row["payload"],
            triggers=tuple(row["triggers"]),
            timeout=float(row["timeout"]),
            retry_delays=tuple(float(d) for d in row["retry_delays"]),
            secret=row["secret"],
        )


@dataclass(frozen=True, slots=True)
class OutgoingRequest:
    method: str
    url: str  # final: query parameters and templates applied
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""
    # Header names whose values the delivery log shows as "[redacted]".
    secret_headers: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class SendResult:
    """An answer (status set) or a failure before one (error set)."""

    status: int | None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""  # at most LOGGED_BODY_BYTES kept
    duration_ms: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300
