"""The audit log: who changed what in an organization.

Every write of the API (and the CLI's user and key commands) records one
row in the same transaction as the change, so the log never claims a change
that was rolled back nor misses one that was made. Details never hold a
secret's value: only the names of the fields that changed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from nubes.store import tables as t


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a user, an API key, or Nubes itself (CLI, first start)."""

    type: str  # user | api_key | system
    id: uuid.UUID | None
    label: str


SYSTEM = Actor("system", None, "system")


async def record(
    conn: AsyncConnection,
    actor: Actor,
    organization_id: uuid.UUID,
    action: str,
    object_type: str,
    object_id: Any = None,
    details: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        sa.insert(t.audit_log).values(
            organization_id=organization_id,
            at=datetime.now(UTC),
            actor_type=actor.type,
            actor_id=actor.id,
            actor_label=actor.label[:254],
            action=action,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            details=details,
        )
    )
