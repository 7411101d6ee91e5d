"""The dispatcher: `message.stored` events in, webhook requests out, never lost.

Two halves joined by the `deliveries` table (see `store` for the states):

- **Intake.** It consumes `message.stored` from the durable queue `callbacks`,
  finds the enabled callbacks of each message's group whose `triggers` name
  the message type (an in-memory `CallbackBook`, refreshed by `updated_at`
  every second like the gateway's device directory), inserts one delivery
  per (callback, message) in one transaction and only then lets the broker
  ack the event. An event delivered twice inserts nothing the second time.
  The insert wakes the delivery loop, so a delivery goes out at once.
- **Delivery.** The loop claims due deliveries in batches under a lease,
  loads their messages (with the device) in one query, transforms each with
  the callback's JSONata payload (compiled once per callback version) and
  sends it. Outcomes are written in batches by one writer task: attempt
  rows, delivery states, callback health. A retry is scheduled at
  `retry_delays[attempts - 1]` after the attempt; with more attempts than
  delays the delivery is `failed` (replayable from the API). A timer wakes
  the loop for the retries it scheduled; otherwise it polls every
  `poll_seconds` for work that other processes made due (replays, retries of
  a dispatcher that stopped).

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
  limit of one callback's deliveries (4 times the global limit in all), and
  claims only for callbacks below that: a hanging endpoint holds its own
  slots and its own small backlog, and nothing else waits for it.
- Circuit breaker: `callback_breaker_failures` endpoint failures in a row
  set the callback's `paused_until` to now + `callback_breaker_pause_seconds`.
  Claims skip paused callbacks, so their deliveries wait without using
  attempts. Once the pause is over, one dispatcher wins the probe (a
  compare-and-set that pushes the pause forward) and sends one delivery;
  success clears the breaker, failure pauses again.
- Restarts: every state is in the database. `close` gives back what it holds
  (cancelled attempts are released, not counted); a crashed dispatcher's
  leases expire (the time its backlog may take, plus a minute) and its
  deliveries are claimed again, so delivery is at least once, and receivers
  deduplicate by the `X-Nubes-Delivery` header.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from nubes import __version__
from nubes.callbacks import store
from nubes.callbacks.model import CallbackConfig, OutgoingRequest, SendResult
from nubes.callbacks.request import build_request, log_request
from nubes.callbacks.store import Claimed, Outcome
from nubes.callbacks.transform import SKIP, Payload, TransformError, compile_payload
from nubes.callbacks.transform import message_document as make_document
from nubes.config import Settings
from nubes.errors import NubesError
from nubes.pipeline.broker import MESSAGE_STORED, Broker
from nubes.store import tables as t

log = logging.getLogger(__name__)

CALLBACKS_QUEUE = "callbacks"
USER_AGENT = f"nubes/{__version__}"
CLAIM_BATCH = 500
# Rows committed by another process just before a refresh may carry an
# earlier `updated_at` than the newest seen: look back this far.
OVERLAP = timedelta(seconds=5)
LEASE_MARGIN = timedelta(seconds=60)
# Deliveries of one callback a dispatcher may hold, per request slot: enough
# to keep its connections busy between two claims.
BACKLOG = 16
WRITE_RETRY_SECONDS = 1.0
# Outcomes are written together: a small batch waits this long for company.
WRITE_BATCH = 200
WRITE_LINGER_SECONDS = 0.01


class Transport(Protocol):
    """What sends a request (`sender.Sender`); never raises for network errors."""

    async def send(self, request: OutgoingRequest, timeout: float) -> SendResult: ...


def _now() -> datetime:
    return datetime.now(UTC)


class CallbackBook:
    """Callbacks by id and by group, and their compiled payloads, refreshed by `updated_at`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.by_id: dict[uuid.UUID, CallbackConfig] = {}
        self._live: dict[uuid.UUID, bool] = {}  # enabled and not deleted
        self._by_group: dict[uuid.UUID, list[CallbackConfig]] = {}
        self._payloads: dict[uuid.UUID, tuple[int, Payload | TransformError]] = {}
        self._newest: datetime | None = None

    def firing(self, group_id: uuid.UUID, message_type: str) -> list[CallbackConfig]:
        return [cb for cb in self._by_group.get(group_id, ()) if message_type in cb.triggers]

    async def refresh(self) -> int:
        c = t.callbacks
        query = sa.select(c)
        if self._newest is not None:
            query = query.where(c.c.updated_at > self._newest - OVERLAP)
        return await self._load(query)

    async def load(self, ids: Iterable[uuid.UUID]) -> None:
        """Reads these callbacks now (a claim saw a version newer than the book's)."""
        wanted = sorted(set(ids))
        if wanted:
            await self._load(sa.select(t.callbacks).where(t.callbacks.c.id.in_(wanted)))

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
        self._hold_total = 4 * settings.dispatcher_concurrency
        self._sending = asyncio.Semaphore(settings.dispatcher_concurrency)
        self._breaker_failures = settings.callback_breaker_failures
        self._breaker_pause = timedelta(seconds=settings.callback_breaker_pause_seconds)
        self.callbacks = CallbackBook(engine)
        self._slots: dict[uuid.UUID, asyncio.Semaphore] = {}
        self._held: dict[uuid.UUID, uuid.UUID] = {}  # delivery id -> callback id
        self._held_by_callback: defaultdict[uuid.UUID, int] = defaultdict(int)
        self._outcomes: list[Outcome] = []
        self._attempts: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._written = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0  # loop time; uvloop's handles do not tell it
        self._paused: dict[uuid.UUID, datetime | None] = {}  # as last written
        self._deliverer: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self.delivered = 0  # attempts written, for benchmarks and logs

    async def start(self) -> None:
        await self.callbacks.refresh()
        self._refresher = asyncio.create_task(self._refresh_forever(), name="dispatcher-refresh")
        self._deliverer = asyncio.create_task(self._deliver_forever(), name="dispatcher-deliver")
        self._writer = asyncio.create_task(self._write_forever(), name="dispatcher-write")
        await self._broker.declare(MESSAGE_STORED, CALLBACKS_QUEUE)
        await self._broker.consume(MESSAGE_STORED, CALLBACKS_QUEUE, self.handle, self._prefetch)
        log.info("dispatcher started with %d callbacks", len(self.callbacks.by_id))

    async def close(self) -> None:
        """Stops claiming, abandons attempts in flight, writes what finished, releases the rest."""
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
        stopping = [t for t in (self._deliverer, self._refresher, *self._attempts) if t]
        for task in stopping:
            task.cancel()
        await asyncio.gather(*stopping, return_exceptions=True)
        if self._writer is not None:
            self._written.set()
            try:
                await asyncio.wait_for(self._writer, 10)
            except Exception:
                log.exception("dispatcher: outcomes not all written at close")
        with contextlib.suppress(Exception):
            await store.release(self._engine, list(self._held), _now())
        self._held.clear()

    # -- intake -------------------------------------------------------------------------

    async def handle(self, body: bytes) -> None:
        """One `message.stored` event batch; returns (is acked) once its deliveries are stored."""
        try:
            events = orjson.loads(body)["messages"]
            pairs = list(self._pairs(events))
        except (KeyError, TypeError, ValueError) as err:
            log.error("dropping a message.stored body that is not an event batch: %r", err)
            return
        if pairs and await store.create_deliveries(self._engine, pairs, _now()):
            self._wake.set()

    def _pairs(
        self, events: list[dict[str, Any]]
    ) -> Iterable[tuple[uuid.UUID, uuid.UUID, uuid.UUID]]:
        for event in events:
            if event.get("group_id") is None:
                continue
            callbacks = self.callbacks.firing(uuid.UUID(event["group_id"]), event["type"])
            for callback in callbacks:
                yield callback.id, callback.organization_id, uuid.UUID(event["id"])

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
        free = self._hold_total - len(self._held)
        if free <= 0:
            return False  # a written outcome wakes the loop
        # A callback is claimed for in chunks of half its backlog: fewer,
        # larger claims, and its connections stay busy meanwhile.
        cap = self._hold_per_callback // 2
        busy = [cb for cb, n in self._held_by_callback.items() if n >= cap]
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
        for delivery in claimed:
            self._hold(delivery)
        try:
            await self._start(claimed, now)
        except Exception:
            await self._give_back([d for d in claimed if d.id in self._held])
            raise
        return len(claimed) == limit

    def _lease(self) -> timedelta:
        """Long enough for a full backlog to be sent one timeout after another."""
        longest = max((cb.timeout for cb in self.callbacks.by_id.values()), default=10.0)
        return timedelta(seconds=(BACKLOG + 2) * longest) + LEASE_MARGIN

    def _hold(self, delivery: Claimed) -> None:
        self._held[delivery.id] = delivery.callback_id
        self._held_by_callback[delivery.callback_id] += 1

    def _unhold(self, delivery_id: uuid.UUID) -> bool:
        """Forgets a delivery; True when that makes room for a claim.

        Only then does a written outcome wake the loop: a claim after every
        small write would mostly find its callbacks still busy.
        """
        callback_id = self._held.pop(delivery_id, None)
        if callback_id is None:
            return False
        left = self._held_by_callback[callback_id] - 1
        if left > 0:
            self._held_by_callback[callback_id] = left
        else:
            del self._held_by_callback[callback_id]
        return left == self._hold_per_callback // 2 - 1 or len(self._held) == self._hold_total - 1

    async def _give_back(self, deliveries: list[Claimed]) -> None:
        if not deliveries:
            return
        await store.release(self._engine, [d.id for d in deliveries], _now())
        for delivery in deliveries:
            self._unhold(delivery.id)

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
        stale = [h.id for h in health.values() if _version(self.callbacks, h.id) != h.version]
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
            log.info("callback %s: probing its endpoint", deliveries[0].callback_id)
        return keep

    def _spawn(
        self, delivery: Claimed, config: CallbackConfig, message: dict[str, Any] | None
    ) -> None:
        task = asyncio.create_task(
            self._attempt(delivery, config, message), name=f"delivery:{delivery.id}"
        )
        self._attempts.add(task)
        task.add_done_callback(self._attempts.discard)

    # -- one attempt --------------------------------------------------------------------

    async def _attempt(
        self, delivery: Claimed, config: CallbackConfig, message: dict[str, Any] | None
    ) -> None:
        slots = self._slots.get(config.id)
        if slots is None:
            slots = self._slots[config.id] = asyncio.Semaphore(self._per_callback)
        async with slots, self._sending:
            try:
                outcome = await self._try(delivery, config, message)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # the edge of a task: a bug must not lose the delivery
                log.exception("delivery %s failed unexpectedly", delivery.id)
                outcome = self._final(delivery, _now(), f"internal error: {err!r}")
        self._outcomes.append(outcome)
        self._written.set()

    async def _try(
        self, delivery: Claimed, config: CallbackConfig, message: dict[str, Any] | None
    ) -> Outcome:
        at = _now()
        if message is None:
            return self._final(delivery, at, "the message no longer exists")
        document = make_document(message, _device(message))
        try:
            transformed = self.callbacks.payload(config).apply(document)
        except TransformError as err:
            return self._final(delivery, at, f"payload: {err.message}")
        if transformed is SKIP:
            return self._skipped(delivery, at)
        try:
            request = build_request(
                config,
                document,
                transformed,
                message["raw"] or b"",
                delivery_id=delivery.id,
                message_id=delivery.message_id,
                timestamp=int(time.time()),
                user_agent=USER_AGENT,
            )
        except (NubesError, ValueError) as err:
            return self._final(delivery, at, f"request: {err}")
        result = await self._transport.send(request, config.timeout)
        return self._sent(delivery, config, at, request, result)

    def _final(self, delivery: Claimed, at: datetime, error: str) -> Outcome:
        """Failed for good: retrying the same message and configuration cannot help."""
        return Outcome(
            delivery.id, delivery.callback_id, at, "failed", delivery.attempts + 1,
            "failure", endpoint=False, error=error,
        )  # fmt: skip

    def _skipped(self, delivery: Claimed, at: datetime) -> Outcome:
        return Outcome(
            delivery.id, delivery.callback_id, at, "skipped", delivery.attempts + 1,
            "skipped", endpoint=False, error="the payload is undefined or null: nothing to send",
        )  # fmt: skip

    def _sent(
        self,
        delivery: Claimed,
        config: CallbackConfig,
        at: datetime,
        request: OutgoingRequest,
        result: SendResult,
    ) -> Outcome:
        attempts = delivery.attempts + 1
        outcome = Outcome(
            delivery.id, delivery.callback_id, at, "succeeded", attempts, "success",
            endpoint=True, duration_ms=result.duration_ms, request=log_request(request),
            response=_response_log(result), status=result.status,
        )  # fmt: skip
        if result.ok:
            return outcome
        outcome.outcome = "failure"
        outcome.error = result.error or f"HTTP {result.status}"
        if attempts <= len(config.retry_delays):
            outcome.state = "pending"
            outcome.next_attempt_at = at + timedelta(seconds=config.retry_delays[attempts - 1])
        else:
            outcome.state = "failed"
        return outcome

    # -- writing outcomes -----------------------------------------------------------------

    async def _write_forever(self) -> None:
        while True:
            await self._written.wait()
            self._written.clear()
            if len(self._outcomes) < WRITE_BATCH and not self._closing:
                await asyncio.sleep(WRITE_LINGER_SECONDS)  # one transaction for more
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
                await asyncio.sleep(WRITE_RETRY_SECONDS)
        self.delivered += len(batch)
        room = False
        for outcome in batch:
            room = self._unhold(outcome.delivery_id) or room
            if outcome.next_attempt_at is not None:
                self._wake_at(outcome.next_attempt_at)
        for callback_id, until in paused.items():
            if until is not None and self._paused.get(callback_id) is None:
                log.warning("callback %s keeps failing: paused until %s", callback_id, until)
            if until is not None:
                self._wake_at(until)
            self._paused[callback_id] = until
        if room:
            self._wake.set()
        if self._closing:
            self._written.set()


def _version(book: CallbackBook, callback_id: uuid.UUID) -> int | None:
    known = book.by_id.get(callback_id)
    return None if known is None else known.version


def _device(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": message["device_id"],
        "name": message["device_name"],
        "serial": message["device_serial"],
        "label": message["device_label"],
    }


def _response_log(result: SendResult) -> dict[str, Any] | None:
    if result.status is None:
        return None
    return {
        "status": result.status,
        "headers": [[name, value] for name, value in result.headers],
        "body": result.body.decode("utf-8", "replace"),
    }
