"""Session ids: unique, non-zero uint32, across every gateway process.

The device is told its session id in SET_SESSION (key 0) and the firmware
treats 0 as "no session". Ids come from a counter in the cache port (Redis
INCR in production, so several gateways never hand out the same id), raised
at start above the largest id the database already holds, so a restart of
the embedded mode continues where it stopped.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from nubes import codec as codecs
from nubes import flap
from nubes.gateway.directory import DeviceInfo
from nubes.gateway.link import Channel
from nubes.pipeline import records
from nubes.pipeline.cache import Cache
from nubes.store import tables as t

UINT32_MAX = 0xFFFF_FFFF


class SessionIds:
    def __init__(self, cache: Cache, engine: AsyncEngine) -> None:
        self._cache = cache
        self._engine = engine
        self._floor = 1

    async def start(self) -> None:
        async with self._engine.connect() as conn:
            largest = (await conn.execute(sa.select(sa.func.max(t.sessions.c.id)))).scalar()
        self._floor = int(largest or 0) + 1

    async def next(self) -> int:
        value = await self._cache.next_id("session", self._floor)
        if value > UINT32_MAX:
            raise OverflowError("session ids exhausted (2^32 sessions)")
        return value


def session_record(
    info: DeviceInfo, uplink: flap.CreateSession, channel: Channel, at: float
) -> records.Record:
    """The pipeline record of the session `info.session_id` just started."""
    assert info.session_id is not None
    attributes = codecs.to_json(uplink.named())
    return records.session_record(
        session_id=info.session_id,
        device_id=info.id,
        organization_id=info.organization_id,
        envelope=channel.envelope,
        remote=channel.remote,
        at=at,
        attributes=attributes if isinstance(attributes, dict) else {},
    )
