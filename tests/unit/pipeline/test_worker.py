"""The pipeline worker on SQLite with the in-process broker: what each record stores.

Batches are built as the gateway builds them, by the builders of
tests/worker_kit.py over a base64 link. The worker runs as in `nubes
serve` (its writer started, consuming `uplink` from a `MemoryBroker`), and
every `message.stored` event it publishes is collected, so a test can say
exactly which messages were announced. PostgreSQL runs the checks that
differ there in tests/integration/pipeline/test_worker_postgres.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import uuid
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import cbor2
import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from helpers import embedded_cloud, eventually
from nubes import flap
from nubes.bootstrap import Runtime
from nubes.codec import codec_from_yaml, codec_hash, decode, hash_hex, yaml_to_cbor
from nubes.errors import CodecError
from nubes.pipeline.broker import MESSAGE_STORED, UPLINK, MemoryBroker
from nubes.pipeline.records import (
    Record,
    decode_batch,
    downlink_record,
    encode_batch,
    message_record,
    unb64,
)
from nubes.pipeline.worker import Worker
from nubes.services import devices, downlinks
from nubes.sim import messages as m
from nubes.sim.data import sample_values
from nubes.sim.device import Profile, SharedSocket, SimDevice, Stats
from nubes.sim.runner import claim_token_for
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
    frame,
    ids,
    message,
    message_ids,
    select,
    when,
)

SESSION_ID = 4242
REMOTE = ("192.0.2.10", 5684)
UNKNOWN_HASH = 0x0123456789ABCDEF

DEMO_ENCODER = resources.files("nubes.sim").joinpath("codecs", "demo.encoder.yaml").read_text()
ENCODER_HASH, ENCODER_UPLOAD = m.upload_codec("encoder", DEMO_ENCODER)
CATALOG = Path(__file__).resolve().parents[3].parent / "shared" / "codecs"
CATALOG_DECODERS = sorted(path.name for path in CATALOG.glob("*.decoder.yaml"))

ATTRIBUTES = {
    1: "HARDWARIO",
    2: "CHESTER-M",
    3: "CGLS",
    4: "R3.2",
    5: "com.hardwario.chester.app.demo",
    6: "demo",
    7: "v3.1.0",
    8: "123456",
    9: 901288000001001,
    10: 351358810001001,
    11: "mfw_nrf9160_1.3.5",
    16: 1001,
    17: "89420310190000001001",
}

# -- batches as the gateway builds them ------------------------------------------------

LINK = Link(SESSION_ID, envelope="base64", remote=REMOTE, flags=0xC0, attributes=ATTRIBUTES)
uplink, data, session_start, packet_log = (
    LINK.uplink,
    LINK.data,
    LINK.session_start,
    LINK.packet_log,
)


def decode_error(record: Record) -> str:
    """What decoding the record's data with the demo decoder fails with, as stored."""
    with pytest.raises(CodecError) as caught:
        decode(DEMO, unb64(record["raw"])[9:])
    return str(caught.value)[:200]


def wire(records: list[Record]) -> list[Record]:
    """The records as a worker receives them: through the batch's JSON (ids as text)."""
    return decode_batch(encode_batch(records))


# -- reading the database ---------------------------------------------------------------


async def states(engine: AsyncEngine, records: list[Record]) -> list[str | None]:
    return [(await message(engine, record))["decode_state"] for record in records]


async def count(engine: AsyncEngine, table: sa.Table) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def engine(migrated_sqlite: Database) -> AsyncEngine:
    return migrated_sqlite.engine


@pytest.fixture
async def broker() -> AsyncIterator[MemoryBroker]:
    broker = MemoryBroker(retry_delay=0.01)
    yield broker
    await broker.close()


@pytest.fixture
async def announced(broker: MemoryBroker) -> list[dict[str, Any]]:
    """Every `message.stored` event, in order (publish waits for this consumer)."""
    events: list[dict[str, Any]] = []

    async def collect(body: bytes) -> None:
        events.append(json.loads(body))

    await broker.consume(MESSAGE_STORED, "test-events", collect, prefetch=1)
    return events


@pytest.fixture
async def worker(
    engine: AsyncEngine, broker: MemoryBroker, announced: list[dict[str, Any]]
) -> AsyncIterator[Worker]:
    worker = Worker(engine, broker, prefetch=8)
    await worker.start()
    yield worker
    await worker.close()


@pytest.fixture
async def device(engine: AsyncEngine) -> Device:
    return await add_device(engine, 1001)


def announced_ids(events: list[dict[str, Any]]) -> list[str]:
    return [event["id"] for body in events for event in body["messages"]]


# -- data and codecs --------------------------------------------------------------------


