"""What the dispatcher knows of the callbacks, kept fresh from the database.

The intake asks, for every stored message, which callbacks fire: that must
not cost a query. The book holds every callback by id and the enabled ones by
group, re-reads the rows whose `updated_at` moved (every second, like the
gateway's device directory, and before an event batch whose messages arrived
after the last refresh began), compiles each payload once per callback version,
and remembers which callbacks have a tripped circuit breaker (`paused_until`
set, by this dispatcher or another): those never take the intake's fast path.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from nubes.callbacks.model import CallbackConfig
from nubes.callbacks.transform import Payload, TransformError, compile_payload
from nubes.store import tables as t

__all__ = ["OVERLAP", "CallbackBook"]

# Rows committed by another process just before a refresh may carry an
# earlier `updated_at` than the newest seen: look back this far.
OVERLAP = timedelta(seconds=5)


def _now() -> datetime:
    return datetime.now(UTC)


class CallbackBook:
    """Callbacks by id and by group, their compiled payloads and breaker states."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.by_id: dict[uuid.UUID, CallbackConfig] = {}
        self.tripped: set[uuid.UUID] = set()  # breaker open or probing
        self._live: dict[uuid.UUID, bool] = {}  # enabled and not deleted
        self._by_group: dict[uuid.UUID, list[CallbackConfig]] = {}
        self._payloads: dict[uuid.UUID, tuple[int, Payload | TransformError]] = {}
        self._newest: datetime | None = None
        self._lock = asyncio.Lock()
        self.refreshed_at: datetime | None = None  # when the last refresh began

    def firing(self, group_id: uuid.UUID, message_type: str) -> list[CallbackConfig]:
        return [cb for cb in self._by_group.get(group_id, ()) if message_type in cb.triggers]

    def version(self, callback_id: uuid.UUID) -> int | None:
        known = self.by_id.get(callback_id)
        return None if known is None else known.version

    def live(self, callback_id: uuid.UUID) -> bool:
        return self._live.get(callback_id, False)

    async def refresh_since(self, moment: datetime) -> None:
        """Refreshes unless a refresh began after `moment`.

        Called with the arrival time of the newest message of an event batch,
        so that a callback saved before a message arrived fires for it, even
        in the second between two periodic refreshes.
        """
        if self.refreshed_at is not None and self.refreshed_at >= moment:
            return
        async with self._lock:  # one refresh serves every batch waiting for it
            if self.refreshed_at is None or self.refreshed_at < moment:
                await self._refresh()

    async def refresh(self) -> int:
        """Reads changed callbacks and the breaker states; returns how many rows changed."""
        async with self._lock:
            return await self._refresh()

    async def _refresh(self) -> int:
        began = _now()
        c = t.callbacks
        query = sa.select(c)
        if self._newest is not None:
            query = query.where(c.c.updated_at > self._newest - OVERLAP)
        changed = await self._load(query)
        async with self._engine.connect() as conn:
            rows = await conn.execute(sa.select(c.c.id).where(c.c.paused_until.is_not(None)))
            self.tripped = {uuid.UUID(str(row[0])) for row in rows}
        self.refreshed_at = began
        return changed

    async def load(self, ids: Iterable[uuid.UUID]) -> None:
        """Reads these callbacks now (a claim saw a version newer than the book's)."""
        wanted = sorted(set(ids))
        if wanted:
            await self._load(sa.select(t.callbacks).where(t.callbacks.c.id.in_(wanted)))

    def breaker(self, callback_id: uuid.UUID, paused_until: datetime | None) -> None:
        """What a write of this dispatcher learnt of a callback's breaker."""
        if paused_until is None:
            self.tripped.discard(callback_id)
        else:
            self.tripped.add(callback_id)

    async def _load(self, query: sa.Select[Any]) -> int:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        changed = {self._apply(dict(row)) for row in rows}
        changed.discard(None)
        for group_id in changed:
            assert group_id is not None
            self._by_group[group_id] = [
                cb for cb in self.by_id.values() if cb.group_id == group_id and self._live[cb.id]
            ]
        return len(rows)

    def _apply(self, row: dict[str, Any]) -> uuid.UUID | None:
        updated_at: datetime = row["updated_at"]
        if self._newest is None or updated_at > self._newest:
            self._newest = min(updated_at, _now())
        for key in ("id", "organization_id", "group_id"):
            row[key] = uuid.UUID(str(row[key]))
        config = CallbackConfig.from_row(row)
        known = self.by_id.get(config.id)
        live = bool(row["enabled"]) and row["deleted_at"] is None
        if known is not None and known.version == config.version and self._live[config.id] == live:
            return None
        self.by_id[config.id] = config
        self._live[config.id] = live
        return config.group_id

    def payload(self, config: CallbackConfig) -> Payload:
        """The compiled payload of this callback version; raises TransformError."""
        cached = self._payloads.get(config.id)
        if cached is None or cached[0] != config.version:
            try:
                compiled: Payload | TransformError = compile_payload(config.payload)
            except TransformError as err:
                compiled = err
            cached = self._payloads[config.id] = (config.version, compiled)
        if isinstance(cached[1], TransformError):
            raise cached[1]
        return cached[1]
