"""The gateway's device directory follows changes made by other processes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from helpers import eventually
from nubes.config import Settings
from nubes.gateway.directory import DeviceInfo, Directory
from nubes.services import devices
from nubes.store import tables as t
from nubes.store.database import Database

KEY = bytes(range(16))


async def change(database: Database, serial: int, **values: object) -> None:
    async with database.engine.begin() as conn:
        await conn.execute(
            sa.update(t.devices)
            .where(t.devices.c.serial == serial)
            .values(changed_at=datetime.now(UTC), **values)
        )


async def test_devices_added_changed_and_deleted_elsewhere_are_seen(migrated_db: Database) -> None:
    await devices.add_device(migrated_db.engine, serial=1, claim_token=KEY)
    directory = Directory(migrated_db.engine, refresh_seconds=0.05)
    changed: list[DeviceInfo] = []
    directory.on_change(changed.append)
    await directory.start()
    try:
        first = directory.get(1)
        assert first is not None
        assert first.claim_token == KEY
        assert directory.get(2) is None

        await devices.add_device(migrated_db.engine, serial=2, claim_token=KEY, name="late")
        added = await eventually(lambda: _get(directory, 2), lambda info: info is not None)
        assert added is not None
        assert added.name == "late"

        await change(migrated_db, 1, claim_token=bytes(16), enabled=False)
        updated = await eventually(
            lambda: _get(directory, 1), lambda info: info is not None and not info.enabled
        )
        assert updated is not None
        assert updated.claim_token == bytes(16)
        assert {info.serial for info in changed} >= {1, 2}

        await change(migrated_db, 2, deleted_at=datetime.now(UTC))
        await eventually(lambda: _get(directory, 2), lambda info: info is None)
    finally:
        await directory.close()


async def test_what_the_gateway_learnt_survives_a_refresh(migrated_sqlite: Database) -> None:
    await devices.add_device(migrated_sqlite.engine, serial=7, claim_token=KEY)
    directory = Directory(migrated_sqlite.engine, refresh_seconds=0.05)
    await directory.start()
    try:
        info = directory.get(7)
        assert info is not None
        info.session_id, info.decoder_hash = 42, "00000000000000aa"
        await change(migrated_sqlite, 7, name="renamed")
        renamed = await eventually(
            lambda: _get(directory, 7), lambda i: i is not None and i.name == "renamed"
        )
        assert renamed is not None
        assert (renamed.session_id, renamed.decoder_hash) == (42, "00000000000000aa")
    finally:
        await directory.close()


async def _get(directory: Directory, serial: int) -> DeviceInfo | None:
    return directory.get(serial)


@pytest.mark.parametrize("refresh", [0.0, 6.0])
def test_refresh_interval_is_bounded_by_the_settings(refresh: float) -> None:
    with pytest.raises(ValidationError):
        Settings(device_refresh_seconds=refresh)


async def test_the_psks_of_a_device_follow_rotation_and_expiry(migrated_sqlite: Database) -> None:
    engine = migrated_sqlite.engine
    old, new = bytes(range(16)), bytes(range(1, 33))
    await devices.add_device(engine, serial=77, claim_token=KEY, psk=old)
    directory = Directory(engine, refresh_seconds=0.05)
    await directory.start()
    try:
        assert directory.psks(77) == [old]
        assert directory.psks(78) == []
        await devices.set_psk(engine, 77, new, grace_seconds=3600)
        await eventually(_psks(directory, 77), lambda keys: keys == [new, old])
        await change(migrated_sqlite, 77, psk_previous_until=datetime.now(UTC) - timedelta(1))
        await eventually(_psks(directory, 77), lambda keys: keys == [new])
        await change(migrated_sqlite, 77, enabled=False)
        await eventually(_psks(directory, 77), lambda keys: keys == [])
    finally:
        await directory.close()


def _psks(directory: Directory, serial: int) -> Any:
    async def probe() -> list[bytes]:
        return directory.psks(serial)

    return probe
