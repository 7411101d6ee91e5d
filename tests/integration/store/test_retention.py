"""Retention on SQLite and PostgreSQL: exactly the expired rows go, in bounded
batches, with what hangs off them; runs repeat and overlap harmlessly.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from nubes.store import tables as t
from nubes.store.database import Database
from nubes.store.retention import Retention

NOW = datetime(2027, 3, 1, 12, tzinfo=UTC)
DAY = timedelta(days=1)


async def _organization(engine: AsyncEngine, name: str, days: int | None) -> dict[str, Any]:
    """An organization (`days` None: the default retention) with one device and group."""
    organization_id, group_id, device_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    values: dict[str, Any] = {"id": organization_id, "name": name, "created_at": NOW}
    if days is not None:
        values["message_retention_days"] = days
    async with engine.begin() as conn:
        await conn.execute(sa.insert(t.organizations).values(values))
        await conn.execute(
            sa.insert(t.groups).values(
                id=group_id, organization_id=organization_id, name="default", created_at=NOW
            )
        )
        await conn.execute(
            sa.insert(t.devices).values(
                id=device_id,
                organization_id=organization_id,
                group_id=group_id,
                serial=abs(hash(name)) % 10**9,
                claim_token=bytes(16),
                name=name,
                created_at=NOW,
                changed_at=NOW,
            )
        )
    return {"organization_id": organization_id, "group_id": group_id, "device_id": device_id}


async def _messages(engine: AsyncEngine, org: dict[str, Any], ages: list[int]) -> list[uuid.UUID]:
    """One message per age (in days before NOW, plus a minute); their ids."""
    rows = [
        {
            "id": uuid.uuid4(),
            "created_at": NOW - age * DAY - timedelta(minutes=1),
            "organization_id": org["organization_id"],
            "group_id": org["group_id"],
            "device_id": org["device_id"],
            "type": "data",
            "direction": "up",
            "body": {"age": age},
            "raw": bytes([age % 256]),
        }
        for age in ages
    ]
    async with engine.begin() as conn:
        await conn.execute(sa.insert(t.messages), rows)
    return [row["id"] for row in rows]


async def _ids(engine: AsyncEngine, table: sa.Table) -> set[Any]:
    async with engine.connect() as conn:
        return set((await conn.execute(sa.select(table.c.id))).scalars())


async def _callback(engine: AsyncEngine, org: dict[str, Any]) -> uuid.UUID:
    callback_id = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(t.callbacks).values(
                id=callback_id,
                organization_id=org["organization_id"],
                group_id=org["group_id"],
                name="hook",
                method="POST",
                url="https://example.com/hook",
                query_params=[],
                headers=[],
                content_type="application/json",
                payload="",
                triggers=["data"],
                timeout=5.0,
                retry_delays=[1],
                created_at=NOW,
                updated_at=NOW,
            )
        )
    return callback_id


async def _delivery(engine: AsyncEngine, callback_id: uuid.UUID, message_id: uuid.UUID) -> None:
    delivery_id = uuid.uuid4()
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(t.deliveries).values(
                id=delivery_id,
                organization_id=uuid.uuid4(),
                callback_id=callback_id,
                message_id=message_id,
                state="succeeded",
                created_at=NOW,
                updated_at=NOW,
            )
        )
        await conn.execute(
            sa.insert(t.delivery_attempts),
            [
                {"delivery_id": delivery_id, "callback_id": callback_id, "at": NOW, "outcome": o}
                for o in ("failure", "success")
            ],
        )


async def test_only_what_each_organization_keeps_remains(migrated_db: Database) -> None:
    engine = migrated_db.engine
    default = await _organization(engine, "default-90", None)
    short = await _organization(engine, "short-7", 7)
    long = await _organization(engine, "long-400", 400)
    ages = [0, 6, 7, 30, 89, 90, 91, 200, 399, 400, 500]
    ids = {
        "default": await _messages(engine, default, ages),
        "short": await _messages(engine, short, ages),
        "long": await _messages(engine, long, ages),
    }

    report = await Retention(engine, batch_size=2, pause_seconds=0).run(NOW)

    kept = {name: [age for age in ages if age < days] for name, days in
            (("default", 90), ("short", 7), ("long", 400))}  # fmt: skip
    expected = {ids[name][ages.index(age)] for name in ids for age in kept[name]}
    assert await _ids(engine, t.messages) == expected
    assert report.deleted["messages"] == 3 * len(ages) - len(expected)
    assert not report.skipped
    assert not report.unfinished


async def test_each_statement_deletes_at_most_a_batch(migrated_db: Database) -> None:
    engine = migrated_db.engine
    org = await _organization(engine, "batched", 10)
    await _messages(engine, org, [20] * 10)
    counts: list[int] = []

    def count_deletes(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE FROM MESSAGES"):
            counts.append(cursor.rowcount)

    event.listen(engine.sync_engine, "after_cursor_execute", count_deletes)
    try:
        report = await Retention(engine, batch_size=3, pause_seconds=0).run(NOW)
    finally:
        event.remove(engine.sync_engine, "after_cursor_execute", count_deletes)

    assert counts == [3, 3, 3, 1]
    assert report.statements["messages"] == 4
    assert report.deleted["messages"] == 10


async def test_deliveries_and_attempts_go_with_their_messages(migrated_db: Database) -> None:
    engine = migrated_db.engine
    org = await _organization(engine, "hooks", 30)
    old, young = await _messages(engine, org, [31, 29])
    callback_id = await _callback(engine, org)
    await _delivery(engine, callback_id, old)
    await _delivery(engine, callback_id, young)

    report = await Retention(engine, pause_seconds=0).run(NOW)

    async with engine.connect() as conn:
        d, a = t.deliveries, t.delivery_attempts
        left = set((await conn.execute(sa.select(d.c.message_id))).scalars())
        attempts = (await conn.execute(sa.select(sa.func.count()).select_from(a))).scalar()
    assert left == {young}
    assert attempts == 2
    assert report.deleted == {"messages": 1, "deliveries": 1, "delivery_attempts": 2}


async def test_log_sessions_and_finished_downlinks_expire_too(migrated_db: Database) -> None:
    engine = migrated_db.engine
    org = await _organization(engine, "traffic", 30)
    other = await _organization(engine, "other", 3650)
    device_id = org["device_id"]
    sessions = {1: 40, 2: 35, 3: 10, 4: 50}  # id: days since the last activity
    async with engine.begin() as conn:
        for session_id, age in sessions.items():
            await conn.execute(
                sa.insert(t.sessions).values(
                    id=session_id,
                    device_id=device_id,
                    organization_id=org["organization_id"],
                    envelope="raw",
                    remote_address="192.0.2.1",
                    remote_port=5000,
                    started_at=NOW - (age + 1) * DAY,
                    last_activity_at=NOW - age * DAY,
                )
            )
        # Session 4 is the device's current one: it stays however old.
        await conn.execute(
            sa.update(t.devices).where(t.devices.c.id == device_id).values(session_id=4)
        )
        for device, age in ((device_id, 31), (device_id, 29), (other["device_id"], 31)):
            await conn.execute(
                sa.insert(t.session_log).values(
                    device_id=device,
                    at=NOW - age * DAY,
                    direction="in",
                    envelope="raw",
                    remote="192.0.2.1:5000",
                    size=10,
                    outcome="ok",
                    detail=str(age),
                )
            )
        for state, age in (("delivered", 31), ("pending", 31), ("expired", 29)):
            await conn.execute(
                sa.insert(t.downlinks).values(
                    id=uuid.uuid4(),
                    organization_id=org["organization_id"],
                    device_id=device_id,
                    kind="data",
                    request={},
                    message=b"x",
                    state=state,
                    created_at=NOW - age * DAY,
                    updated_at=NOW,
                    expires_at=NOW,
                )
            )

    report = await Retention(engine, pause_seconds=0).run(NOW)

    assert await _ids(engine, t.sessions) == {3, 4}
    async with engine.connect() as conn:
        log_ = t.session_log
        logs = (await conn.execute(sa.select(log_.c.device_id, log_.c.detail))).all()
        downlinks = set((await conn.execute(sa.select(t.downlinks.c.state))).scalars())
    assert sorted(logs) == sorted([(device_id, "29"), (other["device_id"], "31")])
    assert downlinks == {"pending", "expired"}
    assert report.deleted == {"sessions": 2, "session_log": 1, "downlinks": 1}


async def test_a_second_run_finds_nothing(migrated_db: Database) -> None:
    engine = migrated_db.engine
    org = await _organization(engine, "again", 1)
    await _messages(engine, org, [0, 2, 3])
    retention = Retention(engine, pause_seconds=0)
    assert (await retention.run(NOW)).deleted["messages"] == 2
    again = await retention.run(NOW)
    assert sum(again.deleted.values()) == 0
    assert len(await _ids(engine, t.messages)) == 1


async def test_concurrent_runs_delete_each_row_once(migrated_db: Database) -> None:
    engine = migrated_db.engine
    org = await _organization(engine, "busy", 1)
    kept = await _messages(engine, org, [0] * 5)
    await _messages(engine, org, [5] * 40)
    runs = [Retention(engine, batch_size=4, pause_seconds=0.001) for _ in range(3)]

    reports = await asyncio.wait_for(asyncio.gather(*(run.run(NOW) for run in runs)), 30)

    assert sum(report.deleted["messages"] for report in reports) == 40
    assert [report.skipped for report in reports].count(False) >= 1
    assert await _ids(engine, t.messages) == set(kept)


async def test_a_spent_budget_leaves_the_rest_for_the_next_run(migrated_db: Database) -> None:
    engine = migrated_db.engine
    org = await _organization(engine, "backlog", 1)
    await _messages(engine, org, [5] * 6)
    first = await Retention(engine, batch_size=2, pause_seconds=0, budget_seconds=0).run(NOW)
    assert first.unfinished
    assert first.deleted["messages"] == 0
    second = await Retention(engine, batch_size=2, pause_seconds=0).run(NOW)
    assert second.deleted["messages"] == 6
    assert not second.unfinished


@pytest.mark.integration
async def test_the_postgresql_lock_is_released_after_a_failed_run(migrated_pg: Database) -> None:
    engine = migrated_pg.engine
    org = await _organization(engine, "fails", 1)
    await _messages(engine, org, [5] * 3)
    retention = Retention(engine, pause_seconds=0)

    async def broken(*_: Any) -> None:
        raise RuntimeError("boom")

    retention._messages = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await retention.run(NOW)
    report = await Retention(engine, pause_seconds=0).run(NOW)
    assert not report.skipped
    assert report.deleted["messages"] == 3
