"""The dispatcher: `message.stored` events in, webhook requests out, never lost.

Two halves joined by the `deliveries` table (see `store` for the states):

- **Intake.** It consumes `message.stored` from the durable queue `callbacks`,
  finds the enabled callbacks of each message's group whose `triggers` name
  the message type (the `CallbackBook`, refreshed every second), inserts one
  delivery per (callback, message) in one transaction and only then lets the
  broker ack the event. An event delivered twice inserts nothing the second
  time. The fast path: while a callback has room in this dispatcher (see
  isolation below) and its breaker is closed, its new deliveries are
  inserted already leased to this dispatcher and sent at once with the
  message the event carries (one query reads the batch's devices), with no
  claim and no read of the message; the others are inserted pending and
  wake the delivery loop.
- **Delivery.** The loop claims due deliveries in batches under a lease
  (what the fast path left pending, retries, replays, deliveries of a
  dispatcher that died), loads their messages (with the device) in one
  query, and sends them like the fast path does (`attempt.prepare`: document,
  JSONata payload compiled once per callback version, request). Outcomes
  are written in batches by one writer task: attempt rows, delivery states,
  callback health. A retry is scheduled at `retry_delays[attempts - 1]`
  after the attempt; with more attempts than delays the delivery is
  `failed` (replayable from the API). A timer wakes the loop for the
  retries it scheduled; otherwise it polls every `poll_seconds` for work
  that other processes made due.

Decisions worth knowing:

- A payload that does not compile or evaluate (syntax, limits) fails the
  delivery at once, with the reason in its attempt: the same message and
  expression would fail the same way at every retry. After fixing the
  payload, replay the failed deliveries. Such failures (and requests that
  cannot be built, e.g. a template putting a line break in a header) do not
  count against the endpoint's health. A payload of undefined/null makes the
  delivery `skipped`, with an attempt row saying so.
- Isolation: a callback has at most `callback_concurrency` requests in
  flight, the dispatcher `dispatcher_concurrency`. To keep a busy endpoint's
  connections full, a dispatcher holds up to `BACKLOG` times the per-callback
  limit of one callback's deliveries (`HOLD_TOTAL` times the global limit in
  all), and
  claims only for callbacks below that: a hanging endpoint holds its own
  slots and its own small backlog, and nothing else waits for it.
- Circuit breaker: `callback_breaker_failures` endpoint failures in a row
  set the callback's `paused_until` to now + `callback_breaker_pause_seconds`.
  Claims skip paused callbacks, so their deliveries wait without using
  attempts. Once the pause is over, one dispatcher wins the probe (a
  compare-and-set that pushes the pause forward) and sends one delivery;
  success clears the breaker, failure pauses again.
- Restarts: every state is in the database. `close` gives back what it holds
  (cancelled attempts are released, not counted). A running dispatcher
  renews the leases of all it holds every 20 s; a crashed one's leases
  expire after a minute plus the longest callback timeout and its deliveries
  are claimed again, so delivery is at least once, and receivers
  deduplicate by the `X-Nubes-Delivery` header.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from nubes.callbacks import attempt, store
from nubes.callbacks.book import CallbackBook
from nubes.callbacks.holds import Holds
from nubes.callbacks.metrics import DispatcherStats
from nubes.callbacks.model import CallbackConfig, OutgoingRequest, SendResult
from nubes.callbacks.store import Claimed, NewDelivery, Outcome
from nubes.callbacks.writer import OutcomeWriter
from nubes.config import Settings
from nubes.ids import uuid7
from nubes.pipeline.broker import MESSAGE_STORED, Broker

log = logging.getLogger(__name__)

CALLBACKS_QUEUE = "callbacks"
USER_AGENT = attempt.USER_AGENT
CLAIM_BATCH = 500
# A dispatcher renews the leases of what it holds every third of this, so a
# crashed one's deliveries are taken over by another within this time (plus
# the longest callback timeout, for a request that was in flight).
LEASE = timedelta(seconds=60)
# Deliveries of one callback a dispatcher may hold, per request slot. Deep
# enough that claims and writes go in large batches (measured: 32 gave 2,400
# deliveries/s to a fast endpoint, 128 gave 4,500 with the HTTP part left out).
BACKLOG = 64
# Deliveries a dispatcher may hold in all, per request slot.
HOLD_TOTAL = 16

Event = Mapping[str, Any]
Queued = tuple[Claimed, CallbackConfig, Mapping[str, Any] | None]
Firing = tuple[CallbackConfig, Event, uuid.UUID]  # a callback, the event, its message id


class Transport(Protocol):
    """What sends a request (`sender.Sender`); never raises for network errors."""

    async def send(self, request: OutgoingRequest, timeout: float) -> SendResult: ...


def _now() -> datetime:
    return datetime.now(UTC)


def _uuid_or_none(text: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(text))
    except ValueError:
        return None  # not from a worker of ours: no fast path for it


def _arrival(event: Event) -> datetime:
    """When the event's message arrived (`created_at`, RFC 3339; naive means UTC)."""
    moment = datetime.fromisoformat(event["created_at"])
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class Dispatcher:
    """Consumes `message.stored`, keeps deliveries durable, sends them."""

    def __init__(
        self,
        engine: AsyncEngine,
        broker: Broker,
        settings: Settings,
        transport: Transport,
        *,
        poll_seconds: float = 1.0,
        refresh_seconds: float = 1.0,
        prefetch: int = 8,
    ) -> None:
        self._engine = engine
        self._broker = broker
        self._transport = transport
        self._poll_seconds = poll_seconds
        self._refresh_seconds = refresh_seconds
        self._prefetch = prefetch
        self._per_callback = settings.callback_concurrency
        self._hold_per_callback = BACKLOG * settings.callback_concurrency
        self._hold_total = HOLD_TOTAL * settings.dispatcher_concurrency
        self._sending = asyncio.Semaphore(settings.dispatcher_concurrency)
        self._breaker_failures = settings.callback_breaker_failures
        self._breaker_pause = timedelta(seconds=settings.callback_breaker_pause_seconds)
        self.callbacks = CallbackBook(engine)
        self._queues: dict[uuid.UUID, deque[Queued]] = {}
        self._workers: defaultdict[uuid.UUID, int] = defaultdict(int)
        self._held = Holds(self._hold_per_callback, self._hold_total)
        self._attempts: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0  # loop time; uvloop's handles do not tell it
        self._paused: dict[uuid.UUID, datetime | None] = {}  # as last written
        self._deliverer: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._writer = OutcomeWriter(
            engine,
            self._written,
            breaker_failures=settings.callback_breaker_failures,
            breaker_pause=self._breaker_pause,
        )
        self._closing = False
        self.delivered = 0  # attempts written, for benchmarks and logs
        self.stats = DispatcherStats()

    async def start(self) -> None:
        await self.callbacks.refresh()
        self._refresher = asyncio.create_task(self._refresh_forever(), name="dispatcher-refresh")
        self._deliverer = asyncio.create_task(self._deliver_forever(), name="dispatcher-deliver")
        self._writer.start()
        self._renewer = asyncio.create_task(self._renew_forever(), name="dispatcher-renew")
        await self._broker.declare(MESSAGE_STORED, CALLBACKS_QUEUE)
        await self._broker.consume(MESSAGE_STORED, CALLBACKS_QUEUE, self.handle, self._prefetch)
        log.info("dispatcher started with %d callbacks", len(self.callbacks.by_id))

    async def close(self) -> None:
        """Stops claiming, abandons attempts in flight, writes what finished, releases the rest."""
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
        tasks = (self._deliverer, self._refresher, self._renewer, *self._attempts)
        stopping = [t for t in tasks if t]
        for task in stopping:
            task.cancel()
        await asyncio.gather(*stopping, return_exceptions=True)
        await self._writer.close()
        with contextlib.suppress(Exception):
            await store.release(self._engine, self._held.ids(), _now())
        self._held.clear()

    # -- intake -------------------------------------------------------------------------

    async def handle(self, body: bytes) -> None:
        """One `message.stored` event batch; returns (is acked) once its deliveries are stored."""
        try:
            events = orjson.loads(body)["messages"]
            newest = max((_arrival(event) for event in events), default=None)
        except (KeyError, TypeError, ValueError) as err:
            log.error("dropping a message.stored body that is not an event batch: %r", err)
            return
        if newest is not None:
            await self.callbacks.refresh_since(newest)
        try:
            firing = list(self._firing(events))
        except (KeyError, TypeError, ValueError) as err:
            log.error("dropping a message.stored body with a malformed event: %r", err)
            return
        if firing:
            await self._intake(firing)

    def _firing(self, events: list[Event]) -> Iterable[Firing]:
        groups: dict[str, uuid.UUID] = {}  # parsing a UUID costs more than the rest
        for event in events:
            group = event.get("group_id")
            if group is None:
                continue
            group_id = groups.get(group) or groups.setdefault(group, uuid.UUID(group))
            callbacks = self.callbacks.firing(group_id, event["type"])
            if callbacks:
                message_id = uuid.UUID(event["id"])
                for callback in callbacks:
                    yield callback, event, message_id

    async def _intake(self, firing: list[Firing]) -> None:
        """Inserts the deliveries; sends at once those with room (the fast path)."""
        now = _now()
        devices = await self._devices_for_fast_path(firing)
        new: list[NewDelivery] = []
        fast: list[tuple[NewDelivery, CallbackConfig, dict[str, Any]]] = []
        for callback, event, message_id in firing:
            message = None
            if self._has_room(callback.id):
                device = devices.get(str(event.get("device_id")))
                message = attempt.event_message(event, device, message_id)
            delivery = NewDelivery(
                uuid7(), callback.id, callback.organization_id, message_id, message is not None
            )
            new.append(delivery)
            if message is not None:
                self._held.hold(delivery.id, callback.id)
                fast.append((delivery, callback, message))
        try:
            created = await store.insert_deliveries(self._engine, new, now, now + self._lease())
        except BaseException:
            for delivery, _, _ in fast:
                self._held.release(delivery.id)
            raise
        self._start_fast(fast, created)
        sent = sum(delivery.id in created for delivery, _, _ in fast)
        self.stats.created["fast"] += sent
        self.stats.created["pending"] += len(created) - sent
        if len(created) > len(fast):
            self._wake.set()  # pending ones for the claim loop

    def _has_room(self, callback_id: uuid.UUID) -> bool:
        return (
            not self._closing
            and callback_id not in self.callbacks.tripped
            and self._held.has_room(callback_id)
        )

    async def _devices_for_fast_path(self, firing: list[Firing]) -> dict[str, dict[str, Any]]:
        wanted = {event.get("device_id") for cb, event, _ in firing if self._has_room(cb.id)}
        ids = {device_id for text in wanted if (device_id := _uuid_or_none(text)) is not None}
        found = await store.load_devices(self._engine, ids)
        return {str(device_id): device for device_id, device in found.items()}

    def _start_fast(
        self,
        fast: list[tuple[NewDelivery, CallbackConfig, dict[str, Any]]],
        created: set[uuid.UUID],
    ) -> None:
        for delivery, callback, message in fast:
            if delivery.id not in created:  # the event came twice: delivered already
                self._held.release(delivery.id)
                continue
            claimed = Claimed(
                delivery.id, callback.id, delivery.message_id, delivery.organization_id, 0
            )
            self._spawn(claimed, callback, message)

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_seconds)
            try:
                await self.callbacks.refresh()
            except Exception:
                log.exception("callback refresh failed; keeping the last known callbacks")

    # -- claiming -----------------------------------------------------------------------

    async def _deliver_forever(self) -> None:
        while True:
            self._wake.clear()
            try:
                more = await self._claim_and_start()
            except Exception:
                log.exception("claiming deliveries failed")
                more = False
            if not more:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll_seconds)

    async def _claim_and_start(self) -> bool:
        """Claims what fits; True when there may be more to claim right away."""
        free = self._held.free()
        if free <= 0:
            return False  # a written outcome wakes the loop
        # A callback is claimed for in chunks of half its backlog: fewer,
        # larger claims, and its connections stay busy meanwhile.
        cap = self._hold_per_callback // 2
        busy = self._held.at_least(cap)
        now, limit = _now(), min(free, CLAIM_BATCH)
        claimed = await store.claim(
            self._engine,
            now,
            limit=limit,
            per_callback=cap,
            lease_until=now + self._lease(),
            busy=busy,
        )
        if not claimed:
            if not self._held:  # idle: outcomes will not wake the loop
                await self._time_next_due(now)
            return False
        self.stats.claimed += len(claimed)
        for delivery in claimed:
            self._held.hold(delivery.id, delivery.callback_id)
        try:
            await self._start(claimed, now)
        except Exception:
            await self._give_back([d for d in claimed if d.id in self._held])
            raise
        return len(claimed) == limit

    def _lease(self) -> timedelta:
        """A lease outlives a missed renewal and a request in flight."""
        longest = max((cb.timeout for cb in self.callbacks.by_id.values()), default=10.0)
        return LEASE + timedelta(seconds=longest)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(LEASE.total_seconds() / 3)
            try:
                await store.renew(self._engine, self._held.ids(), _now() + self._lease())
            except Exception:
                log.exception("renewing the leases of %d deliveries failed", len(self._held))

    async def _give_back(self, deliveries: list[Claimed]) -> None:
        if not deliveries:
            return
        await store.release(self._engine, [d.id for d in deliveries], _now())
        for delivery in deliveries:
            self._held.release(delivery.id)

    async def _time_next_due(self, now: datetime) -> None:
        due = await store.next_due(self._engine, now)
        if due is not None:
            self._wake_at(due)

    def _wake_at(self, when: datetime) -> None:
        """Wakes the loop at `when`, unless an earlier timer is pending.

        One timer is enough: when it fires and nothing is left to claim, the
        loop asks the database when the next delivery falls due.
        """
        loop = asyncio.get_running_loop()
        now = loop.time()
        at = now + max(0.0, (when - _now()).total_seconds())
        timer = self._timer
        if timer is not None and now < self._timer_at <= at:
            return
        if timer is not None:
            timer.cancel()
        self._timer, self._timer_at = loop.call_at(at, self._wake.set), at

    async def _start(self, claimed: list[Claimed], now: datetime) -> None:
        messages = await store.load_messages(self._engine, [d.message_id for d in claimed])
        health = {
            h.id: h for h in await store.health(self._engine, {d.callback_id for d in claimed})
        }
        stale = [h.id for h in health.values() if self.callbacks.version(h.id) != h.version]
        await self.callbacks.load(stale)
        by_callback: defaultdict[uuid.UUID, list[Claimed]] = defaultdict(list)
        for delivery in claimed:
            by_callback[delivery.callback_id].append(delivery)
        for callback_id, deliveries in by_callback.items():
            config = self.callbacks.by_id.get(callback_id)
            state = health.get(callback_id)
            if config is None or state is None:
                await self._give_back(deliveries)
                continue
            if state.failure_streak >= self._breaker_failures:
                deliveries = await self._probe(deliveries, now)
            for delivery in deliveries:
                self._spawn(delivery, config, messages.get(delivery.message_id))

    async def _probe(self, deliveries: list[Claimed], now: datetime) -> list[Claimed]:
        """A tripped breaker whose pause is over lets one delivery through, if we win it."""
        won = await store.take_probe(
            self._engine,
            deliveries[0].callback_id,
            now,
            now + self._breaker_pause,
            self._breaker_failures,
        )
        keep = deliveries[:1] if won else []
        await self._give_back(deliveries[len(keep) :])
        if won:
            callback_id = deliveries[0].callback_id
            log.info(
                "callback %s: probing its endpoint", callback_id, extra={"callback_id": callback_id}
            )
        return keep

    def _spawn(
        self, delivery: Claimed, config: CallbackConfig, message: Mapping[str, Any] | None
    ) -> None:
        """Queues the attempt; the callback's workers (at most its slots) send in turn."""
        queue = self._queues.get(config.id)
        if queue is None:
            queue = self._queues[config.id] = deque()
        queue.append((delivery, config, message))
        if self._workers[config.id] < self._per_callback:
            self._workers[config.id] += 1
            task = asyncio.create_task(self._work(config.id, queue), name="callback-worker")
            self._attempts.add(task)
            task.add_done_callback(self._attempts.discard)

    # -- attempts -----------------------------------------------------------------------

    async def _work(self, callback_id: uuid.UUID, queue: deque[Queued]) -> None:
        """One of a callback's request slots: sends its queued attempts until none is left.

        A worker per slot rather than a task per delivery: a hanging
        endpoint's backlog waits as plain values, and a fast one's attempts
        cost no task each.
        """
        try:
            while queue:
                delivery, config, message = queue.popleft()
                async with self._sending:
                    self.stats.in_flight += 1
                    try:
                        outcome = await self._attempt(delivery, config, message)
                    finally:
                        self.stats.in_flight -= 1
                self._writer.add(outcome)
        finally:
            self._workers[callback_id] -= 1

    async def _attempt(
        self, delivery: Claimed, config: CallbackConfig, message: Mapping[str, Any] | None
    ) -> Outcome:
        try:
            return await self._try(delivery, config, message)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # the edge of a task: a bug must not lose the delivery
            log.exception(
                "delivery %s failed unexpectedly",
                delivery.id,
                extra={
                    "delivery_id": delivery.id,
                    "callback_id": delivery.callback_id,
                    "message_id": delivery.message_id,
                    "organization_id": delivery.organization_id,
                },
            )
            return attempt.final(delivery, _now(), f"internal error: {err!r}")

    async def _try(
        self, delivery: Claimed, config: CallbackConfig, message: Mapping[str, Any] | None
    ) -> Outcome:
        at = _now()
        prepared = attempt.prepare(self.callbacks, config, delivery, message, at)
        if isinstance(prepared, Outcome):
            return prepared
        result = await self._transport.send(prepared, config.timeout)
        return attempt.sent(delivery, config, at, prepared, result)

    # -- metrics ------------------------------------------------------------------------

    @property
    def held(self) -> int:
        return len(self._held)

    @property
    def paused_callbacks(self) -> int:
        return len(self.callbacks.tripped)

    @property
    def unwritten(self) -> int:
        return self._writer.waiting

    # -- written outcomes -----------------------------------------------------------------

    def _written(self, batch: list[Outcome], paused: dict[uuid.UUID, datetime | None]) -> None:
        """After a batch of outcomes is stored: free their room, time the retries."""
        self.delivered += len(batch)
        self.stats.written(batch)
        room = False
        for outcome in batch:
            room = self._held.release(outcome.delivery_id) or room
            if outcome.next_attempt_at is not None:
                self._wake_at(outcome.next_attempt_at)
        for callback_id, until in paused.items():
            self._breaker(callback_id, until)
        if room:
            self._wake.set()

    def _breaker(self, callback_id: uuid.UUID, until: datetime | None) -> None:
        if until is not None and self._paused.get(callback_id) is None:
            log.warning(
                "callback %s keeps failing: paused until %s",
                callback_id,
                until,
                extra={"callback_id": callback_id},
            )
        if until is not None:
            self._wake_at(until)
        self._paused[callback_id] = until
        self.callbacks.breaker(callback_id, until)
