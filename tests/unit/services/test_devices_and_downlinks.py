"""Device and downlink services: validation, secrets kept back, downlink messages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from importlib import resources

import pytest
import sqlalchemy as sa

from nubes import flap
from nubes.codec import codec_from_yaml, codec_hash, hash_hex, yaml_to_cbor
from nubes.errors import DownlinkError, NotFound, StoreError
from nubes.services import devices, downlinks
from nubes.store import tables as t
from nubes.store.database import Database

KEY = bytes(range(16))
ENCODER = resources.files("nubes.sim").joinpath("codecs", "demo.encoder.yaml").read_text()


def test_serial_and_secret_parsing() -> None:
    assert devices.parse_serial("2159017985") == 2159017985
    for bad in ("0", "-1", "4294967296"):
        with pytest.raises(ValueError, match="serial"):
            devices.parse_serial(bad)
    token = "98a8856ba6534bd5212176b22f3acbb3"
    assert devices.parse_hex_secret(token, name="claim token", sizes=range(16, 17)).hex() == token
    with pytest.raises(ValueError, match="hexadecimal"):
        devices.parse_hex_secret("zz" * 16, name="claim token", sizes=range(16, 17))
    with pytest.raises(ValueError, match="must be 16 bytes"):
        devices.parse_hex_secret("ab" * 15, name="claim token", sizes=range(16, 17))


async def test_add_show_and_list_never_return_secrets(migrated_db: Database) -> None:
    added = await devices.add_device(
        migrated_db.engine, serial=5, claim_token=KEY, psk=bytes(16), group="lab"
    )
    assert added["group"] == "lab"
    assert added["label"] == "hsn:5"
    listed = await devices.list_devices(migrated_db.engine)
    for row in (added, await devices.get_device(migrated_db.engine, 5), *listed):
        assert "claim_token" not in row
        assert "psk" not in row
    with pytest.raises(StoreError, match="exists"):
        await devices.add_device(migrated_db.engine, serial=5, claim_token=KEY)
    with pytest.raises(NotFound):
        await devices.get_device(migrated_db.engine, 6)


async def test_config_and_shell_downlinks_hold_the_exact_message(migrated_db: Database) -> None:
    await devices.add_device(migrated_db.engine, serial=9, claim_token=KEY)
    config = await downlinks.queue_config(migrated_db.engine, 9, ["app config interval 5"])
    assert config["message"] == flap.encode_download_config(["app config interval 5"])
    assert config["state"] == "pending"
    shell = await downlinks.queue_shell(migrated_db.engine, 9, ["app config show"])
    assert shell["message"] == flap.encode_download_shell(["app config show"], shell["shell_id"])
    with pytest.raises(DownlinkError, match="config save"):
        await downlinks.queue_config(migrated_db.engine, 9, ["config save"])
    with pytest.raises(DownlinkError):
        await downlinks.queue_shell(migrated_db.engine, 9, [])
    listed = await downlinks.list_downlinks(migrated_db.engine, 9)
    assert [d["kind"] for d in listed] == ["shell", "config"]


async def test_data_downlinks_go_through_the_device_encoder(migrated_db: Database) -> None:
    device = await devices.add_device(migrated_db.engine, serial=11, claim_token=KEY)
    with pytest.raises(DownlinkError, match="not uploaded an encoder"):
        await downlinks.queue_data(migrated_db.engine, 11, {"led_r": 1})
    cbor = yaml_to_cbor(ENCODER)
    encoder_hash = hash_hex(codec_hash(cbor))
    now = datetime.now(UTC)
    async with migrated_db.engine.begin() as conn:
        await conn.execute(
            sa.insert(t.codecs).values(
                id=uuid.uuid4(),
                organization_id=device["organization_id"],
                hash=encoder_hash,
                kind="encoder",
                name=codec_from_yaml(ENCODER).name,
                cbor=cbor,
                source="device",
                created_at=now,
                updated_at=now,
            )
        )
        await conn.execute(
            sa.update(t.devices).where(t.devices.c.serial == 11).values(encoder_hash=encoder_hash)
        )
    queued = await downlinks.queue_data(migrated_db.engine, 11, {"led_r": 1, "led_y": 0})
    assert queued["message"] == bytes.fromhex("86" + encoder_hash + "a200010200")
    with pytest.raises(DownlinkError, match="nothing"):
        await downlinks.queue_data(migrated_db.engine, 11, {"nothing": 1})


async def test_cancel_and_expire(migrated_db: Database) -> None:
    await devices.add_device(migrated_db.engine, serial=13, claim_token=KEY)
    kept = await downlinks.queue_shell(migrated_db.engine, 13, ["a"])
    cancelled = await downlinks.queue_shell(migrated_db.engine, 13, ["b"])
    old = await downlinks.queue_shell(migrated_db.engine, 13, ["c"], expiry_days=1)
    assert await downlinks.cancel_downlink(migrated_db.engine, cancelled["id"])
    assert not await downlinks.cancel_downlink(migrated_db.engine, cancelled["id"])
    async with migrated_db.engine.begin() as conn:
        await conn.execute(
            sa.update(t.downlinks)
            .where(t.downlinks.c.id == old["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    assert await downlinks.expire_downlinks(migrated_db.engine) == 1
    states = {d["id"]: d["state"] for d in await downlinks.list_downlinks(migrated_db.engine, 13)}
    assert states == {kept["id"]: "pending", cancelled["id"]: "cancelled", old["id"]: "expired"}
