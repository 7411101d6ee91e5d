"""The pipeline worker on PostgreSQL (and SQLite beside it, through `migrated_db`).

What differs on PostgreSQL is what is checked here: native UUIDs and JSONB,
"on conflict do nothing returning" for redelivered batches, `greatest` for
downlink attempts, the executemany updates of sessions and devices, row
locks between workers writing at the same time, and column lengths, which
PostgreSQL enforces and SQLite does not. A device controls much of what it
sends (session attributes, codec names, the text of an error about its own
upload): a value too long for its column must not make the database refuse
the whole batch, which the broker would then deliver again forever.

Batches are built by the builders of tests/worker_kit.py, over a DTLS link
from an IPv6 peer with the largest session id a device can be told.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import cbor2
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from helpers import eventually
from nubes import flap
from nubes.codec import codec_from_cbor, codec_hash, decode, hash_hex
from nubes.errors import CodecError
from nubes.pipeline.broker import MESSAGE_STORED, UPLINK, MemoryBroker
from nubes.pipeline.records import Record, decode_batch, downlink_record, encode_batch
from nubes.pipeline.worker import Worker
from nubes.services import downlinks
from nubes.sim import messages as m
from nubes.store import tables as t
from nubes.store.database import Database
from nubes.store.ingest import Changes, Ingest
from worker_kit import (
    AT,
    DEMO,
    DEMO_DECODER,
    DEMO_HASH,
    DEMO_UPLOAD,
    Device,
    Link,
    add_device,
    device_row,
    expected_body,
    ids,
    message,
    message_ids,
    select,
    when,
)

pytestmark = pytest.mark.integration

SESSION_ID = 0xFFFFFFFF  # the largest session id a device can be told
REMOTE = ("2001:db8::7", 5684)
UNKNOWN_HASH = 0xFEDCBA9876543210
ATTRIBUTES = {1: "HARDWARIO", 2: "CHESTER-M", 7: "v3.1.0", 10: 351358810001001, 17: "8942031019"}

# uplinks carry no session unless told; packets are logged with sequence number 3
LINK = Link(
    SESSION_ID,
    envelope="dtls",
    remote=REMOTE,
    flags=0xF0,
    attributes=ATTRIBUTES,
    seq=3,
    uplinks_in_session=False,
)
uplink, data, session_start, packet_log = (
    LINK.uplink,
    LINK.data,
    LINK.session_start,
    LINK.packet_log,
)


@pytest.fixture
def engine(migrated_db: Database) -> AsyncEngine:
    return migrated_db.engine


@pytest.fixture
async def broker() -> AsyncIterator[MemoryBroker]:
    broker = MemoryBroker(retry_delay=0.01)
    yield broker
    await broker.close()


@pytest.fixture
async def announced(broker: MemoryBroker) -> list[str]:
    """The ids of every `message.stored` event, in order."""
    stored: list[str] = []

    async def collect(body: bytes) -> None:
        stored.extend(event["id"] for event in json.loads(body)["messages"])

    await broker.consume(MESSAGE_STORED, "test-events", collect, prefetch=1)
    return stored


@pytest.fixture
async def worker(
    engine: AsyncEngine, broker: MemoryBroker, announced: list[str]
) -> AsyncIterator[Worker]:
    worker = Worker(engine, broker, prefetch=8)
    await worker.start()
    yield worker
    await worker.close()


@pytest.fixture
async def device(engine: AsyncEngine) -> Device:
    return await add_device(engine, 1001)


# -- the same behaviour on both backends -------------------------------------------------


async def test_data_is_decoded_now_or_when_its_decoder_arrives(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    waiting = [data(device, 1), data(device, 2)]
    other = data(device, 3, UNKNOWN_HASH)
    await worker.handle(encode_batch([*waiting, other]))
    for record in [*waiting, other]:
        row = await message(engine, record)
        assert (row["decode_state"], row["body"]) == ("undecoded", None)

    later = data(device, 4)
    await worker.handle(encode_batch([uplink(device, DEMO_UPLOAD), later]))

    assert (await message(engine, later))["body"] == expected_body(4)

    async def bodies() -> list[Any]:
        return [(await message(engine, record))["body"] for record in waiting]

    assert await eventually(bodies, lambda found: found == [expected_body(1), expected_body(2)])
    row = await message(engine, waiting[0])
    assert (row["decode_state"], row["decode_error"]) == ("decoded", None)
    assert (row["device_id"], row["organization_id"]) == (device.id, device.organization_id)
    assert row["raw"] == m.upload_data(DEMO_HASH, {0: {2: 1}, 4: {6: 3641}, 27: {28: 2243}})
    assert (await message(engine, other))["decode_state"] == "undecoded"


async def test_another_organization_s_decoder_does_not_decode(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    stranger = await add_device(engine, 2002, organization="other")
    mine, theirs = data(device, 1), data(stranger, 2)
    await worker.handle(encode_batch([mine, theirs]))
    await worker.handle(encode_batch([uplink(stranger, DEMO_UPLOAD)]))
    await eventually(lambda: message(engine, theirs), lambda r: r["decode_state"] == "decoded")
    assert (await message(engine, mine))["decode_state"] == "undecoded"


async def test_garbage_with_a_known_decoder_is_stored_failed(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    raw = m.upload_data(DEMO_HASH, {}) + b"\xfe\xff"
    record = uplink(device, raw)
    await worker.handle(encode_batch([uplink(device, DEMO_UPLOAD), record]))
    row = await message(engine, record)
    assert (row["decode_state"], row["body"], row["raw"]) == ("failed", None, raw)
    with pytest.raises(CodecError) as refused:
        decode(DEMO, raw[9:])
    assert row["decode_error"] == str(refused.value)[:200]


async def test_a_batch_twice_stores_and_announces_each_message_once(
    worker: Worker, engine: AsyncEngine, device: Device, announced: list[str]
) -> None:
    batch = [
        session_start(device, ATTRIBUTES),
        uplink(device, m.create_session(ATTRIBUTES), session_id=SESSION_ID),
        uplink(device, DEMO_UPLOAD, session_id=SESSION_ID),
        data(device, 1, session_id=SESSION_ID),
        packet_log(device, "in", 70),
    ]
    encoded = encode_batch(batch)
    await worker.handle(encoded)
    await worker.handle(encoded)
    assert await message_ids(engine) == sorted(ids(batch))
    assert announced == ids(batch)
    (session,) = await select(engine, sa.select(t.sessions))
    assert (session["messages_in"], session["packets_in"], session["bytes_in"]) == (3, 1, 70)
    assert len(await select(engine, sa.select(t.session_log.c.id))) == 1


async def test_sessions_logs_and_uploads_reach_their_tables(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    lines = ["app config interval-sample 60"]
    batch = [
        session_start(device, ATTRIBUTES),
        uplink(device, m.upload_config(lines), session_id=SESSION_ID, at=AT + 1),
        uplink(device, DEMO_UPLOAD, session_id=SESSION_ID, at=AT + 2),
        packet_log(device, "in", 100),
        packet_log(device, "out", 8),
        packet_log(device, "in", 60),
    ]
    await worker.handle(encode_batch(batch))

    (session,) = await select(engine, sa.select(t.sessions))
    assert session["id"] == SESSION_ID
    assert (session["envelope"], session["remote_address"], session["remote_port"]) == (
        "dtls",
        "2001:db8::7",
        5684,
    )
    assert (session["packets_in"], session["packets_out"]) == (2, 1)
    assert (session["bytes_in"], session["bytes_out"], session["messages_in"]) == (160, 8, 2)
    assert session["last_activity_at"] == when(AT + 2)
    assert session["attributes"] == batch[0]["attributes"]
    found = await device_row(engine, device)
    assert (found["vendor"], found["product"], found["fw_version"]) == (
        "HARDWARIO",
        "CHESTER-M",
        "v3.1.0",
    )
    assert (found["imei"], found["iccid"], found["imsi"]) == ("351358810001001", "8942031019", None)
    assert (found["session_id"], found["last_seen_at"]) == (SESSION_ID, when(AT + 2))
    assert (found["config_hash"], found["config_lines"]) == (f"{m.config_hash(lines):016x}", lines)
    assert found["decoder_hash"] == hash_hex(DEMO_HASH)
    (codec,) = await select(engine, sa.select(t.codecs))
    assert (codec["kind"], codec["name"], codec["hash"]) == (
        "decoder",
        "com.hardwario.chester.app.demo",
        hash_hex(DEMO_HASH),
    )
    assert (codec["organization_id"], codec["cbor"]) == (device.organization_id, DEMO_UPLOAD[9:])
    log = await select(engine, sa.select(t.session_log).order_by(t.session_log.c.id))
    assert [(r["direction"], r["size"], r["remote"], r["flags"]) for r in log] == [
        ("in", 100, "2001:db8::7:5684", 0xF0),
        ("out", 8, "2001:db8::7:5684", 0xF0),
        ("in", 60, "2001:db8::7:5684", 0xF0),
    ]


async def test_downlinks_are_sent_delivered_and_answered(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    command = await downlinks.queue_shell(engine, device.serial, ["app config show"])
    key = str(command["id"])
    for attempt, at in ((2, AT), (1, AT + 1)):  # the later record of an earlier attempt
        record = downlink_record(downlink_id=key, state="sent", at=at, attempt=attempt)
        await worker.handle(encode_batch([record]))
    answer = uplink(device, m.upload_shell(command["shell_id"], [("app config show", 0, [])]))
    delivered = downlink_record(downlink_id=key, state="delivered", at=AT + 2)
    await worker.handle(encode_batch([delivered, answer]))

    (row,) = await select(engine, sa.select(t.downlinks))
    assert (row["state"], row["attempts"]) == ("delivered", 2)
    assert (row["sent_at"], row["delivered_at"]) == (when(AT + 1), when(AT + 2))
    assert row["reply_message_id"] == answer["id"]


async def test_an_unusable_codec_is_kept_and_its_data_waits(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    cbor = cbor2.dumps({"version": 2, "type": "decoder", "name": "x", "schema": [{"a": 1}]})
    value = codec_hash(cbor)
    upload = bytes([flap.MessageType.UPLOAD_DECODER]) + value.to_bytes(8, "big") + cbor
    record = data(device, 1, value)
    await worker.handle(encode_batch([uplink(device, upload), record]))
    (codec,) = await select(engine, sa.select(t.codecs))
    assert (codec["hash"], codec["document"], codec["cbor"]) == (hash_hex(value), None, cbor)
    with pytest.raises(CodecError) as refused:
        codec_from_cbor(cbor)
    assert codec["note"] == str(refused.value)
    assert (await message(engine, record))["decode_state"] == "undecoded"
    assert (await device_row(engine, device))["decoder_hash"] == hash_hex(value)


@pytest.mark.parametrize(
    "malformed",
    [
        {"kind": "telemetry"},
        {"kind": "message", "id": "not-a-uuid"},
        {"kind": "downlink", "id": "nope", "state": "sent", "at": AT, "attempt": 1},
        {"kind": "downlink", "id": str(uuid.uuid4()), "state": "sent", "at": AT},
        {"kind": "log", "device_id": str(uuid.uuid4())},
    ],
    ids=["unknown kind", "bad message id", "bad downlink id", "no attempt (0)", "incomplete log"],
)
async def test_a_malformed_record_is_skipped(
    worker: Worker, engine: AsyncEngine, device: Device, malformed: Record
) -> None:
    good = [data(device, 1, UNKNOWN_HASH), data(device, 2, UNKNOWN_HASH)]
    await asyncio.wait_for(worker.handle(encode_batch([good[0], malformed, good[1]])), 5)
    assert await message_ids(engine) == sorted(ids(good))


async def test_concurrent_batches_are_merged_and_all_stored(
    worker: Worker, engine: AsyncEngine, device: Device, announced: list[str]
) -> None:
    others = [await add_device(engine, 1100 + n) for n in range(4)]
    batches = [[data(d, n, at=AT + n) for d in [device, *others]] for n in range(10)]
    await asyncio.gather(*(worker.handle(encode_batch(batch)) for batch in batches))
    everything = sorted(ids([record for batch in batches for record in batch]))
    assert await message_ids(engine) == everything
    assert sorted(announced) == everything
    assert (await device_row(engine, others[2]))["last_seen_at"] == when(AT + 9)


async def test_the_broker_redelivers_a_batch_the_database_refused(
    worker: Worker,
    engine: AsyncEngine,
    broker: MemoryBroker,
    device: Device,
    announced: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts: list[int] = []
    apply = Ingest.apply

    async def refuse_first(self: Ingest, changes: Changes, *args: Any) -> set[uuid.UUID]:
        attempts.append(len(changes.messages))
        if len(attempts) == 1:
            raise OperationalError("INSERT", {}, Exception("the database system is starting up"))
        return await apply(self, changes, *args)

    monkeypatch.setattr(Ingest, "apply", refuse_first)
    batch = [session_start(device, ATTRIBUTES), data(device, 1, session_id=SESSION_ID)]
    await asyncio.wait_for(broker.publish(UPLINK, encode_batch(batch)), 5)
    assert attempts == [1, 1]
    assert await message_ids(engine) == ids(batch)
    assert announced == ids(batch)


async def test_workers_writing_the_same_devices_at_once_do_not_deadlock(
    engine: AsyncEngine, broker: MemoryBroker
) -> None:
    """Two workers, each batch touching every device and session: row locks in one order."""
    fleet = [await add_device(engine, 5000 + n) for n in range(12)]
    sessions = [session_start(d, ATTRIBUTES, session_id=7000 + n) for n, d in enumerate(fleet)]
    workers = [Worker(engine, broker, prefetch=1) for _ in range(2)]
    await workers[0].store(decode_batch(encode_batch(sessions)))

    def batch(round_: int, reverse: bool) -> list[Record]:
        order = list(enumerate(fleet))[:: -1 if reverse else 1]
        records: list[Record] = []
        for n, d in order:
            records.append(data(d, round_, UNKNOWN_HASH, session_id=7000 + n, at=AT + round_))
            records.append(packet_log(d, "in", 10, session_id=7000 + n))
        return decode_batch(encode_batch(records))

    rounds = [w.store(batch(r, w is workers[1])) for r in range(8) for w in workers]
    await asyncio.wait_for(asyncio.gather(*rounds), 60)

    rows = await select(engine, sa.select(t.sessions).order_by(t.sessions.c.id))
    assert [(r["messages_in"], r["packets_in"], r["bytes_in"]) for r in rows] == [
        (16, 16, 160)
    ] * 12
    assert len(await message_ids(engine)) == 8 * 2 * 12


# -- what a device controls must fit its column -------------------------------------------


async def test_long_session_attributes_do_not_refuse_the_batch(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    attributes = {1: "V" * 150, 5: "b" * 300, 9: 10**30, 10: 10**25, 17: "8" * 40, 8: "p" * 30}
    record = data(device, 1, UNKNOWN_HASH)
    await asyncio.wait_for(
        worker.handle(encode_batch([session_start(device, attributes), record])), 5
    )
    await message(engine, record)
    found = await device_row(engine, device)
    assert found["vendor"] == "V" * 100
    assert found["fw_bundle"] == "b" * 200
    assert found["imsi"] == str(10**30)[:20]
    assert found["imei"] == str(10**25)[:20]
    assert (found["iccid"], found["ble_passkey"]) == ("8" * 24, "p" * 20)
    assert found["attributes"]["vendor"] == "V" * 150  # the whole value stays in the JSON


async def test_a_long_codec_name_does_not_refuse_the_batch(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    yaml_text = DEMO_DECODER.replace("com.hardwario.chester.app.demo", "n" * 300)
    codec_hash, upload = m.upload_codec("decoder", yaml_text)
    record = data(device, 1, codec_hash)
    await asyncio.wait_for(worker.handle(encode_batch([uplink(device, upload), record])), 5)
    assert (await message(engine, record))["body"] == expected_body(1)
    (codec,) = await select(engine, sa.select(t.codecs))
    assert codec["name"] == "n" * 200
    assert codec["document"]["name"] == "n" * 300


async def test_a_long_log_detail_does_not_refuse_the_batch(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    # what the gateway logs for a refused codec upload names the device's own keyword
    detail = "unknown keyword $" + "z" * 300
    record = data(device, 1, UNKNOWN_HASH)
    refused = packet_log(device, "in", 500, detail=detail)
    await asyncio.wait_for(worker.handle(encode_batch([refused, record])), 5)
    await message(engine, record)
    (log,) = await select(engine, sa.select(t.session_log))
    assert log["detail"] == detail[:200]


async def test_decoded_text_is_stored_as_sent(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    texts = {10: "ünïcödé ✓", 11: "tab\tand\nnewline", 12: 'quote " and \\ backslash'}
    record = uplink(device, m.upload_data(DEMO_HASH, {9: texts}))
    await worker.handle(encode_batch([uplink(device, DEMO_UPLOAD), record]))
    row = await message(engine, record)
    assert row["body"] == decode(DEMO, m.upload_data(DEMO_HASH, {9: texts})[9:])
    assert row["body"]["attribute"]["vendor_name"] == "ünïcödé ✓"


async def test_data_is_decoded_when_another_worker_stored_its_decoder(
    engine: AsyncEngine, broker: MemoryBroker, device: Device
) -> None:
    first, second = Worker(engine, broker, prefetch=1), Worker(engine, broker, prefetch=1)
    try:
        await first.store(decode_batch(encode_batch([data(device, 1)])))  # hash now "missing"
        await second.store(decode_batch(encode_batch([uplink(device, DEMO_UPLOAD)])))
        late = data(device, 2)
        await first.store(decode_batch(encode_batch([late])))
        row = await eventually(
            lambda: message(engine, late), lambda r: r["decode_state"] != "undecoded"
        )
    finally:
        await first.close()
        await second.close()
    assert (row["decode_state"], row["body"]) == ("decoded", expected_body(2))


async def test_a_nul_character_in_device_text_does_not_refuse_the_batch(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    upload = uplink(device, DEMO_UPLOAD)
    await worker.handle(encode_batch([upload]))
    record = uplink(device, m.upload_data(DEMO_HASH, {9: {10: "bad\x00vendor"}}))
    neighbour = data(device, 1, UNKNOWN_HASH)
    await asyncio.wait_for(worker.handle(encode_batch([record, neighbour])), 5)
    assert await message_ids(engine) == sorted(ids([upload, record, neighbour]))
    stored = await message(engine, record)
    assert stored["decode_state"] == "decoded"
    assert stored["body"]["attribute"]["vendor_name"] == "bad\ufffdvendor"
