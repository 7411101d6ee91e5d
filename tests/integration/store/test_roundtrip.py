"""Rows go into every table and come back equal, on SQLite and PostgreSQL.

What is checked is what differs between the backends: UUIDs (native on
PostgreSQL, text on SQLite), timezone-aware UTC datetimes (SQLite has no
time zones), JSON (JSONB on PostgreSQL), bytes, booleans, and the log's
auto-incremented id. Then the hot path's batched insert of 1000 messages.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection

from nubes.store import tables as t
from nubes.store.database import Database

pytestmark = pytest.mark.integration

NOW = datetime(2025, 6, 30, 23, 59, 58, 123456, tzinfo=UTC)
ORG, GROUP, DEVICE, USER = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
CALLBACK, DELIVERY = uuid.uuid4(), uuid.uuid4()
SESSION = 0xFFFFFFFF  # uint32: the largest session id a device can be told
BODY = {"temperature": 21.5, "tags": ["a", "ü"], "nested": {"ok": True, "n": None}}

ROWS: list[tuple[sa.Table, dict[str, Any]]] = [
    (t.organizations, {"id": ORG, "name": "Acme", "created_at": NOW}),
    (t.groups, {"id": GROUP, "organization_id": ORG, "name": "roof", "created_at": NOW}),
    (
        t.devices,
        {
            "id": DEVICE,
            "organization_id": ORG,
            "group_id": GROUP,
            "serial": 0xFFFFFFFF,
            "claim_token": bytes(range(16)),
            "psk": b"\x00\xff" * 16,
            "name": "CHESTER",
            "enabled": False,
            "attributes": BODY,
            "config_lines": ["app config interval 60"],
            "decoder_hash": "0123456789abcdef",
            "last_seen_at": NOW,
            "created_at": NOW,
            "changed_at": NOW,
        },
    ),
    (
        t.codecs,
        {
            "id": uuid.uuid4(),
            "organization_id": ORG,
            "hash": "fedcba9876543210",
            "kind": "decoder",
            "name": "clime",
            "document": {"schema": [{"$tupleof": []}]},
            "cbor": b"\xa1\x00\x01",
            "yaml": "schema: []\n",
            "source": "device",
            "created_at": NOW,
            "updated_at": NOW,
        },
    ),
    (
        t.sessions,
        {
            "id": SESSION,
            "device_id": DEVICE,
            "organization_id": ORG,
            "envelope": "dtls",
            "remote_address": "2001:db8::1",
            "remote_port": 5684,
            "started_at": NOW,
            "last_activity_at": NOW + timedelta(seconds=1),
            "bytes_in": 2**40,
        },
    ),
    (
        t.session_log,
        {
            "session_id": SESSION,
            "device_id": DEVICE,
            "at": NOW,
            "direction": "in",
            "envelope": "raw",
            "remote": "192.0.2.1:5002",
            "flags": 3,
            "seq": 7,
            "size": 64,
            "outcome": "ok",
        },
    ),
    (
        t.messages,
        {
            "id": uuid.uuid4(),
            "created_at": NOW,
            "organization_id": ORG,
            "group_id": GROUP,
            "device_id": DEVICE,
            "session_id": SESSION,
            "type": "data",
            "direction": "up",
            "body": BODY,
            "raw": b"\x00\x01\xfe\xff",
            "codec_hash": "0123456789abcdef",
            "decode_state": "decoded",
        },
    ),
    (
        t.downlinks,
        {
            "id": uuid.uuid4(),
            "organization_id": ORG,
            "device_id": DEVICE,
            "kind": "shell",
            "request": {"commands": ["app show"]},
            "message": b"\x07\x00",
            "shell_id": uuid.uuid4().bytes,
            "state": "pending",
            "created_at": NOW,
            "updated_at": NOW,
            "expires_at": NOW + timedelta(days=30),
        },
    ),
    (t.pipeline_batches, {"id": uuid.uuid4(), "stored_at": NOW}),
    (
        t.users,
        {
            "id": USER,
            "email": "ada@example.com",
            "password_hash": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
            "totp_secret": "JBSWY3DPEHPK3PXP",
            "totp_enabled": True,
            "created_at": NOW,
            "updated_at": NOW,
        },
    ),
    (t.memberships, {"user_id": USER, "organization_id": ORG, "role": "owner", "created_at": NOW}),
    (
        t.api_keys,
        {
            "id": uuid.uuid4(),
            "organization_id": ORG,
            "name": "ci",
            "prefix": "nbk_abcdefgh",
            "secret_hash": "ab" * 32,
            "scope": "write",
            "created_by": USER,
            "created_at": NOW,
        },
    ),
    (
        t.access_tokens,
        {
            "id": uuid.uuid4(),
            "user_id": USER,
            "secret_hash": "cd" * 32,
            "created_at": NOW,
            "expires_at": NOW + timedelta(hours=12),
        },
    ),
    (
        t.audit_log,
        {
            "organization_id": ORG,
            "at": NOW,
            "actor_type": "user",
            "actor_id": USER,
            "actor_label": "ada@example.com",
            "action": "device.update",
            "object_type": "device",
            "object_id": str(DEVICE),
            "details": {"fields": ["name"]},
        },
    ),
    (
        t.callbacks,
        {
            "id": CALLBACK,
            "organization_id": ORG,
            "group_id": GROUP,
            "name": "to the farm's server",
            "enabled": True,
            "method": "POST",
            "url": "https://example.com/hook?x={{data.t}}",
            "query_params": [{"name": "a", "value": "b"}],
            "headers": [{"name": "Authorization", "value": "Bearer x"}],
            "content_type": "application/json",
            "payload": '{"t": data.thermometer.temperature}',
            "triggers": ["data", "session"],
            "timeout": 10.0,
            "retry_delays": [10, 30, 60],
            "secret": "s3cret",
            "version": 3,
            "created_at": NOW,
            "updated_at": NOW,
            "failure_streak": 2,
            "paused_until": NOW + timedelta(minutes=1),
        },
    ),
    (
        t.deliveries,
        {
            "id": DELIVERY,
            "organization_id": ORG,
            "callback_id": CALLBACK,
            "message_id": uuid.uuid4(),
            "state": "pending",
            "attempts": 2,
            "next_attempt_at": NOW + timedelta(seconds=30),
            "last_status": 503,
            "last_error": "HTTP 503",
            "created_at": NOW,
            "updated_at": NOW,
        },
    ),
    (
        t.delivery_attempts,
        {
            "delivery_id": DELIVERY,
            "callback_id": CALLBACK,
            "at": NOW,
            "duration_ms": 12.5,
            "outcome": "failure",
            "request": {"method": "POST", "url": "https://example.com/hook", "headers": []},
            "response": {"status": 503, "headers": [], "body": "busy"},
            "error": "HTTP 503",
        },
    ),
]


async def _insert_and_read(
    connection: AsyncConnection, table: sa.Table, row: dict[str, Any]
) -> Any:
    result = await connection.execute(sa.insert(table), [row])
    key = result.inserted_primary_key
    assert key is not None
    where = [column == value for column, value in zip(table.primary_key, key, strict=True)]
    return (await connection.execute(sa.select(table).where(*where))).one()


async def test_one_row_per_table_comes_back_equal(migrated_db: Database) -> None:
    assert {table.name for table, _ in ROWS} == set(t.metadata.tables)
    async with migrated_db.engine.begin() as connection:
        for table, row in ROWS:
            stored = (await _insert_and_read(connection, table, row))._asdict()
            assert {name: stored[name] for name in row} == row, table.name


async def test_types_come_back_as_python_values(migrated_db: Database) -> None:
    async with migrated_db.engine.begin() as connection:
        for table, row in ROWS[:3]:
            await connection.execute(sa.insert(table), [row])
        device = (await connection.execute(sa.select(t.devices))).one()
    assert isinstance(device.id, uuid.UUID)
    assert device.created_at.tzinfo is UTC
    assert device.created_at == NOW
    assert isinstance(device.claim_token, bytes)
    assert device.enabled is False
    assert device.label is None
    assert device.session_id is None


async def test_the_log_id_is_generated_in_order(migrated_db: Database) -> None:
    log_row = dict(ROWS[5][1])
    async with migrated_db.engine.begin() as connection:
        result = await connection.execute(
            sa.insert(t.session_log).returning(t.session_log.c.id), [log_row, log_row]
        )
        ids = list(result.scalars())
    assert ids[0] > 0
    assert ids[1] > ids[0]


def _messages(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": uuid.uuid4(),
            "created_at": NOW + timedelta(milliseconds=n),
            "organization_id": ORG,
            "group_id": GROUP,
            "device_id": DEVICE,
            "type": "data",
            "direction": "up",
            "body": {"n": n},
            "raw": n.to_bytes(4, "big"),
        }
        for n in range(count)
    ]


@contextmanager
def _statements(database: Database) -> Iterator[list[bool]]:
    """Collect one entry per statement sent to the driver (True if executemany)."""
    sent: list[bool] = []

    def record(*args: Any) -> None:
        sent.append(bool(args[-1]))

    event.listen(database.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", record)


async def _latest(connection: AsyncConnection, limit: int) -> list[Any]:
    query = (
        sa.select(t.messages.c.body, t.messages.c.created_at)
        .where(t.messages.c.device_id == DEVICE)
        .order_by(t.messages.c.created_at.desc(), t.messages.c.id.desc())
        .limit(limit)
    )
    return list(await connection.execute(query))


async def test_a_thousand_messages_in_one_statement(migrated_db: Database) -> None:
    rows = _messages(1000)
    async with migrated_db.engine.begin() as connection:
        with _statements(migrated_db) as sent:
            await connection.execute(sa.insert(t.messages).values(rows))
        assert sent == [False]
        count = await connection.scalar(sa.select(sa.func.count()).select_from(t.messages))
        latest = await _latest(connection, 2)
    assert count == 1000
    assert [row.body for row in latest] == [{"n": 999}, {"n": 998}]
    assert latest[0].created_at == NOW + timedelta(milliseconds=999)


async def test_a_thousand_messages_in_one_executemany(migrated_db: Database) -> None:
    async with migrated_db.engine.begin() as connection:
        with _statements(migrated_db) as sent:
            await connection.execute(sa.insert(t.messages), _messages(1000))
        assert sent == [True]
        count = await connection.scalar(sa.select(sa.func.count()).select_from(t.messages))
    assert count == 1000
