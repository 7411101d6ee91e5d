"""Batches the gateway's records into broker messages.

Publishing costs the broker client ~150 µs of CPU per message, so records
are gathered for up to `linger` (2 ms) or `batch_size` records and published
as one message. Two kinds of submission:

- `submit(records, on_done)` calls `on_done(None)` once the batch holding
  the records is durably accepted, or `on_done(error)`: the gateway acks
  the device only then. A plain callback rather than a future: the gateway
  makes one submission per device message, and a future with its scheduled
  callbacks costs several microseconds more each;
- `add(record)` for the communication log: best effort, never awaited;
  when the broker is down, at most `max_backlog` such records wait and
  older ones are dropped (and counted) so memory stays bounded.

At most `max_in_flight` batches are being published at once; beyond that
the next flush waits, which slows the gateway's acks instead of growing
memory. A batch the broker has not confirmed within `timeout_seconds` fails
its waiters: those devices get no ack and repeat (should the broker confirm
it later anyway, the repeat is stored a second time: at least once, never
lost).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

from nubes.pipeline.broker import UPLINK, Broker
from nubes.pipeline.records import Record, encode_batch

log = logging.getLogger(__name__)

Done = Callable[[BaseException | None], None]


class Publisher:
    """Gathers records, publishes them in batches, resolves waiters."""

    def __init__(
        self,
        broker: Broker,
        *,
        batch_size: int,
        linger_seconds: float,
        timeout_seconds: float = 3.0,
        max_in_flight: int = 32,
        max_backlog: int = 100_000,
    ) -> None:
        self._broker = broker
        self._batch_size = batch_size
        self._linger = linger_seconds
        self._timeout = timeout_seconds
        self._records: list[Record] = []
        self._waiters: list[Done] = []
        self._best_effort: deque[Record] = deque(maxlen=max_backlog)
        self._slots = asyncio.Semaphore(max_in_flight)
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.dropped = 0
        self.failed_batches = 0

    def submit(self, records: list[Record], on_done: Done | None = None) -> None:
        """Queues records that must be durable; `on_done` hears when they are."""
        self._records.extend(records)
        if on_done is not None:
            self._waiters.append(on_done)
        self._schedule()

    def add(self, record: Record) -> None:
        """Queues a best-effort record (communication log)."""
        if len(self._best_effort) == self._best_effort.maxlen:
            self.dropped += 1
        self._best_effort.append(record)
        self._schedule()

    def _schedule(self) -> None:
        if len(self._records) + len(self._best_effort) >= self._batch_size:
            self.flush()
        elif self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._linger, self.flush)

    def flush(self) -> None:
        """Hands everything gathered so far to one publish."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._records and not self._best_effort:
            return
        records = self._records + list(self._best_effort)
        self._best_effort.clear()
        waiters = self._waiters
        self._records, self._waiters = [], []
        task = asyncio.create_task(self._publish(records, waiters), name="publish-batch")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, records: list[Record], waiters: list[Done]) -> None:
        error: BaseException | None = None
        async with self._slots:
            try:
                await asyncio.wait_for(
                    self._broker.publish(UPLINK, encode_batch(records)), self._timeout
                )
            except Exception as err:
                self.failed_batches += 1
                log.warning("a batch of %d records was not accepted: %s", len(records), err)
                error = err
        for on_done in waiters:
            try:
                on_done(error)
            except Exception:
                log.exception("a publish callback failed")

    async def close(self) -> None:
        """Publishes what is left and waits for the batches under way."""
        self.flush()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=10)
