"""The dispatcher's hot statements, written for PostgreSQL through asyncpg.

Measured on this machine (`bench/callbacks.py --postgres`), SQLAlchemy's
statement machinery cost the dispatcher 50-100 µs of CPU per delivery and
statement (binding UUIDs and times row by row, insert-many-values, result
processing), as much as everything else a delivery needs together. The five
statements that run for every delivery are therefore written here once, by
hand, with whole batches bound as arrays (`unnest`) or sent with COPY; the
rest of `store` (rare statements, SQLite) stays with SQLAlchemy.

Each function does exactly what its namesake in `store` does; the tests of
`store` run against both databases, so the two stay the same.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from nubes.callbacks.delivery import ERROR_CHARS, Claimed, NewDelivery, Outcome

__all__ = ["claim", "copy_attempts", "insert_deliveries", "load_messages", "update_deliveries"]

ATTEMPT_COLUMNS = (
    "delivery_id", "callback_id", "at", "duration_ms", "outcome", "request", "response", "error",
)  # fmt: skip

_INSERT = """
INSERT INTO deliveries (id, organization_id, callback_id, message_id, state, attempts,
                        next_attempt_at, lease_until, created_at, updated_at)
SELECT u.id, u.organization_id, u.callback_id, u.message_id,
       CASE WHEN u.held THEN 'delivering' ELSE 'pending' END, 0,
       $5, CASE WHEN u.held THEN $6::timestamptz END, $5, $5
FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $7::bool[])
     AS u(id, organization_id, callback_id, message_id, held)
ON CONFLICT (callback_id, message_id) DO NOTHING
RETURNING id
"""

_UPDATE = """
UPDATE deliveries AS d
SET state = u.state, attempts = u.attempts, next_attempt_at = u.next_at,
    lease_until = NULL, last_status = u.status, last_error = u.error, updated_at = u.at
FROM unnest($1::uuid[], $2::text[], $3::int[], $4::timestamptz[], $5::int[], $6::text[],
            $7::timestamptz[]) AS u(id, state, attempts, next_at, status, error, at)
WHERE d.id = u.id AND d.state = 'delivering'
"""

_MESSAGES = """
SELECT m.*, dev.name AS device_name, dev.serial AS device_serial, dev.label AS device_label
FROM messages AS m LEFT JOIN devices AS dev ON dev.id = m.device_id
WHERE m.id = ANY($1::uuid[])
"""

# As `store.claim`: due deliveries of usable callbacks, oldest first, at most
# $3 of one callback, none of the busy ones, locked so that dispatchers side
# by side never take the same delivery.
_CLAIM = """
WITH candidates AS (
    SELECT d.id, d.callback_id, d.next_attempt_at
    FROM deliveries AS d JOIN callbacks AS c ON c.id = d.callback_id
    WHERE ((d.state = 'pending' AND d.next_attempt_at <= $1)
           OR (d.state = 'delivering' AND d.lease_until < $1))
      AND c.enabled AND c.deleted_at IS NULL
      AND (c.paused_until IS NULL OR c.paused_until <= $1)
      AND NOT (d.callback_id = ANY($5::uuid[]))
    ORDER BY d.next_attempt_at
    LIMIT $2 * 4
    FOR UPDATE OF d SKIP LOCKED
), ranked AS (
    SELECT id, next_attempt_at,
           row_number() OVER (PARTITION BY callback_id ORDER BY next_attempt_at) AS rank
    FROM candidates
), chosen AS (
    SELECT id FROM ranked WHERE rank <= $3 ORDER BY next_attempt_at LIMIT $2
)
UPDATE deliveries AS d SET state = 'delivering', lease_until = $4, updated_at = $1
FROM chosen WHERE d.id = chosen.id
RETURNING d.id, d.callback_id, d.message_id, d.organization_id, d.attempts
"""


def _uuid(value: Any) -> uuid.UUID:
    # asyncpg's own UUID type subclasses uuid.UUID (equal, hashing alike, and
    # orjson writes it): no copy, it costs a microsecond and more per id.
    assert isinstance(value, uuid.UUID)
    return value


async def insert_deliveries(
    driver: Any, deliveries: Sequence[NewDelivery], now: datetime, lease_until: datetime
) -> set[uuid.UUID]:
    rows = await driver.fetch(
        _INSERT,
        [n.id for n in deliveries],
        [n.organization_id for n in deliveries],
        [n.callback_id for n in deliveries],
        [n.message_id for n in deliveries],
        now,
        lease_until,
        [n.held for n in deliveries],
    )
    return {_uuid(row[0]) for row in rows}


async def claim(
    driver: Any,
    now: datetime,
    *,
    limit: int,
    per_callback: int,
    lease_until: datetime,
    busy: Sequence[uuid.UUID],
) -> list[Claimed]:
    rows = await driver.fetch(_CLAIM, now, limit, per_callback, lease_until, list(busy))
    return [Claimed(_uuid(r[0]), _uuid(r[1]), _uuid(r[2]), _uuid(r[3]), int(r[4])) for r in rows]


async def load_messages(
    driver: Any, message_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, Any]]:
    messages = {}
    for record in await driver.fetch(_MESSAGES, list(message_ids)):
        row = dict(record.items())
        for key in ("id", "organization_id", "group_id", "device_id", "downlink_id"):
            if row[key] is not None:
                row[key] = _uuid(row[key])
        if isinstance(row["body"], str):
            row["body"] = orjson.loads(row["body"])
        messages[row["id"]] = row
    return messages


def _json_text(value: Any) -> str | None:
    """JSON for a JSONB column, which cannot hold NUL (orjson writes it as an escape)."""
    if value is None:
        return None
    return orjson.dumps(value, default=str).decode().replace("\\u0000", "\\ufffd")


def _cut(text: str | None) -> str | None:
    """An error for a text column, which cannot hold NUL either."""
    return None if text is None else text[:ERROR_CHARS].replace("\x00", "\ufffd")


async def copy_attempts(driver: Any, outcomes: Sequence[Outcome]) -> None:
    records = [
        (o.delivery_id, o.callback_id, o.at, o.duration_ms, o.outcome,
         _json_text(o.request), _json_text(o.response), _cut(o.error))
        for o in outcomes
    ]  # fmt: skip
    await driver.copy_records_to_table(
        "delivery_attempts", records=records, columns=list(ATTEMPT_COLUMNS)
    )


async def update_deliveries(driver: Any, outcomes: Sequence[Outcome]) -> None:
    ordered = sorted(outcomes, key=lambda o: str(o.delivery_id))  # lock order: no deadlocks
    await driver.execute(
        _UPDATE,
        [o.delivery_id for o in ordered],
        [o.state for o in ordered],
        [o.attempts for o in ordered],
        [o.next_attempt_at for o in ordered],
        [o.status for o in ordered],
        [_cut(o.error) for o in ordered],
        [o.at for o in ordered],
    )
