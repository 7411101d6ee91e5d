"""What a delivery passes through the dispatcher as: plain values, no I/O.

Shared by `store` (SQLAlchemy, both databases) and `postgres` (the hot
statements by hand), so that both speak the same values.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["ERROR_CHARS", "CallbackHealth", "Claimed", "NewDelivery", "Outcome"]

ERROR_CHARS = 500


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery this dispatcher holds until `lease_until`."""

    id: uuid.UUID
    callback_id: uuid.UUID
    message_id: uuid.UUID
    organization_id: uuid.UUID
    attempts: int  # before this one


@dataclass(frozen=True, slots=True)
class CallbackHealth:
    id: uuid.UUID
    version: int
    failure_streak: int
    paused_until: datetime | None


@dataclass(slots=True)
class Outcome:
    """One finished attempt, as the dispatcher hands it to `record`.

    `state` is the delivery's next state; `next_attempt_at` is set when it is
    `pending` again (a retry). `endpoint` tells whether the outcome says
    anything about the endpoint's health (a transform error or a skip does not).
    """

    delivery_id: uuid.UUID
    callback_id: uuid.UUID
    at: datetime
    state: str  # succeeded | pending | failed | skipped
    attempts: int  # after this one
    outcome: str  # success | failure | skipped
    endpoint: bool
    next_attempt_at: datetime | None = None
    duration_ms: float | None = None
    request: Any = None
    response: Any = None
    status: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery to create; `held` ones start leased to their creator (the fast path)."""

    id: uuid.UUID
    callback_id: uuid.UUID
    organization_id: uuid.UUID
    message_id: uuid.UUID
    held: bool = False
