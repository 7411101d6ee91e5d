"""The gateway's in-memory directory of devices.

Every datagram names a serial number; looking it up in the database would
cap the gateway at the database's speed. The directory loads all devices at
start and then, every `device_refresh_seconds`, asks for the devices whose
`changed_at` moved (users bump it from the CLI or API when they add or change
a device or queue a downlink). A device added elsewhere is recognised within
that interval (1 s by default, 5 s at most).

Device traffic never touches `changed_at`: the gateway keeps what it learns
itself (current session, codec and config hashes) in the entries.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from nubes.store import tables as t

log = logging.getLogger(__name__)

# Rows committed by another process just before our previous query may carry
# an earlier `changed_at` than the newest we saw: look back this far.
OVERLAP = timedelta(seconds=5)


@dataclass(slots=True)
class DeviceInfo:
    """What the gateway needs to know of a device."""

    id: uuid.UUID
    organization_id: uuid.UUID
    group_id: uuid.UUID | None
    serial: int
    claim_token: bytes
    psk: bytes | None
    name: str
    enabled: bool
    session_id: int | None
    decoder_hash: str | None
    encoder_hash: str | None
    config_hash: str | None
    changed_at: datetime
    psk_previous: bytes | None = None
    psk_previous_until: datetime | None = None

    def psks(self, now: datetime) -> list[bytes]:
        """The DTLS PSKs valid now, newest first (the replaced one during its grace)."""
        keys = [] if self.psk is None else [bytes(self.psk)]
        previous, until = self.psk_previous, self.psk_previous_until
        if previous is not None and until is not None and now < until:
            keys.append(bytes(previous))
        return keys


_COLUMNS = (
    t.devices.c.id,
    t.devices.c.organization_id,
    t.devices.c.group_id,
    t.devices.c.serial,
    t.devices.c.claim_token,
    t.devices.c.psk,
    t.devices.c.name,
    t.devices.c.enabled,
    t.devices.c.session_id,
    t.devices.c.decoder_hash,
    t.devices.c.encoder_hash,
    t.devices.c.config_hash,
    t.devices.c.changed_at,
    t.devices.c.psk_previous,
    t.devices.c.psk_previous_until,
    t.devices.c.deleted_at,
)


class Directory:
    """Serial number → DeviceInfo, refreshed from the database."""

    def __init__(self, engine: AsyncEngine, refresh_seconds: float) -> None:
        self._engine = engine
        self._refresh_seconds = refresh_seconds
        self._by_serial: dict[int, DeviceInfo] = {}
        self._newest: datetime | None = None
        self._listeners: list[Callable[[DeviceInfo], None]] = []
        self._task: asyncio.Task[None] | None = None

    def get(self, serial: int) -> DeviceInfo | None:
        return self._by_serial.get(serial)

    def psks(self, serial: int) -> list[bytes]:
        """The DTLS PSKs of an enabled device, newest first; none for others.

        Synchronous, from memory: the DTLS library asks for a key in the middle
        of a handshake and cannot wait for the database.
        """
        info = self._by_serial.get(serial)
        if info is None or not info.enabled:
            return []
        return info.psks(datetime.now(UTC))

    def __len__(self) -> int:
        return len(self._by_serial)

    def on_change(self, listener: Callable[[DeviceInfo], None]) -> None:
        """Calls `listener` for every device that changed after the first load."""
        self._listeners.append(listener)

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._refresh_forever(), name="directory-refresh")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_seconds)
            try:
                await self.refresh()
            except Exception:
                log.exception("device directory refresh failed; keeping the last known devices")

    async def refresh(self) -> int:
        """Loads devices changed since the last refresh; returns how many."""
        query = sa.select(*_COLUMNS)
        first = self._newest is None
        if self._newest is not None:
            query = query.where(t.devices.c.changed_at > self._newest - OVERLAP)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        changed = 0
        for row in rows:
            changed += self._apply(row, notify=not first)
        return changed

    def _apply(self, row: Any, *, notify: bool) -> int:
        mapping = dict(row._mapping)
        changed_at: datetime = mapping["changed_at"]
        if self._newest is None or changed_at > self._newest:
            self._newest = min(changed_at, datetime.now(UTC))
        known = self._by_serial.get(mapping["serial"])
        if known is not None and known.changed_at == changed_at:
            return 0
        if mapping.pop("deleted_at") is not None:
            self._by_serial.pop(mapping["serial"], None)
            return 1
        info = DeviceInfo(**mapping)
        # asyncpg hands out its own UUID type; the rest of Nubes expects uuid.UUID.
        info.id = uuid.UUID(str(info.id))
        info.organization_id = uuid.UUID(str(info.organization_id))
        info.group_id = None if info.group_id is None else uuid.UUID(str(info.group_id))
        if known is not None:
            # What the gateway learnt from traffic is newer than the row.
            info.session_id = known.session_id or info.session_id
            info.decoder_hash = known.decoder_hash or info.decoder_hash
            info.encoder_hash = known.encoder_hash or info.encoder_hash
            info.config_hash = known.config_hash or info.config_hash
        self._by_serial[info.serial] = info
        if notify:
            for listener in self._listeners:
                listener(info)
        return 1