async def test_data_with_a_known_decoder_is_stored_decoded(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    raw = m.upload_data(DEMO_HASH, frame(7))
    upload, record = uplink(device, DEMO_UPLOAD), uplink(device, raw, at=AT + 1)
    await worker.handle(encode_batch([upload, record]))

    row = await message(engine, record)
    assert row == {
        "id": record["id"],
        "created_at": when(AT + 1),
        "organization_id": device.organization_id,
        "group_id": device.group_id,
        "device_id": device.id,
        "session_id": SESSION_ID,
        "type": "data",
        "direction": "up",
        "body": expected_body(7),
        "raw": raw,
        "codec_hash": hash_hex(DEMO_HASH),
        "decode_state": "decoded",
        "decode_error": None,
        "downlink_id": None,
    }
    assert row["body"] == decode(DEMO, raw[9:])


async def test_a_new_worker_decodes_with_the_codec_the_database_holds(
    worker: Worker, engine: AsyncEngine, broker: MemoryBroker, device: Device
) -> None:
    await worker.handle(encode_batch([uplink(device, DEMO_UPLOAD)]))
    restarted = Worker(engine, broker, prefetch=1)  # its codec book is empty
    record = data(device, 3)
    await restarted.store(wire([record]))
    row = await message(engine, record)
    assert (row["decode_state"], row["body"]) == ("decoded", expected_body(3))


def test_the_catalog_of_decoders_is_there() -> None:
    assert len(CATALOG_DECODERS) == 11, f"expected the 11 catalog decoders in {CATALOG}"


@pytest.mark.parametrize("name", CATALOG_DECODERS)
async def test_data_of_every_catalog_decoder_is_decoded(
    worker: Worker, engine: AsyncEngine, device: Device, name: str
) -> None:
    yaml_text = (CATALOG / name).read_text()
    codec_hash, upload = m.upload_codec("decoder", yaml_text)
    values = sample_values(yaml.safe_load(yaml_text), 5, random.Random(name))
    raw = m.upload_data(codec_hash, values)
    record = uplink(device, raw)
    await worker.handle(encode_batch([uplink(device, upload), record]))
    row = await message(engine, record)
    assert row["decode_state"] == "decoded"
    assert row["body"] == decode(codec_from_yaml(yaml_text), raw[9:])
    assert row["body"], "a frame of sample values decodes to something"


async def test_data_with_an_unknown_hash_is_kept_undecoded(
    worker: Worker, engine: AsyncEngine, device: Device, announced: list[dict[str, Any]]
) -> None:
    record = data(device, 1, UNKNOWN_HASH)
    await worker.handle(encode_batch([record]))
    row = await message(engine, record)
    assert row["decode_state"] == "undecoded"
    assert row["body"] is None
    assert row["decode_error"] is None
    assert row["codec_hash"] == "0123456789abcdef"
    assert row["raw"] == m.upload_data(UNKNOWN_HASH, frame(1))
    assert announced_ids(announced) == [str(record["id"])]
    assert announced[0]["messages"][0]["body"] is None


async def test_waiting_data_is_decoded_when_its_decoder_arrives(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    early = [data(device, sequence) for sequence in range(1, 4)]
    other = data(device, 9, UNKNOWN_HASH)
    await worker.handle(encode_batch([*early, other]))
    assert await states(engine, [*early, other]) == ["undecoded"] * 4

    await worker.handle(encode_batch([uplink(device, DEMO_UPLOAD)]))

    await eventually(lambda: states(engine, early), lambda found: found == ["decoded"] * 3)
    bodies = [(await message(engine, record))["body"] for record in early]
    assert bodies == [expected_body(1), expected_body(2), expected_body(3)]
    assert (await message(engine, other))["decode_state"] == "undecoded"


async def test_data_before_its_decoder_in_one_batch_is_decoded_too(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    before, after = data(device, 1), data(device, 2)
    await worker.handle(encode_batch([before, uplink(device, DEMO_UPLOAD), after]))
    assert (await message(engine, after))["body"] == expected_body(2)
    row = await eventually(
        lambda: message(engine, before), lambda r: r["decode_state"] != "undecoded"
    )
    assert (row["decode_state"], row["body"]) == ("decoded", expected_body(1))


async def test_more_waiting_messages_than_one_redecode_round_are_all_decoded(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    waiting = [data(device, sequence) for sequence in range(1001)]  # two rounds of 500 and one
    await worker.handle(encode_batch(waiting))
    await worker.handle(encode_batch([uplink(device, DEMO_UPLOAD)]))

    async def undecoded() -> int:
        query = sa.select(sa.func.count()).where(t.messages.c.decode_state == "undecoded")
        async with engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    await eventually(undecoded, lambda left: left == 0)
    rows = await select(engine, sa.select(t.messages.c.body).where(t.messages.c.type == "data"))
    assert sorted(row["body"]["message"]["sequence"] for row in rows) == list(range(1001))


async def test_waiting_garbage_fails_when_its_decoder_arrives(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    garbage = uplink(device, m.upload_data(DEMO_HASH, {}) + b"\xff")
    good = data(device, 1)
    await worker.handle(encode_batch([garbage, good]))
    await worker.handle(encode_batch([uplink(device, DEMO_UPLOAD)]))
    await eventually(lambda: states(engine, [garbage, good]), lambda s: s == ["failed", "decoded"])
    row = await message(engine, garbage)
    assert row["body"] is None
    assert row["decode_error"] == decode_error(garbage)


async def test_data_that_does_not_decode_is_stored_failed(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    await worker.handle(encode_batch([uplink(device, DEMO_UPLOAD)]))
    raw = m.upload_data(DEMO_HASH, {}) + b"\xfe\xff"  # a map, then bytes that are not CBOR
    record = uplink(device, raw)
    await worker.handle(encode_batch([record]))
    row = await message(engine, record)
    assert row["decode_state"] == "failed"
    assert row["body"] is None
    assert row["raw"] == raw
    assert row["decode_error"] == decode_error(record)
    assert row["decode_error"].startswith("invalid CBOR")


async def test_a_decoder_of_another_organization_does_not_decode(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    stranger = await add_device(engine, 2002, organization="other")
    assert stranger.organization_id != device.organization_id
    mine = data(device, 1)
    theirs = data(stranger, 2, session_id=None)
    await worker.handle(encode_batch([mine, theirs]))

    await worker.handle(encode_batch([uplink(stranger, DEMO_UPLOAD, session_id=None)]))

    # The other organization's own waiting data is decoded by the redecode that
    # its upload started; had that redecode matched ours, it would be decoded too.
    await eventually(lambda: message(engine, theirs), lambda r: r["decode_state"] == "decoded")
    assert (await message(engine, mine))["decode_state"] == "undecoded"
    later = data(device, 3)
    await worker.handle(encode_batch([later]))
    assert (await message(engine, later))["decode_state"] == "undecoded"
    codecs = await select(engine, sa.select(t.codecs.c.organization_id))
    assert [row["organization_id"] for row in codecs] == [stranger.organization_id]


async def test_data_is_decoded_when_another_worker_stored_its_decoder(
    engine: AsyncEngine, broker: MemoryBroker, device: Device
) -> None:
    """Several workers share a queue: the decoder may reach one, data the other."""
    first, second = Worker(engine, broker, prefetch=1), Worker(engine, broker, prefetch=1)
    early = data(device, 1)
    await first.store(wire([early]))  # the first worker now remembers the hash as unknown
    await second.store(wire([uplink(device, DEMO_UPLOAD)]))
    await eventually(lambda: message(engine, early), lambda r: r["decode_state"] == "decoded")
    late = data(device, 2)
    await first.store(wire([late]))
    try:
        row = await eventually(
            lambda: message(engine, late), lambda r: r["decode_state"] != "undecoded"
        )
    finally:
        await first.close()
        await second.close()
    assert (row["decode_state"], row["body"]) == ("decoded", expected_body(2))


# -- device uploads ---------------------------------------------------------------------


async def test_codec_uploads_are_stored_and_set_on_the_device(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    decoder, encoder = uplink(device, DEMO_UPLOAD), uplink(device, ENCODER_UPLOAD, at=AT + 2)
    await worker.handle(encode_batch([decoder, encoder]))
    await worker.handle(encode_batch([uplink(device, DEMO_UPLOAD, at=AT + 3)]))  # once more

    rows = await select(engine, sa.select(t.codecs).order_by(t.codecs.c.kind))
    assert [(r["kind"], r["hash"], r["source"]) for r in rows] == [
        ("decoder", hash_hex(DEMO_HASH), "device"),
        ("encoder", hash_hex(ENCODER_HASH), "device"),
    ]
    assert {(r["name"], r["organization_id"]) for r in rows} == {
        ("com.hardwario.chester.app.demo", device.organization_id)
    }
    assert rows[0]["cbor"] == yaml_to_cbor(DEMO_DECODER) == DEMO_UPLOAD[9:]
    assert rows[0]["document"] == yaml.safe_load(DEMO_DECODER)
    assert rows[0]["created_at"] == when(AT)
    assert rows[1]["cbor"] == yaml_to_cbor(DEMO_ENCODER)
    found = await device_row(engine, device)
    assert found["decoder_hash"] == hash_hex(DEMO_HASH)
    assert found["encoder_hash"] == hash_hex(ENCODER_HASH)
    assert found["last_seen_at"] == when(AT + 3)
    row = await message(engine, decoder)
    assert (row["type"], row["codec_hash"], row["decode_state"]) == (
        "decoder",
        hash_hex(DEMO_HASH),
        None,
    )
    assert row["body"] == {"hash": hash_hex(DEMO_HASH), "size": len(DEMO_UPLOAD) - 9}


def unusable_upload() -> tuple[str, bytes]:
    """A decoder upload whose hash is right but whose document our rules refuse."""
    cbor = cbor2.dumps(
        {"version": 2, "type": "decoder", "name": "x", "schema": [{"a": [{"$bad": 1}]}]}
    )
    value = codec_hash(cbor)
    return hash_hex(value), bytes([flap.MessageType.UPLOAD_DECODER]) + value.to_bytes(
        8, "big"
    ) + cbor


async def test_an_unusable_codec_is_kept_with_the_reason(
    worker: Worker, engine: AsyncEngine, device: Device, caplog: pytest.LogCaptureFixture
) -> None:
    hex_hash, raw = unusable_upload()
    upload = uplink(device, raw)
    await worker.handle(encode_batch([upload]))
    (warning,) = [r for r in caplog.records if "cannot use" in r.getMessage()]
    assert warning.__dict__["device_id"] == device.id  # a field of the JSON log line
    assert warning.__dict__["message_id"] == (await message(engine, upload))["id"]
    (row,) = await select(engine, sa.select(t.codecs))
    assert (row["kind"], row["hash"], row["name"]) == (
        "decoder",
        hex_hash,
        f"(unusable decoder {hex_hash})",
    )
    assert (row["cbor"], row["document"]) == (raw[9:], None)
    assert row["note"] == "unknown keyword $bad at a"
    # the device is not asked for it again, and its data waits for rules that can read it
    assert (await device_row(engine, device))["decoder_hash"] == hex_hash
    record = uplink(device, bytes([flap.MessageType.UPLOAD_DATA]) + raw[1:9] + cbor2.dumps({0: 1}))
    await worker.handle(encode_batch([record]))
    assert (await message(engine, record))["decode_state"] == "undecoded"


async def test_data_of_an_unusable_codec_costs_no_codec_query_per_batch(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    _, raw = unusable_upload()
    data_raw = bytes([flap.MessageType.UPLOAD_DATA]) + raw[1:9] + cbor2.dumps({0: 1})
    await worker.handle(encode_batch([uplink(device, raw), uplink(device, data_raw)]))
    await worker.handle(encode_batch([uplink(device, data_raw)]))  # the book learns
    queries: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM codecs" in statement:
            queries.append(statement)

    sa.event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        for _ in range(3):
            await worker.handle(encode_batch([uplink(device, data_raw)]))
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", seen)
    assert queries == []
    rows = await select(
        engine, sa.select(t.messages.c.decode_state).where(t.messages.c.type == "data")
    )
    assert [row["decode_state"] for row in rows] == ["undecoded"] * 5


async def test_a_config_upload_sets_the_device_config(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    lines = ["app config interval-sample 60", "app config interval-report 900"]
    record = uplink(device, m.upload_config(lines))
    await worker.handle(encode_batch([record]))
    found = await device_row(engine, device)
    assert found["config_hash"] == f"{m.config_hash(lines):016x}"
    assert found["config_lines"] == lines
    row = await message(engine, record)
    assert (row["type"], row["body"]) == ("config", {"hash": found["config_hash"], "lines": lines})


# -- sessions and the communication log -------------------------------------------------


async def test_a_session_record_stores_the_session_and_device_attributes(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    session = session_start(device)
    await worker.handle(encode_batch([session]))

    (row,) = await select(engine, sa.select(t.sessions))
    assert row == {
        "id": SESSION_ID,
        "device_id": device.id,
        "organization_id": device.organization_id,
        "envelope": "base64",
        "remote_address": "192.0.2.10",
        "remote_port": 5684,
        "started_at": when(AT),
        "last_activity_at": when(AT),
        "ended_at": None,
        "end_reason": None,
        "packets_in": 0,
        "packets_out": 0,
        "bytes_in": 0,
        "bytes_out": 0,
        "messages_in": 0,
        "messages_out": 0,
        "attributes": session["attributes"],
    }
    found = await device_row(engine, device)
    assert {name: found[name] for name in ("vendor", "product", "hw_variant", "hw_revision")} == {
        "vendor": "HARDWARIO",
        "product": "CHESTER-M",
        "hw_variant": "CGLS",
        "hw_revision": "R3.2",
    }
    assert (found["fw_bundle"], found["fw_name"], found["fw_version"]) == (
        "com.hardwario.chester.app.demo",
        "demo",
        "v3.1.0",
    )
    assert (found["imei"], found["imsi"], found["iccid"]) == (
        "351358810001001",
        "901288000001001",
        "89420310190000001001",
    )
    assert (found["modem_fw"], found["ble_passkey"]) == ("mfw_nrf9160_1.3.5", "123456")
    assert found["attributes"] == session["attributes"]
    assert found["attributes"]["serial"] == 1001
    assert (found["session_id"], found["last_seen_at"]) == (SESSION_ID, when(AT))


async def test_a_new_session_replaces_the_device_attributes(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    await worker.handle(encode_batch([session_start(device)]))
    newer = {**ATTRIBUTES, 7: "v3.2.0"}
    del newer[10]
    await worker.handle(encode_batch([session_start(device, newer, session_id=4243, at=AT + 60)]))
    found = await device_row(engine, device)
    assert (found["fw_version"], found["imei"], found["session_id"]) == ("v3.2.0", None, 4243)
    assert [row["id"] for row in await select(engine, sa.select(t.sessions.c.id))] == [4242, 4243]


async def test_log_records_fill_the_session_log_and_its_counters(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    session = session_start(device)
    create = uplink(device, m.create_session(ATTRIBUTES))
    answer = message_record(
        message_id=uuid.uuid4(),
        at=AT + 0.5,
        device=device,
        session_id=SESSION_ID,
        type_name="session",
        direction="down",
        raw=b"\x80\xa0",
        body={"session_id": SESSION_ID},
    )
    logs = [
        packet_log(device, "in", 90, message_id=create["id"]),
        packet_log(device, "out", 12, at=AT + 0.25, message_id=create["id"]),
        packet_log(device, "in", 10, at=AT + 0.5, seq=1),
        packet_log(device, "out", 40, at=AT + 0.75, seq=1),
        packet_log(device, "in", 33, at=AT + 1, seq=2, outcome="invalid", detail="bad tag"),
    ]
    await worker.handle(encode_batch([session, create, logs[0], logs[1]]))
    await worker.handle(encode_batch([answer, *logs[2:]]))

    (row,) = await select(engine, sa.select(t.sessions))
    counters = ("packets_in", "packets_out", "bytes_in", "bytes_out", "messages_in", "messages_out")
    assert {name: row[name] for name in counters} == {
        "packets_in": 3,
        "packets_out": 2,
        "bytes_in": 133,
        "bytes_out": 52,
        "messages_in": 1,
        "messages_out": 1,
    }
    assert row["last_activity_at"] == when(AT + 1)
    log = await select(engine, sa.select(t.session_log).order_by(t.session_log.c.id))
    assert [
        (r["direction"], r["size"], r["seq"], r["outcome"], r["detail"], r["at"]) for r in log
    ] == [
        ("in", 90, 0, "accepted", None, when(AT)),
        ("out", 12, 0, "accepted", None, when(AT + 0.25)),
        ("in", 10, 1, "accepted", None, when(AT + 0.5)),
        ("out", 40, 1, "accepted", None, when(AT + 0.75)),
        ("in", 33, 2, "invalid", "bad tag", when(AT + 1)),
    ]
    where = {(r["session_id"], r["device_id"], r["envelope"], r["remote"], r["flags"]) for r in log}
    assert where == {(SESSION_ID, device.id, "base64", "192.0.2.10:5684", 0xC0)}
    assert [r["message_id"] for r in log[:2]] == [create["id"]] * 2
    assert log[2]["message_id"] is None


# -- downlinks --------------------------------------------------------------------------


async def downlink_row(engine: AsyncEngine, downlink_id: uuid.UUID) -> dict[str, Any]:
    (row,) = await select(engine, sa.select(t.downlinks).where(t.downlinks.c.id == downlink_id))
    return row


async def test_downlink_records_move_the_downlink_on(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    queued = await downlinks.queue_config(engine, device.serial, ["app config interval 30"])
    key = str(queued["id"])

    await worker.handle(
        encode_batch([downlink_record(downlink_id=key, state="sent", at=AT, attempt=1)])
    )
    row = await downlink_row(engine, queued["id"])
    assert (row["state"], row["attempts"], row["sent_at"], row["updated_at"]) == (
        "sent",
        1,
        when(AT),
        when(AT),
    )
    await worker.handle(
        encode_batch([downlink_record(downlink_id=key, state="sent", at=AT + 5, attempt=2)])
    )
    # a late record of an earlier attempt never lowers the count
    await worker.handle(
        encode_batch([downlink_record(downlink_id=key, state="sent", at=AT + 6, attempt=1)])
    )
    row = await downlink_row(engine, queued["id"])
    assert (row["state"], row["attempts"], row["sent_at"]) == ("sent", 2, when(AT + 6))

    delivered = downlink_record(downlink_id=key, state="delivered", at=AT + 7)
    down = message_record(
        message_id=uuid.uuid4(),
        at=AT + 7,
        device=device,
        session_id=SESSION_ID,
        type_name="config",
        direction="down",
        raw=queued["message"],
        body=queued["request"],
        downlink_id=queued["id"],
    )
    await worker.handle(encode_batch([delivered, down]))
    row = await downlink_row(engine, queued["id"])
    assert (row["state"], row["attempts"], row["delivered_at"]) == ("delivered", 2, when(AT + 7))
    stored = await message(engine, down)
    assert (stored["direction"], stored["downlink_id"], stored["raw"]) == (
        "down",
        queued["id"],
        queued["message"],
    )
    assert stored["body"] == ["app config interval 30"]

    # a repeated 'sent' after delivery keeps the state
    await worker.handle(
        encode_batch([downlink_record(downlink_id=key, state="sent", at=AT + 8, attempt=3)])
    )
    assert (await downlink_row(engine, queued["id"]))["state"] == "delivered"


async def test_a_shell_answer_links_to_its_command(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    stranger = await add_device(engine, 2002)
    command = await downlinks.queue_shell(engine, device.serial, ["app config show"])
    other = await downlinks.queue_shell(engine, device.serial, ["uptime"])
    shell_id = command["shell_id"]
    results = [("app config show", 0, ["app config interval 60"])]
    # the same id from another device must not link (ids are the device's to echo)
    forged = uplink(stranger, m.upload_shell(shell_id, results), session_id=None)
    await worker.handle(encode_batch([forged]))
    assert (await downlink_row(engine, command["id"]))["reply_message_id"] is None

    answer = uplink(device, m.upload_shell(shell_id, results), at=AT + 3)
    await worker.handle(encode_batch([answer]))

    row = await downlink_row(engine, command["id"])
    assert row["reply_message_id"] == answer["id"]
    assert row["updated_at"] == when(AT + 3)
    assert (await downlink_row(engine, other["id"]))["reply_message_id"] is None
    stored = await message(engine, answer)
    assert stored["body"] == {
        "id": shell_id.hex(),
        "results": [{"command": "app config show", "rc": 0, "output": ["app config interval 60"]}],
    }


# -- redelivery, announcements, concurrency ---------------------------------------------


async def test_a_batch_handled_twice_stores_and_announces_each_message_once(
    worker: Worker, engine: AsyncEngine, device: Device, announced: list[dict[str, Any]]
) -> None:
    batch = [
        session_start(device),
        uplink(device, m.create_session(ATTRIBUTES)),
        uplink(device, DEMO_UPLOAD, at=AT + 1),
        uplink(device, m.upload_config(["app config interval 60"]), at=AT + 2),
        data(device, 1, at=AT + 3),
        data(device, 2, UNKNOWN_HASH, at=AT + 4),
    ]
    body = encode_batch(batch)
    await worker.handle(body)
    await worker.handle(body)

    assert await message_ids(engine) == sorted(ids(batch))
    assert len(announced) == 1, "the second handling announced again"
    assert announced_ids(announced) == ids(batch)
    (session,) = await select(engine, sa.select(t.sessions))
    assert session["messages_in"] == 5, "messages of a redelivered batch were counted twice"
    assert await count(engine, t.codecs) == 1


async def test_a_batch_without_an_id_handled_twice_stores_each_message_once(
    worker: Worker, engine: AsyncEngine, device: Device, announced: list[dict[str, Any]]
) -> None:
    """Batches of gateways older than batch ids: the message ids alone keep it once."""
    batch = [session_start(device), data(device, 1, UNKNOWN_HASH), data(device, 2, UNKNOWN_HASH)]
    document = json.loads(encode_batch(batch))
    del document["id"]
    body = json.dumps(document).encode()
    await worker.handle(body)
    await worker.handle(body)
    assert await message_ids(engine) == sorted(ids(batch))
    assert [announced_ids([event]) for event in announced] == [ids(batch)]
    (session,) = await select(engine, sa.select(t.sessions))
    assert session["messages_in"] == 2


async def test_a_redelivered_batch_with_new_messages_announces_only_those(
    worker: Worker, engine: AsyncEngine, device: Device, announced: list[dict[str, Any]]
) -> None:
    first = [data(device, 1), data(device, 2)]
    await worker.handle(encode_batch(first))
    more = data(device, 3)
    await worker.handle(encode_batch([*first, more]))
    assert [announced_ids([event]) for event in announced] == [ids(first), ids([more])]


async def test_the_stored_event_carries_the_message(
    worker: Worker, device: Device, announced: list[dict[str, Any]]
) -> None:
    record = data(device, 4, at=AT + 0.125)
    await worker.handle(encode_batch([uplink(device, DEMO_UPLOAD), record]))
    (event,) = [e for e in announced[0]["messages"] if e["id"] == str(record["id"])]
    assert announced[0]["v"] == 1
    assert event == {
        "id": str(record["id"]),
        "created_at": "2025-06-15T15:06:40.125000+00:00",
        "organization_id": str(device.organization_id),
        "group_id": str(device.group_id),
        "device_id": str(device.id),
        "session_id": SESSION_ID,
        "type": "data",
        "direction": "up",
        "body": expected_body(4),
        "codec_hash": hash_hex(DEMO_HASH),
        "raw": base64.b64encode(unb64(record["raw"])).decode("ascii"),
        "decode_state": "decoded",
        "decode_error": None,
        "downlink_id": None,
    }


async def test_a_redelivered_batch_logs_its_packets_once(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    body = encode_batch([session_start(device), packet_log(device, "in", 50)])
    await worker.handle(body)
    await worker.handle(body)
    assert await count(engine, t.session_log) == 1
    (session,) = await select(engine, sa.select(t.sessions))
    assert (session["packets_in"], session["bytes_in"]) == (1, 50)


async def test_concurrent_batches_are_merged_and_all_stored(
    worker: Worker,
    engine: AsyncEngine,
    device: Device,
    announced: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    writes = count_writes(monkeypatch)
    batches = [[data(device, 10 * b + i, at=AT + b) for i in range(5)] for b in range(8)]
    await worker.handle(encode_batch([uplink(device, DEMO_UPLOAD)]))
    assert writes == [1]

    await asyncio.gather(*(worker.handle(encode_batch(batch)) for batch in batches))

    expected = sorted(ids([record for batch in batches for record in batch]))
    assert [i for i in await message_ids(engine) if i in expected] == expected
    assert writes == [1, 40], "the eight waiting batches were not written as one"
    assert sorted(announced_ids(announced[1:])) == expected
    rows = await select(
        engine, sa.select(t.messages.c.decode_state).where(t.messages.c.type == "data")
    )
    assert {row["decode_state"] for row in rows} == {"decoded"}


def count_writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records the number of messages of every `Ingest.apply` call."""
    sizes: list[int] = []
    apply = Ingest.apply

    async def counting(self: Ingest, changes: Changes, *args: Any) -> set[uuid.UUID]:
        sizes.append(len(changes.messages))
        return await apply(self, changes, *args)

    monkeypatch.setattr(Ingest, "apply", counting)
    return sizes


async def test_a_refused_batch_does_not_take_down_those_merged_with_it(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    ghost = Device(uuid.uuid4(), device.organization_id, None, 9999)  # not in the database
    good = [data(device, 1, UNKNOWN_HASH), data(device, 2, UNKNOWN_HASH)]
    refused = [session_start(ghost), data(ghost, 3, UNKNOWN_HASH)]
    outcomes = await asyncio.gather(
        worker.handle(encode_batch([good[0]])),
        worker.handle(encode_batch(refused)),
        worker.handle(encode_batch([good[1]])),
        return_exceptions=True,
    )
    assert outcomes[0] is None
    assert outcomes[2] is None
    assert isinstance(outcomes[1], IntegrityError)  # left unacked, for the broker to redeliver
    assert await message_ids(engine) == sorted(ids(good))


# -- what is not a record ---------------------------------------------------------------


def malformed_records(device: Device) -> dict[str, Record]:
    def change(record: Record, **values: Any) -> Record:
        return {**record, **values}

    def without(record: Record, name: str) -> Record:
        return {key: value for key, value in record.items() if key != name}

    sample = data(device, 1)
    config = uplink(device, m.upload_config(["a"]))
    sent = downlink_record(downlink_id=str(uuid.uuid4()), state="sent", at=AT, attempt=1)
    return {
        "unknown kind": {"kind": "telemetry", "id": str(uuid.uuid4())},
        "no kind": without(sample, "kind"),
        "message id not a uuid": change(sample, id="not-a-uuid"),
        "message device id not a uuid": change(sample, device_id="12345"),
        "message without raw": without(sample, "raw"),
        "message raw not base64": change(sample, raw="abc"),
        "message time not a number": change(sample, at="yesterday"),
        "message time out of range": change(sample, at=1e20),
        "config body not a map": change(config, body=["a"]),
        "session without envelope": without(session_start(device), "envelope"),
        "session id not a number": change(session_start(device), id="abc"),
        "session attributes not a map": change(session_start(device), attributes=[1, 2]),
        "downlink id not a uuid": change(sent, id="nope"),
        "downlink without state": without(sent, "state"),
        "downlink without attempt (taken as 0)": without(sent, "attempt"),
        "log without size": without(packet_log(device, "in", 10), "size"),
        "log message id not a uuid": change(packet_log(device, "in", 10), message_id="x"),
    }


MALFORMED = list(malformed_records(Device(uuid.uuid4(), uuid.uuid4(), None, 1)))


@pytest.mark.parametrize("case", MALFORMED)
async def test_a_malformed_record_is_skipped_and_the_rest_stored(
    worker: Worker, engine: AsyncEngine, device: Device, case: str
) -> None:
    before, after = data(device, 1, UNKNOWN_HASH), data(device, 2, UNKNOWN_HASH)
    bad = malformed_records(device)[case]
    await asyncio.wait_for(worker.handle(encode_batch([before, bad, after])), 5)
    assert await message_ids(engine) == sorted(ids([before, after]))
    assert await count(engine, t.sessions) == 0
    assert await count(engine, t.session_log) == 0


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", b'{"v": 2, "records": []}', b'{"v": 1}', b'{"v": 1, "records": {}}'],
)
async def test_a_body_that_is_not_a_batch_is_dropped(
    worker: Worker, engine: AsyncEngine, announced: list[dict[str, Any]], body: bytes
) -> None:
    await asyncio.wait_for(worker.handle(body), 2)  # returns (is acked) without raising
    assert await count(engine, t.messages) == 0
    assert announced == []


async def test_records_that_are_not_objects_are_ignored(
    worker: Worker, engine: AsyncEngine, device: Device
) -> None:
    record = data(device, 1, UNKNOWN_HASH)
    body = encode_batch([record])[:-2] + b',1,"x",null,[]]}'
    await worker.handle(body)
    assert await message_ids(engine) == [str(record["id"])]


# -- the database refuses for a moment --------------------------------------------------


def refuse_once(monkeypatch: pytest.MonkeyPatch, *, after_commit: bool = False) -> list[Changes]:
    """Makes the first `Ingest.apply` that holds data fail, before or after its commit."""
    calls: list[Changes] = []
    apply = Ingest.apply

    def holds_data(changes: Changes) -> bool:
        return any(row["type"] == "data" for row in changes.messages)

    async def flaky(self: Ingest, changes: Changes, *args: Any) -> set[uuid.UUID]:
        calls.append(changes)
        refuse = holds_data(changes) and len([c for c in calls if holds_data(c)]) == 1
        if refuse and not after_commit:
            raise OperationalError("INSERT INTO messages", {}, Exception("database is locked"))
        stored = await apply(self, changes, *args)
        if refuse:
            raise OperationalError("COMMIT", {}, Exception("connection lost after commit"))
        return stored

    monkeypatch.setattr(Ingest, "apply", flaky)
    return calls


async def test_the_broker_redelivers_a_batch_the_database_refused(
    worker: Worker,
    engine: AsyncEngine,
    broker: MemoryBroker,
    device: Device,
    announced: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = refuse_once(monkeypatch)
    batch = [session_start(device), uplink(device, DEMO_UPLOAD), data(device, 1)]
    await asyncio.wait_for(broker.publish(UPLINK, encode_batch(batch)), 5)

    assert len(calls) == 2, "the refused batch was not delivered again"
    assert await message_ids(engine) == sorted(ids(batch))
    assert announced_ids(announced) == ids(batch)
    assert (await message(engine, batch[2]))["body"] == expected_body(1)
    (session,) = await select(engine, sa.select(t.sessions))
    assert session["messages_in"] == 2


async def test_a_batch_redelivered_after_its_commit_is_stored_once(
    worker: Worker,
    engine: AsyncEngine,
    broker: MemoryBroker,
    device: Device,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = refuse_once(monkeypatch, after_commit=True)
    batch = [data(device, 1, UNKNOWN_HASH), data(device, 2, UNKNOWN_HASH)]
    await asyncio.wait_for(broker.publish(UPLINK, encode_batch(batch)), 5)
    assert len(calls) == 2
    assert await message_ids(engine) == sorted(ids(batch))


async def test_a_batch_redelivered_after_its_commit_is_still_announced(
    worker: Worker,
    broker: MemoryBroker,
    device: Device,
    announced: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refuse_once(monkeypatch, after_commit=True)
    batch = [data(device, 1, UNKNOWN_HASH)]
    await asyncio.wait_for(broker.publish(UPLINK, encode_batch(batch)), 5)
    assert announced_ids(announced) == ids(batch)


EMBEDDED_SERIAL = 3003


@pytest.fixture
async def cloud(migrated_sqlite: Database) -> AsyncIterator[Runtime]:
    """`nubes serve` on embedded defaults (gateway, worker, in-process broker, SQLite).

    The device is added before the start, so the gateway knows it from its first load.
    """
    serial = EMBEDDED_SERIAL
    await devices.add_device(
        migrated_sqlite.engine, serial=serial, claim_token=claim_token_for(serial)
    )
    async with embedded_cloud(migrated_sqlite.url) as runtime:
        yield runtime


@pytest.fixture
async def sim(cloud: Runtime) -> AsyncIterator[SimDevice]:
    """A simulated CHESTER (the firmware's behaviour over real UDP) for the cloud's device."""
    loop = asyncio.get_running_loop()
    transport, sock = await loop.create_datagram_endpoint(
        lambda: SharedSocket(base64=True), remote_addr=("127.0.0.1", cloud.ports["base64"])
    )
    serial = EMBEDDED_SERIAL
    profile = Profile(serial, claim_token_for(serial), DEMO_DECODER, None, ["a"], timeout=2.0)
    yield SimDevice(profile, sock, Stats(), seed=serial)
    transport.close()


async def test_the_embedded_pipeline_stores_a_device_message_once_after_a_refusal(
    cloud: Runtime, sim: SimDevice, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gateway, broker and worker together: the device is acked once its data is stored."""
    engine = cloud.adapters.database.engine
    assert await sim.start_session()
    await sim.synchronise()
    calls = refuse_once(monkeypatch)

    assert await sim.send_data(), "the device got no ack for its data"

    query = sa.select(t.messages).where(t.messages.c.type == "data")
    (row,) = await select(engine, query)
    assert row["decode_state"] == "decoded"
    assert row["body"]["message"]["sequence"] == 1
    tries = [changes for changes in calls if any(m["id"] == row["id"] for m in changes.messages)]
    assert len(tries) == 2, "the refused write was not tried once more"
