"""The callback dispatcher against real HTTP receivers on loopback.

Most tests run on both backends with the in-process broker; one uses the
machine's RabbitMQ (the durable `callbacks` queue keeps events while no
dispatcher runs) and one runs two dispatchers side by side on PostgreSQL.
Retry delays are a few hundredths of a second, so retries happen within
the test.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import orjson
import pytest
import sqlalchemy as sa

from callback_kit import (
    Receiver,
    add_callback,
    add_messages,
    all_in,
    attempts,
    callback_row,
    deliveries,
    message_rows,
    states,
    stored_events,
    update_callback,
    wait_until,
)
from nubes.bootstrap import Adapters, Runtime
from nubes.callbacks import dispatcher as dispatcher_module
from nubes.callbacks import store
from nubes.callbacks.dispatcher import Dispatcher
from nubes.callbacks.sender import Sender
from nubes.config import Settings
from nubes.errors import ConfigError
from nubes.pipeline.broker import MESSAGE_STORED, Broker, MemoryBroker
from nubes.pipeline.cache import MemoryCache
from nubes.pipeline.live import MemoryLive
from nubes.pipeline.rabbitmq import RabbitBroker
from nubes.store import tables as t
from nubes.store.database import Database
from worker_kit import Device, add_device

SERIAL = 600_000_001


def settings(**values: Any) -> Settings:
    return Settings(callback_allow_private=True, **values)


@asynccontextmanager
async def dispatching(
    database: Database, broker: Broker | None = None, refresh_seconds: float = 0.1, **values: Any
) -> AsyncIterator[Dispatcher]:
    """A started dispatcher (own MemoryBroker unless given one), stopped after."""
    own = broker is None
    used: Broker = MemoryBroker() if broker is None else broker
    sender = Sender(allow_private=True, max_connections=100, user_agent="nubes/test")
    dispatcher = Dispatcher(
        database.engine,
        used,
        settings(**values),
        sender,
        poll_seconds=0.1,
        refresh_seconds=refresh_seconds,
    )
    await dispatcher.start()
    try:
        yield dispatcher
    finally:
        await dispatcher.close()
        if own:
            await used.close()
        await sender.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def device(migrated_db: Database) -> Device:
    return await add_device(migrated_db.engine, SERIAL)


async def hook(database: Database, device: Device, receiver: Receiver, **fields: Any) -> uuid.UUID:
    assert device.group_id is not None
    return await add_callback(
        database.engine, device.group_id, device.organization_id, receiver.url, **fields
    )


async def publish(broker: Broker, rows: list[dict[str, Any]]) -> None:
    await broker.publish(MESSAGE_STORED, stored_events(rows))


def broker_of(dispatcher: Dispatcher) -> Broker:
    return dispatcher._broker


# -- intake ---------------------------------------------------------------------------------


async def test_an_event_batch_delivered_twice_makes_one_delivery_per_callback_and_message(
    migrated_db: Database, device: Device, receiver: Receiver
) -> None:
    engine = migrated_db.engine
    data_hook = await hook(migrated_db, device, receiver)
    session_hook = await hook(migrated_db, device, receiver, triggers=["session"])
    rows = message_rows(device, 3)
    await add_messages(engine, rows)
    async with dispatching(migrated_db) as dispatcher:
        await publish(broker_of(dispatcher), rows)
        await publish(broker_of(dispatcher), rows)
        await wait_until(lambda: all_in(engine, data_hook, "succeeded", 3))
        await asyncio.sleep(0.3)  # anything extra would go out now
    assert len(receiver.requests) == 3
    assert sorted(r.headers["x-nubes-message"] for r in receiver.requests) == sorted(
        str(row["id"]) for row in rows
    )
    assert await deliveries(engine, session_hook) == []


async def test_a_fresh_delivery_is_sent_from_the_event_without_reading_the_message(
    migrated_db: Database, device: Device, receiver: Receiver
) -> None:
    engine = migrated_db.engine
    await hook(migrated_db, device, receiver, payload="{'t': data.thermometer.temperature}")
    rows = message_rows(device, 1)  # never stored: only the event knows it
    async with dispatching(migrated_db) as dispatcher:
        await publish(broker_of(dispatcher), rows)
        await wait_until(lambda: all_in(engine, None, "succeeded", 1))
    (request,) = receiver.requests
    assert orjson.loads(request.body) == {"t": 20.0}
    assert request.headers["x-nubes-message"] == str(rows[0]["id"])


async def test_an_event_without_the_message_columns_is_sent_from_the_stored_row(
    migrated_db: Database, device: Device, receiver: Receiver
) -> None:
    """Events of an older worker carry no raw bytes: the claim path reads the row."""
    engine = migrated_db.engine
    await hook(migrated_db, device, receiver, content_type="application/octet-stream", payload="")
    rows = message_rows(device, 2)
    await add_messages(engine, rows)
    events = orjson.loads(stored_events(rows))
    for event in events["messages"]:
        del event["raw"], event["decode_state"]
    async with dispatching(migrated_db) as dispatcher:
        await broker_of(dispatcher).publish(MESSAGE_STORED, orjson.dumps(events))
        await wait_until(lambda: all_in(engine, None, "succeeded", 2))
    assert sorted(r.body for r in receiver.requests) == sorted(row["raw"] for row in rows)


async def test_a_callback_saved_just_before_a_message_fires_for_it(
    migrated_db: Database, device: Device, receiver: Receiver
) -> None:
    """No periodic refresh happens during the test: the event batch asks for one."""
    engine = migrated_db.engine
    async with dispatching(migrated_db, refresh_seconds=3600) as dispatcher:
        await hook(migrated_db, device, receiver)
        rows = message_rows(device, 2)
        await publish(broker_of(dispatcher), rows)
        await wait_until(lambda: all_in(engine, None, "succeeded", 2))
        old = message_rows(device, 1)  # arrived before the last refresh: no new one
        old[0]["created_at"] -= timedelta(minutes=1)
        refreshed = dispatcher.callbacks.refreshed_at
        await publish(broker_of(dispatcher), old)
        assert dispatcher.callbacks.refreshed_at == refreshed
        await wait_until(lambda: all_in(engine, None, "succeeded", 3))


async def test_an_event_with_a_malformed_device_id_is_sent_from_the_stored_row(
    migrated_db: Database, device: Device, receiver: Receiver
) -> None:
    engine = migrated_db.engine
    await hook(migrated_db, device, receiver)
    rows = message_rows(device, 2)
    await add_messages(engine, rows)
    events = orjson.loads(stored_events(rows))
    for event in events["messages"]:
        event["device_id"] = "not-a-uuid"
    async with dispatching(migrated_db) as dispatcher:
        await broker_of(dispatcher).publish(MESSAGE_STORED, orjson.dumps(events))
        await wait_until(lambda: all_in(engine, None, "succeeded", 2))
    assert len(receiver.requests) == 2


async def test_a_dispatcher_renews_the_leases_of_what_it_holds(
    migrated_db: Database, device: Device, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = migrated_db.engine
    monkeypatch.setattr(dispatcher_module, "LEASE", timedelta(seconds=0.6))
    stuck = Receiver()
    await stuck.start()
    stuck.hang = True
    try:
        await hook(migrated_db, device, stuck, timeout=5.0)
        rows = message_rows(device, 1)
        async with dispatching(migrated_db) as dispatcher:
            await publish(broker_of(dispatcher), rows)
            (first,) = await wait_until(lambda: _leases(engine))
            # Renewed every 0.2 s, each time to now + 5.6 s.
            await wait_until(lambda: _leases(engine, later_than=first))
    finally:
        await stuck.close()


async def _leases(engine: Any, later_than: datetime | None = None) -> list[datetime]:
    found = [row["lease_until"] for row in await deliveries(engine) if row["lease_until"]]
    if later_than is not None:
        return [lease for lease in found if lease > later_than]
    return found


async def test_a_success_is_logged_with_the_request_redacted_and_the_response(
    migrated_db: Database, device: Device, receiver: Receiver
) -> None:
    engine = migrated_db.engine
    callback_id = await hook(
        migrated_db,
        device,
        receiver,
        payload='{"t": data.thermometer.temperature, "serial": device.serial_number}',
    )
    rows = message_rows(device, 1)
    await add_messages(engine, rows)
    async with dispatching(migrated_db) as dispatcher:
        await publish(broker_of(dispatcher), rows)
        (delivery,) = await wait_until(
            lambda: _when_all(engine, callback_id, "succeeded", 1), timeout=5
        )
    (request,) = receiver.requests
    assert orjson.loads(request.body) == {"t": 20.0, "serial": SERIAL}
    assert request.headers["authorization"] == "Bearer s3cret"
    assert request.headers["user-agent"].startswith("nubes/")
    assert request.headers["x-nubes-delivery"] == str(delivery["id"])
    assert delivery["attempts"] == 1
    assert delivery["last_status"] == 200
    assert delivery["lease_until"] is None
    (attempt,) = await attempts(engine, delivery["id"])
    assert attempt["outcome"] == "success"
    logged = dict(attempt["request"]["headers"])
    assert logged["Authorization"] == "[redacted]"
    assert attempt["request"]["method"] == "POST"
    assert orjson.loads(attempt["request"]["body"]) == {"t": 20.0, "serial": SERIAL}
    assert attempt["response"]["status"] == 200
    assert attempt["response"]["body"] == '{"ok":true}'
    assert attempt["duration_ms"] >= 0
    health = await callback_row(engine, callback_id)
    assert health["last_success_at"] is not None
    assert health["failure_streak"] == 0


async def _when_all(engine: Any, callback_id: uuid.UUID, state: str, count: int) -> Any:
    rows = await deliveries(engine, callback_id)
    if len(rows) == count and all(row["state"] == state for row in rows):
        return rows
    return None


async def test_types_not_in_triggers_and_disabled_callbacks_deliver_nothing(
    migrated_db: Database, device: Device, receiver: Receiver
) -> None:
    engine = migrated_db.engine
    await hook(migrated_db, device, receiver, enabled=False)
    await hook(migrated_db, device, receiver, triggers=["stats"])
    live = await hook(migrated_db, device, receiver)
    sessions = message_rows(device, 2, "session")
    data = message_rows(device, 1)
    await add_messages(engine, sessions + data)
    async with dispatching(migrated_db) as dispatcher:
        await publish(broker_of(dispatcher), sessions + data)
        await wait_until(lambda: all_in(engine, live, "succeeded", 1))
        await asyncio.sleep(0.3)
    assert len(await deliveries(engine)) == 1
    assert len(receiver.requests) == 1


async def test_a_callback_changed_while_running_is_seen(
    migrated_db: Database, device: Device, receiver: Receiver
) -> None:
    engine = migrated_db.engine
    callback_id = await hook(migrated_db, device, receiver, enabled=False)
    async with dispatching(migrated_db) as dispatcher:
        await update_callback(engine, callback_id, enabled=True, payload='{"v": 2}')
        await wait_until(_async(lambda: callback_id in dispatcher.callbacks.by_id))
        await asyncio.sleep(0.3)  # the next refresh sees it enabled
        rows = message_rows(device, 1)
        await add_messages(engine, rows)
        await publish(broker_of(dispatcher), rows)
        await wait_until(lambda: all_in(engine, callback_id, "succeeded", 1))
    assert orjson.loads(receiver.requests[0].body) == {"v": 2}


def _async(check: Any) -> Any:
    async def run() -> Any:
        return check()

    return run


# -- transform outcomes ---------------------------------------------------------------------


async def test_a_null_payload_skips_and_a_failing_payload_fails_at_once(
    migrated_db: Database, device: Device, receiver: Receiver
) -> None:
    engine = migrated_db.engine
    skipping = await hook(migrated_db, device, receiver, payload="data.nothing")
    failing = await hook(migrated_db, device, receiver, payload='$error("boom")')
    rows = message_rows(device, 1)
    await add_messages(engine, rows)
    async with dispatching(migrated_db) as dispatcher:
        await publish(broker_of(dispatcher), rows)
        (skipped,) = await wait_until(lambda: _when_all(engine, skipping, "skipped", 1))
        (failed,) = await wait_until(lambda: _when_all(engine, failing, "failed", 1))
    assert receiver.requests == []
    (attempt,) = await attempts(engine, skipped["id"])
    assert attempt["outcome"] == "skipped"
    (attempt,) = await attempts(engine, failed["id"])
    assert attempt["outcome"] == "failure"
    assert "boom" in attempt["error"]
    assert failed["attempts"] == 1
    # Not the endpoint's fault: the breaker does not count it.
    assert (await callback_row(engine, failing))["failure_streak"] == 0


# -- retries --------------------------------------------------------------------------------


async def test_a_receiver_failing_n_times_gets_it_on_attempt_n_plus_1(
    migrated_db: Database, device: Device, receiver: Receiver
) -> None:
    engine = migrated_db.engine
    callback_id = await hook(migrated_db, device, receiver)
    receiver.statuses.extend([500, 502, 404])
    rows = message_rows(device, 1)
    await add_messages(engine, rows)
    async with dispatching(migrated_db) as dispatcher:
        await publish(broker_of(dispatcher), rows)
        (delivery,) = await wait_until(lambda: _when_all(engine, callback_id, "succeeded", 1))
    assert delivery["attempts"] == 4
    log = await attempts(engine, delivery["id"])
    assert [a["outcome"] for a in log] == ["failure", "failure", "failure", "success"]
    assert [a["response"]["status"] for a in log] == [500, 502, 404, 200]
    assert log[0]["error"] == "HTTP 500"
    assert len(set(receiver.delivery_ids())) == 1
    gaps = [b.at - a.at for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
    assert all(gap >= 0.04 for gap in gaps)


async def test_after_the_last_delay_it_fails_and_a_replay_delivers_it(
    migrated_db: Database, device: Device, receiver: Receiver
) -> None:
    engine = migrated_db.engine
    callback_id = await hook(migrated_db, device, receiver, retry_delays=[0.05, 0.05])
    receiver.statuses.extend([500, 500, 500])
    rows = message_rows(device, 1)
    await add_messages(engine, rows)
    async with dispatching(migrated_db) as dispatcher:
        await publish(broker_of(dispatcher), rows)
        (failed,) = await wait_until(lambda: _when_all(engine, callback_id, "failed", 1))
        assert failed["attempts"] == 3
        assert failed["last_status"] == 500
        assert await store.replay(engine, datetime.now(UTC), callback_id=callback_id) == 1
        (done,) = await wait_until(lambda: _when_all(engine, callback_id, "succeeded", 1))
    assert done["id"] == failed["id"]
    assert len(await attempts(engine, done["id"])) == 4
    assert len(receiver.requests) == 4


async def test_a_restart_during_a_retry_wait_still_retries(
    migrated_db: Database, device: Device, receiver: Receiver
) -> None:
    engine = migrated_db.engine
    callback_id = await hook(migrated_db, device, receiver, retry_delays=[1.0])
    receiver.statuses.append(503)
    rows = message_rows(device, 1)
    await add_messages(engine, rows)
    async with dispatching(migrated_db) as dispatcher:
        await publish(broker_of(dispatcher), rows)
        (waiting,) = await wait_until(lambda: _when_all(engine, callback_id, "pending", 1))
        await receiver.wait_for(1)
        while waiting["attempts"] == 0:
            (waiting,) = await deliveries(engine, callback_id)
    assert waiting["next_attempt_at"] > datetime.now(UTC)
    async with dispatching(migrated_db):
        (done,) = await wait_until(lambda: _when_all(engine, callback_id, "succeeded", 1))
    assert done["attempts"] == 2
    assert receiver.requests[1].at - receiver.requests[0].at >= 0.9


async def test_a_delivery_held_by_a_crashed_dispatcher_is_taken_over(
    migrated_db: Database, device: Device, receiver: Receiver
) -> None:
    engine = migrated_db.engine
    callback_id = await hook(migrated_db, device, receiver)
    rows = message_rows(device, 1)
    await add_messages(engine, rows)
    now = datetime.now(UTC)
    await store.create_deliveries(
        engine, [(callback_id, device.organization_id, rows[0]["id"])], now
    )
    async with engine.begin() as conn:  # as a dispatcher that died holding it
        await conn.execute(
            sa.update(t.deliveries).values(
                state="delivering", lease_until=now - timedelta(seconds=1)
            )
        )
    async with dispatching(migrated_db):
        await wait_until(lambda: all_in(engine, callback_id, "succeeded", 1))
    assert len(receiver.requests) == 1


# -- isolation ------------------------------------------------------------------------------


async def test_a_hanging_endpoint_does_not_hold_back_a_healthy_one(
    migrated_db: Database, device: Device, receiver: Receiver
) -> None:
    engine = migrated_db.engine
    stuck = Receiver()
    await stuck.start()
    stuck.hang = True
    try:
        hanging = await hook(migrated_db, device, stuck, timeout=30.0)
        healthy = await hook(migrated_db, device, receiver)
        rows = message_rows(device, 40)
        await add_messages(engine, rows)
        async with dispatching(migrated_db, callback_concurrency=3) as dispatcher:
            await publish(broker_of(dispatcher), rows)
            await wait_until(lambda: all_in(engine, healthy, "succeeded", 40), timeout=5)
            # Three requests hang (its slots); the rest wait, claimed or not.
            assert len(stuck.requests) == 3
            assert set(await states(engine, hanging)) <= {"delivering", "pending"}
    finally:
        await stuck.close()
    # Stopping gave the held deliveries back, untouched.
    assert Counter(await states(engine, hanging)) == {"pending": 40}
    assert all(row["attempts"] == 0 for row in await deliveries(engine, hanging))


async def test_the_breaker_pauses_a_failing_endpoint_and_probes_it_again(
    migrated_db: Database, device: Device, receiver: Receiver
) -> None:
    engine = migrated_db.engine
    callback_id = await hook(migrated_db, device, receiver, retry_delays=[0.01] * 20)
    receiver.statuses.extend([500] * 4)  # 3 trip the breaker, the first probe fails
    rows = message_rows(device, 1)
    await add_messages(engine, rows)
    pause = 0.6
    async with dispatching(
        migrated_db, callback_breaker_failures=3, callback_breaker_pause_seconds=pause
    ) as dispatcher:
        await publish(broker_of(dispatcher), rows)
        await receiver.wait_for(3)
        tripped = await wait_until(lambda: _paused(engine, callback_id))
        assert tripped["failure_streak"] == 3
        await asyncio.sleep(pause / 2)
        assert len(receiver.requests) == 3  # paused: nothing goes out, no attempt counted
        (delivery,) = await deliveries(engine, callback_id)
        assert delivery["state"] == "pending"
        assert delivery["attempts"] == 3
        (done,) = await wait_until(lambda: _when_all(engine, callback_id, "succeeded", 1))
    times = [r.at for r in receiver.requests]
    assert len(times) == 5
    assert times[3] - times[2] >= pause * 0.9  # the first probe after the pause
    assert times[4] - times[3] >= pause * 0.9  # it failed: paused again, probed again
    health = await callback_row(engine, callback_id)
    assert health["failure_streak"] == 0
    assert health["paused_until"] is None
    assert health["last_success_at"] > health["last_failure_at"]
    assert done["attempts"] == 5


async def _paused(engine: Any, callback_id: uuid.UUID) -> dict[str, Any] | None:
    row = await callback_row(engine, callback_id)
    return row if row["paused_until"] is not None else None


# -- several dispatchers, a real broker -----------------------------------------------------


@pytest.mark.integration
async def test_two_dispatchers_on_postgresql_never_send_a_delivery_twice(
    migrated_pg: Database,
) -> None:
    engine = migrated_pg.engine
    device = await add_device(engine, SERIAL)
    assert device.group_id is not None
    counting = Receiver()
    url = await counting.start()
    try:
        hooks = [
            await add_callback(engine, device.group_id, device.organization_id, url)
            for _ in range(4)
        ]
        rows = message_rows(device, 150)
        await add_messages(engine, rows)
        now = datetime.now(UTC)
        pairs = [(h, device.organization_id, row["id"]) for h in hooks for row in rows]
        # Each may hold only 16 * 2 deliveries at once, so neither can claim all
        # 600 in one go: both keep claiming while the other sends.
        async with (
            dispatching(migrated_pg, callback_concurrency=4, dispatcher_concurrency=2) as first,
            dispatching(migrated_pg, callback_concurrency=4, dispatcher_concurrency=2) as second,
        ):
            await store.create_deliveries(engine, pairs, now)
            first._wake.set()
            second._wake.set()
            await wait_until(lambda: all_in(engine, None, "succeeded", 600), timeout=30)
            assert first.delivered > 0
            assert second.delivered > 0
        sent = Counter(counting.delivery_ids())
        assert len(sent) == 600
        assert max(sent.values()) == 1
    finally:
        await counting.close()


@pytest.fixture
async def rabbit(amqp_url: str, unique_prefix: str) -> AsyncIterator[tuple[str, str]]:
    yield amqp_url, unique_prefix
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(f"{unique_prefix}.callbacks")
        await channel.exchange_delete(unique_prefix)


@pytest.mark.integration
async def test_events_wait_in_rabbitmq_while_no_dispatcher_runs(
    migrated_db: Database, device: Device, receiver: Receiver, rabbit: tuple[str, str]
) -> None:
    url, prefix = rabbit
    engine = migrated_db.engine
    callback_id = await hook(migrated_db, device, receiver)
    publisher = RabbitBroker(url, prefix)
    await publisher.start()
    try:
        first = RabbitBroker(url, prefix)
        await first.start()
        async with dispatching(migrated_db, first):
            early = message_rows(device, 2)
            await add_messages(engine, early)
            await publisher.announce(MESSAGE_STORED, stored_events(early))
            await wait_until(lambda: all_in(engine, callback_id, "succeeded", 2))
        await first.close()
        late = message_rows(device, 3)
        await add_messages(engine, late)
        await publisher.announce(MESSAGE_STORED, stored_events(late))  # nobody consumes now
        await asyncio.sleep(0.2)
        assert len(await deliveries(engine, callback_id)) == 2
        second = RabbitBroker(url, prefix)
        await second.start()
        try:
            async with dispatching(migrated_db, second):
                await wait_until(lambda: all_in(engine, callback_id, "succeeded", 5))
        finally:
            await second.close()
    finally:
        await publisher.close()
    assert len(receiver.requests) == 5


# -- wiring ---------------------------------------------------------------------------------


async def test_the_dispatcher_alone_needs_rabbitmq(migrated_sqlite: Database) -> None:
    adapters = Adapters(migrated_sqlite, MemoryBroker(), MemoryCache(), MemoryLive())
    runtime = Runtime(settings(), adapters)
    with pytest.raises(ConfigError, match="RabbitMQ"):
        await runtime.start(gateway=False, worker=False, dispatcher=True)
    await runtime.stop()
