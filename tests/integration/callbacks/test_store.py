"""Delivery persistence on both databases, and PostgreSQL's hand-written statements.

`store` sends the five statements that run for every delivery to
PostgreSQL as hand-written SQL (`callbacks.postgres`) and everything else,
SQLite included, through SQLAlchemy; these tests pin the behaviour both
must share.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from callback_kit import add_callback, add_messages, deliveries, message_rows
from nubes.callbacks import store
from nubes.callbacks.store import NewDelivery, Outcome
from nubes.store import tables as t
from nubes.store.database import Database
from worker_kit import Device, add_device


@pytest.fixture
async def device(migrated_db: Database) -> Device:
    return await add_device(migrated_db.engine, 700_000_001)


async def _callback(database: Database, device: Device, **fields: object) -> uuid.UUID:
    assert device.group_id is not None
    return await add_callback(
        database.engine, device.group_id, device.organization_id, "http://x/in", **fields
    )


def _new(callback_id: uuid.UUID, device: Device, message_id: uuid.UUID, held: bool) -> NewDelivery:
    return NewDelivery(uuid.uuid4(), callback_id, device.organization_id, message_id, held)


async def test_insert_creates_held_and_pending_deliveries_once(
    migrated_db: Database, device: Device
) -> None:
    engine = migrated_db.engine
    callback_id = await _callback(migrated_db, device)
    rows = message_rows(device, 4)
    now = datetime.now(UTC)
    lease = now + timedelta(minutes=1)
    first = [_new(callback_id, device, row["id"], held=i < 2) for i, row in enumerate(rows)]
    created = await store.insert_deliveries(engine, first, now, lease)
    again = [_new(callback_id, device, row["id"], held=True) for row in rows]
    assert created == {n.id for n in first}
    assert await store.insert_deliveries(engine, again, now, lease) == set()
    found = {row["id"]: row for row in await deliveries(engine, callback_id)}
    assert len(found) == 4
    for n in first:
        row = found[n.id]
        assert (row["state"], row["attempts"]) == ("delivering" if n.held else "pending", 0)
        assert row["lease_until"] == (lease if n.held else None)
        assert row["next_attempt_at"] == now


async def test_claim_takes_due_ones_per_callback_and_skips_busy_and_paused(
    migrated_db: Database, device: Device
) -> None:
    engine = migrated_db.engine
    now = datetime.now(UTC)
    one = await _callback(migrated_db, device)
    two = await _callback(migrated_db, device)
    paused = await _callback(migrated_db, device, paused_until=now + timedelta(minutes=1))
    rows = message_rows(device, 5)
    pairs = [(cb, device.organization_id, row["id"]) for cb in (one, two, paused) for row in rows]
    await store.create_deliveries(engine, pairs, now - timedelta(seconds=1))
    lease = now + timedelta(minutes=1)
    claimed = await store.claim(engine, now, limit=100, per_callback=3, lease_until=lease)
    assert sorted(str(d.callback_id) for d in claimed) == sorted([str(one)] * 3 + [str(two)] * 3)
    assert all(isinstance(d.id, uuid.UUID) and d.attempts == 0 for d in claimed)
    more = await store.claim(engine, now, limit=100, per_callback=3, lease_until=lease, busy=[two])
    assert {d.callback_id for d in more} == {one}
    assert len(more) == 2
    held = [row for row in await deliveries(engine) if row["state"] == "delivering"]
    assert len(held) == 8
    assert all(row["lease_until"] == lease for row in held)


async def test_renew_extends_only_held_deliveries(migrated_db: Database, device: Device) -> None:
    engine = migrated_db.engine
    callback_id = await _callback(migrated_db, device)
    rows = message_rows(device, 2)
    now = datetime.now(UTC)
    held, waiting = (
        _new(callback_id, device, row["id"], held=i == 0) for i, row in enumerate(rows)
    )
    await store.insert_deliveries(engine, [held, waiting], now, now + timedelta(seconds=5))
    later = now + timedelta(minutes=5)
    await store.renew(engine, [held.id, waiting.id], later)
    found = {row["id"]: row for row in await deliveries(engine, callback_id)}
    assert found[held.id]["lease_until"] == later
    assert found[waiting.id]["lease_until"] is None


async def test_record_writes_attempts_states_and_health(
    migrated_db: Database, device: Device
) -> None:
    engine = migrated_db.engine
    callback_id = await _callback(migrated_db, device)
    rows = message_rows(device, 2)
    now = datetime.now(UTC)
    news = [_new(callback_id, device, row["id"], held=True) for row in rows]
    await store.insert_deliveries(engine, news, now, now + timedelta(minutes=1))
    retry_at = now + timedelta(seconds=10)
    outcomes = [
        Outcome(
            news[0].id, callback_id, now, "succeeded", 1, "success", endpoint=True,
            duration_ms=2.5, request={"method": "POST", "body": "é"}, response={"status": 200},
            status=200,
        ),
        Outcome(
            news[1].id, callback_id, now, "pending", 1, "failure", endpoint=True,
            next_attempt_at=retry_at, status=503, error="HTTP 503" + "x" * 600,
        ),
    ]  # fmt: skip
    paused = await store.record(
        engine, outcomes, breaker_failures=5, breaker_pause=timedelta(seconds=60)
    )
    assert paused == {callback_id: None}
    found = {row["id"]: row for row in await deliveries(engine, callback_id)}
    ok, retry = found[news[0].id], found[news[1].id]
    assert (ok["state"], ok["attempts"], ok["last_status"], ok["lease_until"]) == (
        "succeeded", 1, 200, None,
    )  # fmt: skip
    assert (retry["state"], retry["next_attempt_at"], retry["last_status"]) == (
        "pending", retry_at, 503,
    )  # fmt: skip
    assert len(retry["last_error"]) == 500
    a = t.delivery_attempts
    async with engine.connect() as conn:
        logged = (await conn.execute(sa.select(a).order_by(a.c.outcome))).mappings().all()
    assert [row["outcome"] for row in logged] == ["failure", "success"]
    assert logged[1]["request"] == {"method": "POST", "body": "é"}
    assert logged[1]["response"] == {"status": 200}
    assert logged[1]["duration_ms"] == 2.5
    assert logged[0]["request"] is None


async def test_postgres_reads_messages_as_the_portable_query_does(
    migrated_pg: Database, device_pg: Device
) -> None:
    engine = migrated_pg.engine
    rows = message_rows(device_pg, 3)
    rows[1]["raw"], rows[2]["body"] = b"", None
    await add_messages(engine, rows)
    ids = [row["id"] for row in rows] + [uuid.uuid4()]
    fast = await store.load_messages(engine, ids)
    portable = await store.portable_load_messages(engine, ids)
    assert fast == portable
    assert len(fast) == 3
    assert fast[rows[0]["id"]]["device_serial"] == 700_000_002


@pytest.fixture
async def device_pg(migrated_pg: Database) -> Device:
    return await add_device(migrated_pg.engine, 700_000_002)
