"""Finished attempts to the database, in batches, one transaction each.

Each attempt's outcome (its log row, the delivery's next state, the
callback's health) must reach the database before the dispatcher forgets
the delivery; writing them one by one cost more than sending them. One task
collects outcomes, lingers `LINGER_SECONDS` for company unless `BATCH` are
waiting, writes them with `store.record`, and retries a failed write every
second (the outcomes stay in memory; the deliveries stay leased, and their
leases are renewed) until the database takes them. Once written, the
dispatcher hears of it through `on_written`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from nubes.callbacks import store
from nubes.callbacks.delivery import Outcome

__all__ = ["BATCH", "LINGER_SECONDS", "OutcomeWriter"]

log = logging.getLogger(__name__)

BATCH = 500
LINGER_SECONDS = 0.005
RETRY_SECONDS = 1.0

Written = Callable[[list[Outcome], dict[uuid.UUID, datetime | None]], None]


class OutcomeWriter:
    """Batches outcomes into `store.record`; `on_written(batch, paused)` after each."""

    def __init__(
        self,
        engine: AsyncEngine,
        on_written: Written,
        *,
        breaker_failures: int,
        breaker_pause: timedelta,
    ) -> None:
        self._engine = engine
        self._on_written = on_written
        self._breaker_failures = breaker_failures
        self._breaker_pause = breaker_pause
        self._outcomes: list[Outcome] = []
        self._ready = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._write_forever(), name="dispatcher-write")

    @property
    def waiting(self) -> int:
        """Outcomes not yet handed to a write."""
        return len(self._outcomes)

    def add(self, outcome: Outcome) -> None:
        self._outcomes.append(outcome)
        self._ready.set()

    async def close(self, timeout: float = 10.0) -> None:
        """Writes what is waiting (one try each), then stops."""
        self._closing = True
        self._ready.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout)
            except Exception:
                log.exception("dispatcher: outcomes not all written at close")

    async def _write_forever(self) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            if len(self._outcomes) < BATCH and not self._closing:
                await asyncio.sleep(LINGER_SECONDS)  # one transaction for more
            batch, self._outcomes = self._outcomes, []
            if batch:
                await self._write(batch)
            elif self._closing:
                return

    async def _write(self, batch: list[Outcome]) -> None:
        while True:
            try:
                paused = await store.record(
                    self._engine,
                    batch,
                    breaker_failures=self._breaker_failures,
                    breaker_pause=self._breaker_pause,
                )
                break
            except Exception:
                if self._closing:
                    raise
                log.exception("writing %d delivery outcomes failed; retrying", len(batch))
                await asyncio.sleep(RETRY_SECONDS)
        self._on_written(batch, paused)
        if self._closing:
            self._ready.set()
