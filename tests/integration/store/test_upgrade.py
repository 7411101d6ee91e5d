"""An upgrade of a database the previous release filled: rows survive, the app works.

On each backend: migrate to the revision before head, fill every table
with representative rows through SQL of that schema (only the columns it
had), migrate to head, then compare every table row by row, in primary key
order, on the columns both schemas have; new columns must hold their
defaults, and the API must serve the old data. A new table or column makes
this test fail until it says what the upgrade should leave there.
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from nubes.api.app import create_app
from nubes.api.context import ApiContext
from nubes.config import Settings
from nubes.pipeline.cache import MemoryCache
from nubes.pipeline.live import MemoryLive
from nubes.services import auth
from nubes.store import tables as t
from nubes.store.database import Database, head_revision

PREVIOUS = "0005"
# Columns the upgrade to head adds, and the value an old row must get.
ADDED = {("organizations", "message_retention_days"): 90}
T0 = datetime(2026, 10, 1, 8, 30, 15, 123456, tzinfo=UTC)
ORG, GROUP, DEVICE, USER, CALLBACK = (uuid.uuid4() for _ in range(5))
MESSAGES = [uuid.uuid4() for _ in range(3)]
DELIVERY, DOWNLINK = uuid.uuid4(), uuid.uuid4()
BODIES: list[Any] = [
    {"temperature": 21.5, "text": "Zürich ✓", "nested": {"list": [1, None, True]}},
    None,
    {"big": 2**53, "empty": {}, "quote": "\"'\\"},
]


def _old_rows() -> dict[str, list[dict[str, Any]]]:
    """One or more rows of every table, as the previous release would write them."""
    at = {"created_at": T0}
    return {
        "organizations": [{"id": ORG, "name": "upgraded", **at}],
        "groups": [{"id": GROUP, "organization_id": ORG, "name": "default", **at}],
        "devices": [
            {
                "id": DEVICE,
                "organization_id": ORG,
                "group_id": GROUP,
                "serial": 2**40 + 7,
                "claim_token": bytes(range(16)),
                "psk": bytes(range(32)),
                "psk_previous": bytes(range(32, 64)),
                "psk_previous_until": T0 + timedelta(days=1),
                "name": "chester",
                "label": "hsn:7",
                "enabled": True,
                "vendor": "HARDWARIO",
                "attributes": {"k": "v"},
                "decoder_hash": "00112233aabbccdd",
                "config_lines": ["a 1", "b 2"],
                "last_seen_at": T0,
                "session_id": 17,
                "changed_at": T0,
                **at,
            }
        ],
        "codecs": [
            {
                "id": uuid.uuid4(),
                "organization_id": ORG,
                "hash": "00112233aabbccdd",
                "kind": "decoder",
                "name": "climate",
                "document": {"fields": [{"n": "t"}]},
                "cbor": b"\xa1\x00\xff",
                "yaml": "name: climate\n",
                "source": "device",
                "updated_at": T0,
                **at,
            }
        ],
        "sessions": [
            {
                "id": 17,
                "device_id": DEVICE,
                "organization_id": ORG,
                "envelope": "dtls",
                "remote_address": "2001:db8::1",
                "remote_port": 5684,
                "started_at": T0,
                "last_activity_at": T0,
                "packets_in": 3,
                "bytes_in": 2**33,
                "attributes": {"rssi": -71},
            }
        ],
        "session_log": [
            {
                "session_id": 17,
                "device_id": DEVICE,
                "at": T0 + timedelta(seconds=i),
                "direction": "in",
                "envelope": "dtls",
                "remote": "[2001:db8::1]:5684",
                "flags": 3,
                "seq": i,
                "size": 60 + i,
                "outcome": "ok",
                "message_id": MESSAGES[i],
            }
            for i in range(3)
        ],
        "messages": [
            {
                "id": MESSAGES[i],
                "created_at": T0 + timedelta(seconds=i),
                "organization_id": ORG,
                "group_id": GROUP,
                "device_id": DEVICE,
                "session_id": 17,
                "type": "data",
                "direction": "up",
                "body": BODIES[i],
                "raw": bytes(range(256))[i:],
                "codec_hash": "00112233aabbccdd",
                "decode_state": ("decoded", "undecoded", "failed")[i],
                "decode_error": "bad" if i == 2 else None,
            }
            for i in range(3)
        ],
        "downlinks": [
            {
                "id": DOWNLINK,
                "organization_id": ORG,
                "device_id": DEVICE,
                "kind": "shell",
                "request": {"commands": ["ls"]},
                "message": b"\x00\x01",
                "shell_id": bytes(16),
                "state": "delivered",
                "attempts": 1,
                "updated_at": T0,
                "expires_at": T0,
                "reply_message_id": MESSAGES[0],
                **at,
            }
        ],
        "pipeline_batches": [{"id": uuid.uuid4(), "stored_at": T0, "announced_at": T0}],
        "users": [
            {
                "id": USER,
                "email": "ada@example.com",
                "password_hash": "$argon2id$v=19$x",
                "totp_secret": "JBSWY3DPEHPK3PXP",
                "totp_enabled": True,
                "updated_at": T0,
                **at,
            }
        ],
        "memberships": [{"user_id": USER, "organization_id": ORG, "role": "owner", **at}],
        "api_keys": [
            {
                "id": uuid.uuid4(),
                "organization_id": ORG,
                "name": "ci",
                "prefix": "nbs_abcd",
                "secret_hash": "ab" * 32,
                "scope": "read",
                "created_by": USER,
                **at,
            }
        ],
        "access_tokens": [
            {"id": uuid.uuid4(), "user_id": USER, "secret_hash": "cd" * 32, "expires_at": T0, **at}
        ],
        "audit_log": [
            {
                "organization_id": ORG,
                "at": T0,
                "actor_type": "user",
                "actor_id": USER,
                "actor_label": "ada@example.com",
                "action": "organization.update",
                "object_type": "organization",
                "object_id": str(ORG),
                "details": {"name": "upgraded", "was": "old"},
            }
        ],
        "callbacks": [
            {
                "id": CALLBACK,
                "organization_id": ORG,
                "group_id": GROUP,
                "name": "hook",
                "method": "POST",
                "url": "https://example.com/hook",
                "query_params": [{"name": "a", "value": "1"}],
                "headers": [],
                "content_type": "application/json",
                "payload": "{ 't': body.temperature }",
                "triggers": ["data"],
                "timeout": 5.0,
                "retry_delays": [1, 10],
                "secret": "s3cret",
                "updated_at": T0,
                **at,
            }
        ],
        "deliveries": [
            {
                "id": DELIVERY,
                "organization_id": ORG,
                "callback_id": CALLBACK,
                "message_id": MESSAGES[0],
                "state": "succeeded",
                "attempts": 2,
                "last_status": 200,
                "updated_at": T0,
                **at,
            }
        ],
        "delivery_attempts": [
            {
                "delivery_id": DELIVERY,
                "callback_id": CALLBACK,
                "at": T0 + timedelta(seconds=i),
                "duration_ms": 12.5,
                "outcome": outcome,
                "request": {"method": "POST", "body": "{}"},
                "response": {"status": status},
            }
            for i, (outcome, status) in enumerate((("failure", 500), ("success", 200)))
        ],
    }


def _old_columns(table: sa.Table) -> list[sa.Column[Any]]:
    return [column for column in table.columns if (table.name, column.name) not in ADDED]


async def _snapshot(conn: AsyncConnection) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows on the columns of the previous schema, in primary key order."""
    snapshot = {}
    for table in t.metadata.sorted_tables:
        query = sa.select(*_old_columns(table)).order_by(*table.primary_key.columns)
        snapshot[table.name] = [tuple(row) for row in (await conn.execute(query))]
    return snapshot


