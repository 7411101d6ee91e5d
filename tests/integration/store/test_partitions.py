"""Monthly partitions of `messages` on PostgreSQL: a new database starts
partitioned; a filled one is converted online with every row kept while a
writer goes on; an interrupted conversion is finished by the next; months
are made ahead; retention drops whole months with their deliveries.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from integration.store.test_retention import _callback, _delivery
from nubes.store import partitions
from nubes.store import tables as t
from nubes.store.database import Database
from nubes.store.ingest import Changes, Ingest
from nubes.store.retention import Retention

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
ORG, GROUP, DEVICE = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


@pytest.fixture
async def fresh(fresh_pg_url: str) -> AsyncIterator[Database]:
    database = Database(fresh_pg_url)
    yield database
    await database.dispose()


async def _plain_at_head(database: Database) -> None:
    """A database as an upgrade finds it: filled by an older release, then migrated."""
    await database.migrate("0005")
    await database.migrate()
    await _owner(database)


async def _owner(database: Database) -> None:
    async with database.engine.begin() as conn:
        await conn.execute(
            sa.insert(t.organizations).values(
                id=ORG, name="acme", created_at=NOW, message_retention_days=30
            )
        )
        await conn.execute(
            sa.insert(t.groups).values(id=GROUP, organization_id=ORG, name="g", created_at=NOW)
        )
        await conn.execute(
            sa.insert(t.devices).values(
                id=DEVICE,
                organization_id=ORG,
                group_id=GROUP,
                serial=2159018247,
                claim_token=bytes(16),
                name="d",
                created_at=NOW,
                changed_at=NOW,
            )
        )


def _message(at: datetime, number: int = 0) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "created_at": at,
        "organization_id": ORG,
        "group_id": GROUP,
        "device_id": DEVICE,
        "session_id": None,
        "type": "data",
        "direction": "up",
        "body": {"n": number},
        "raw": number.to_bytes(4, "big"),
        "codec_hash": None,
        "decode_state": None,
        "decode_error": None,
        "downlink_id": None,
    }


async def _all_messages(database: Database) -> list[tuple[Any, ...]]:
    async with database.engine.connect() as conn:
        query = sa.select(t.messages).order_by(t.messages.c.id)
        return [tuple(row) for row in (await conn.execute(query)).all()]


async def _is_partitioned(database: Database) -> bool:
    async with partitions.driver_of(database.engine) as db:
        return await partitions.is_partitioned(db)


async def _partition_names(database: Database) -> list[str]:
    async with partitions.driver_of(database.engine) as db:
        return [p.name for p in await partitions.partitions(db)]


async def test_a_new_database_starts_partitioned(fresh: Database) -> None:
    await fresh.migrate()
    assert await _is_partitioned(fresh)
    this_month = partitions.month_start(datetime.now(UTC))
    expected = [
        partitions.month_name(partitions.add_months(this_month, n))
        for n in range(partitions.MONTHS_AHEAD + 1)
    ]
    # The empty old table ends where the months begin: this one.
    assert await _partition_names(fresh) == ["messages_legacy", *expected, "messages_default"]


async def test_an_empty_table_converted_while_rows_arrive_takes_the_long_way(
    fresh: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _plain_at_head(fresh)
    real_swap = partitions._swap
    late = _message(datetime(2026, 11, 28, tzinfo=UTC))  # past the empty table's boundary

    async def swap_after_an_insert(db: Any, boundary: datetime, now: datetime) -> None:
        if boundary == datetime(2026, 11, 1, tzinfo=UTC):
            await Ingest(fresh.engine).apply(Changes(messages=[late]))
        await real_swap(db, boundary, now)

    monkeypatch.setattr(partitions, "_swap", swap_after_an_insert)
    report = await partitions.convert(fresh.engine, now=NOW)

    assert report.boundary == datetime(2027, 1, 1, tzinfo=UTC)
    assert [row[0] for row in await _all_messages(fresh)] == [late["id"]]


async def test_an_upgraded_database_stays_plain_until_post_deploy(fresh: Database) -> None:
    await _plain_at_head(fresh)
    assert not await _is_partitioned(fresh)
    # Old and new workers alike insert into the plain table meanwhile.
    stored = await Ingest(fresh.engine).apply(Changes(messages=[_message(NOW)]))
    assert len(stored) == 1


async def test_conversion_keeps_every_row_and_dedup(fresh: Database) -> None:
    await _plain_at_head(fresh)
    rows = [_message(NOW - timedelta(days=days), days) for days in range(0, 400, 7)]
    ingest = Ingest(fresh.engine)
    await ingest.apply(Changes(messages=rows))
    before = await _all_messages(fresh)

    report = await partitions.convert(fresh.engine, now=NOW)

    assert report.converted
    assert report.boundary == datetime(2027, 1, 1, tzinfo=UTC)
    assert await _is_partitioned(fresh)
    assert await _all_messages(fresh) == before
    async with fresh.engine.connect() as conn:
        legacy = (await conn.execute(sa.text("SELECT count(*) FROM messages_legacy"))).scalar()
    assert legacy == len(rows)
    # A batch delivered twice is stored once; a new message lands in its month.
    again = await ingest.apply(Changes(messages=rows[:3]))
    later = _message(datetime(2027, 1, 15, tzinfo=UTC), 1000)
    fresh_ids = await ingest.apply(Changes(messages=[later, *rows[3:5]]))
    assert again == set()
    assert fresh_ids == {later["id"]}
    async with fresh.engine.connect() as conn:
        january = (await conn.execute(sa.text("SELECT id FROM messages_2027_01"))).scalars()
        assert list(january) == [later["id"]]


async def test_conversion_runs_while_a_writer_inserts(fresh: Database) -> None:
    await _plain_at_head(fresh)
    ingest = Ingest(fresh.engine)
    written: list[uuid.UUID] = []
    errors: list[BaseException] = []
    stop = asyncio.Event()

    async def writer() -> None:
        number = 0
        while not stop.is_set():
            batch = [_message(datetime.now(UTC), number + i) for i in range(50)]
            number += 50
            try:
                written.extend(await ingest.apply(Changes(messages=batch)))
            except Exception as err:
                errors.append(err)
            await asyncio.sleep(0)

    task = asyncio.create_task(writer())
    try:
        await _until(lambda: len(written) >= 500)
        await partitions.convert(fresh.engine)
        mark = len(written)
        await _until(lambda: len(written) >= mark + 500)
    finally:
        stop.set()
        await task
    assert errors == []
    assert await _is_partitioned(fresh)
    stored = {row[0] for row in await _all_messages(fresh)}
    assert stored == set(written)


async def test_an_interrupted_conversion_is_finished_by_the_next(fresh: Database) -> None:
    await _plain_at_head(fresh)
    await Ingest(fresh.engine).apply(Changes(messages=[_message(NOW)]))
    async with fresh.engine.begin() as conn:
        # What a conversion killed between its steps leaves behind: an invalid
        # index (a CONCURRENTLY build that failed) and a check not yet validated.
        await conn.execute(sa.text(f"CREATE INDEX {partitions.UNIQUE_INDEX} ON messages (id)"))
        await conn.execute(
            sa.text(
                "UPDATE pg_index SET indisvalid = false "
                f"WHERE indexrelid = '{partitions.UNIQUE_INDEX}'::regclass"
            )
        )
        await conn.execute(
            sa.text(
                f"ALTER TABLE messages ADD CONSTRAINT {partitions.BOUND_CHECK} "
                "CHECK (created_at < '2030-01-01') NOT VALID"
            )
        )
    report = await fresh.post_deploy()
    assert report.converted
    assert len(await _all_messages(fresh)) == 1
    again = await fresh.post_deploy()
    assert not again.converted


async def test_a_long_transaction_delays_the_conversion_not_the_inserts(fresh: Database) -> None:
    await _plain_at_head(fresh)
    async with fresh.engine.connect() as reader:
        # A long transaction holding a lock the swap needs: each try gives up
        # after lock_timeout (so inserts are not queued behind it) and retries.
        await reader.execute(sa.text("SELECT count(*) FROM messages"))
        conversion = asyncio.create_task(partitions.convert(fresh.engine, now=NOW))
        await asyncio.sleep(0)  # let the conversion start on its own connection
        await _until(lambda: _waiting_for_lock(fresh), timeout=10.0, is_async=True)
        stored = await Ingest(fresh.engine).apply(Changes(messages=[_message(NOW)]))
        assert len(stored) == 1  # not stuck behind the waiting ALTER TABLE
        await reader.rollback()
    report = await asyncio.wait_for(conversion, 30)
    assert report.converted


async def _waiting_for_lock(database: Database) -> bool:
    async with database.engine.connect() as conn:
        query = sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE '%messages%'"
        )
        return bool((await conn.execute(query)).scalar())


async def test_months_are_made_ahead_and_the_default_catches_the_rest(fresh: Database) -> None:
    await _plain_at_head(fresh)
    await partitions.convert(fresh.engine, now=NOW)
    far = _message(datetime(2030, 6, 1, tzinfo=UTC))
    assert len(await Ingest(fresh.engine).apply(Changes(messages=[far]))) == 1
    added = await partitions.maintain(fresh.engine, datetime(2027, 3, 5, tzinfo=UTC))
    assert added == ["messages_2027_02", "messages_2027_03", "messages_2027_04", "messages_2027_05"]
    assert await partitions.maintain(fresh.engine, datetime(2027, 3, 5, tzinfo=UTC)) == []
    # The month of the row in the default partition cannot be attached: logged, not raised.
    added = await partitions.maintain(fresh.engine, datetime(2030, 5, 1, tzinfo=UTC))
    assert "messages_2030_06" not in added
    assert "messages_2030_05" in added
    async with fresh.engine.connect() as conn:
        default = (await conn.execute(sa.text("SELECT id FROM messages_default"))).scalars()
        assert list(default) == [far["id"]]


async def test_retention_drops_months_past_every_horizon(fresh: Database) -> None:
    await _plain_at_head(fresh)
    await partitions.convert(fresh.engine, now=NOW)
    await partitions.maintain(fresh.engine, datetime(2027, 3, 5, tzinfo=UTC))
    ingest = Ingest(fresh.engine)
    january = [_message(datetime(2027, 1, 10, tzinfo=UTC), n) for n in range(5)]
    march = [_message(datetime(2027, 3, 10, tzinfo=UTC), n) for n in range(5)]
    await ingest.apply(Changes(messages=january + march))
    callback_id = await _callback(fresh.engine, {"organization_id": ORG, "group_id": GROUP})
    await _delivery(fresh.engine, callback_id, january[0]["id"])  # with two attempts

    # Retention 30 days: on 2027-03-05 January (ends 02-01) is past the horizon (02-03).
    report = await Retention(fresh.engine, pause_seconds=0).run(datetime(2027, 3, 5, tzinfo=UTC))

    assert "messages_2027_01" in report.dropped
    assert report.deleted["messages"] == 5
    assert report.deleted["deliveries"] == 1
    assert report.deleted["delivery_attempts"] == 2
    names = await _partition_names(fresh)
    assert "messages_2027_01" not in names
    assert "messages_2027_03" in names
    remaining = {row[0] for row in await _all_messages(fresh)}
    assert remaining == {row["id"] for row in march}
    async with fresh.engine.connect() as conn:
        left = await conn.execute(sa.select(sa.func.count()).select_from(t.delivery_attempts))
        assert left.scalar() == 0


async def _until(condition: Any, *, timeout: float = 20.0, is_async: bool = False) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await condition() if is_async else condition()
        if value:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