async def _fill(database: Database) -> None:
    rows = _old_rows()
    assert set(rows) == set(t.metadata.tables), "give every table rows of the previous schema"
    async with database.engine.begin() as conn:
        for table in t.metadata.sorted_tables:
            await conn.execute(sa.insert(table), rows[table.name])


async def _added_values(conn: AsyncConnection) -> dict[tuple[str, str], set[Any]]:
    values = {}
    for table_name, column in ADDED:
        table = t.metadata.tables[table_name]
        found = set((await conn.execute(sa.select(table.c[column]))).scalars())
        values[(table_name, column)] = found
    return values


async def test_a_database_of_the_previous_release_upgrades_intact(empty_db_url: str) -> None:
    assert head_revision() != PREVIOUS, "move PREVIOUS to the revision before head"
    database = Database(empty_db_url)
    try:
        await database.migrate(PREVIOUS)
        await _fill(database)
        async with database.engine.connect() as conn:
            before = await _snapshot(conn)

        await database.migrate()

        assert await database.current_revision() == head_revision()
        async with database.engine.connect() as conn:
            after = await _snapshot(conn)
            added = await _added_values(conn)
        assert all(before[name] for name in before)
        for name in before:
            assert after[name] == before[name], name
        assert added == {key: {value} for key, value in ADDED.items()}

        # Every process runs this release: the post-deploy step (partitioning
        # messages on PostgreSQL) keeps every row too.
        await database.post_deploy()
        async with database.engine.connect() as conn:
            assert await _snapshot(conn) == after
        await _the_api_serves_the_old_data(database)
    finally:
        await database.dispose()


async def _the_api_serves_the_old_data(database: Database) -> None:
    key = await auth.create_api_key(database.engine, organization_id=ORG, scope="admin")
    headers = {"Authorization": f"Bearer {key['key']}"}
    app = create_app(ApiContext(Settings(), database.engine, MemoryCache(), MemoryLive()))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://nubes.test") as client:
        listing = await client.get("/v1/messages", headers=headers)
        assert listing.status_code == 200, listing.text
        assert [m["id"] for m in listing.json()] == [str(m) for m in reversed(MESSAGES)]
        one = await client.get(f"/v1/messages/{MESSAGES[0]}", headers=headers)
        assert one.json()["data"] == BODIES[0]
        assert base64.b64decode(one.json()["raw"]) == bytes(range(256))
        organization = await client.get(f"/v1/organizations/{ORG}", headers=headers)
        assert organization.json()["message_retention_days"] == 90
        patched = await client.patch(
            f"/v1/organizations/{ORG}", headers=headers, json={"message_retention_days": 7}
        )
        assert patched.status_code == 200, patched.text
