"""A device's link state shared between gateway processes (several gateways).

Behind a sticky UDP balancer a device talks to one gateway, until its NAT
binding changes or that gateway restarts; then its next packet, usually in
the middle of the sequence, reaches a gateway that never heard of it. With
state kept in memory only, that gateway answers a reset, the device starts
its message over (one round trip lost, 5 s when a packet was missed), an
unacked downlink is offered again (a shell command runs twice) and a
SET_SESSION offered only in the first gateway's memory is lost (the device
opens another session).

So each gateway saves a small snapshot of a link (`LinkSnapshot`: the
transfer state, the offered and recently delivered downlinks, the session
id and hashes it learnt) whenever a packet changed it, batched: one Redis
pipeline at a time, the links changed meanwhile coalesce into the next
(`StateWriter`). A gateway loads the snapshot when a device it has no link
for shows up (it already awaits the database for that device's downlinks
then) and when its own link answers a packet with a reset or finds it
stale, in case another gateway has served the device since. Whoever loads
a snapshot of another owner tells the others (`takeover`), and they forget
their link of that device: a stale link could otherwise handle a seq-0
packet as if nothing had happened since.

Snapshots are versioned with a hybrid clock (microseconds, and one more
than the previous version), a loaded snapshot replaces a link only when it
is newer, and snapshot bytes that do not decode are ignored: the gateway
then answers what it would have answered alone (a reset). The embedded
mode has one gateway and `LocalState`, which does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Protocol

import cbor2
import redis.asyncio as aioredis

from nubes.flap import TransferState

log = logging.getLogger(__name__)

FORMAT = 1
"""Snapshot format; a snapshot of another format is ignored (treated as absent)."""

LOAD_TIMEOUT = 1.0  # seconds; a device waits 5 s for its answer


@dataclass(frozen=True, slots=True)
class OfferState:
    """A downlink offered to the device (`gateway.downlinks.Offer` without its bytes)."""

    downlink_id: Hashable
    type_name: str
    message: bytes
    body: Any
    stored: bool


@dataclass(frozen=True, slots=True)
class LinkSnapshot:
    version: int
    owner: str
    fragment_limit: int
    session_id: int | None
    hashes: tuple[str | None, str | None, str | None]  # decoder, encoder, config
    transfer: TransferState
    offers: tuple[OfferState, ...]
    delivered: tuple[Hashable, ...]
    saved_at: float  # Unix time, to age the repeat window


def next_version(previous: int) -> int:
    """A hybrid clock: wall-clock microseconds, and always past `previous`."""
    return max(previous + 1, time.time_ns() // 1000)


# -- bytes ---------------------------------------------------------------------


def _id_out(value: Hashable) -> Any:
    if isinstance(value, uuid.UUID):
        return value.bytes
    if isinstance(value, tuple):
        return [_id_out(v) for v in value]
    return value


def _id_in(value: Any) -> Hashable:
    if isinstance(value, bytes) and len(value) == 16:
        return uuid.UUID(bytes=value)
    if isinstance(value, list):
        return tuple(_id_in(v) for v in value)
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return value
    raise ValueError(f"not a downlink id: {value!r}")


def encode(snapshot: LinkSnapshot) -> bytes:
    s, t = snapshot, snapshot.transfer
    out = None if t.out is None else [_id_out(t.out[0]), t.out[1], t.out[2]]
    return bytes(
        cbor2.dumps(
            [
                FORMAT,
                s.version,
                s.owner,
                s.fragment_limit,
                s.session_id,
                list(s.hashes),
                [t.phase, t.expected, list(t.parts), t.last, t.last_answer, t.last_age, t.repeats],
                [[_id_out(k), v] for k, v in t.queue],
                [[_id_out(k), v] for k, v in t.attempts],
                out,
                [
                    [_id_out(o.downlink_id), o.type_name, o.message, o.body, o.stored]
                    for o in s.offers
                ],
                [_id_out(d) for d in s.delivered],
                s.saved_at,
            ]
        )
    )


def decode(raw: bytes) -> LinkSnapshot | None:
    """The snapshot in `raw`; None for another format or bytes that do not decode."""
    try:
        return _decode(cbor2.loads(raw))
    except Exception as err:  # whatever Redis holds must not stop a device's packet
        log.warning("gateway state snapshot ignored: %s", err)
        return None


def _decode(value: Any) -> LinkSnapshot | None:
    if not isinstance(value, list) or not value or value[0] != FORMAT:
        return None
    (_, version, owner, limit, session_id, hashes, tr, queue, attempts, out, offers, done, at) = (
        value
    )
    phase, expected, parts, last, last_answer, age, repeats = tr
    transfer = TransferState(
        phase=str(phase),
        expected=None if expected is None else int(expected),
        parts=tuple(_bytes(p) for p in parts),
        queue=tuple((_id_in(k), _bytes(v)) for k, v in queue),
        attempts=tuple((_id_in(k), int(v)) for k, v in attempts),
        out=None if out is None else (_id_in(out[0]), _bytes(out[1]), int(out[2])),
        last=None if last is None else _bytes(last),
        last_answer=None if last_answer is None else _bytes(last_answer),
        last_age=float(age),
        repeats=int(repeats),
    )
    return LinkSnapshot(
        version=int(version),
        owner=str(owner),
        fragment_limit=int(limit),
        session_id=None if session_id is None else int(session_id),
        hashes=tuple(None if h is None else str(h) for h in hashes),  # type: ignore[arg-type]
        transfer=transfer,
        offers=tuple(
            OfferState(_id_in(i), str(n), _bytes(m), b, bool(s)) for i, n, m, b, s in offers
        ),
        delivered=tuple(_id_in(d) for d in done),
        saved_at=float(at),
    )


def _bytes(value: Any) -> bytes:
    if not isinstance(value, bytes):
        raise ValueError(f"bytes expected, not {type(value).__name__}")
    return value


# -- where snapshots live ---------------------------------------------------------


class SharedState(Protocol):
    """Where gateways keep link snapshots; `shared` is False when there is one gateway."""

    shared: bool
    owner: str

    async def start(self, on_takeover: Callable[[int, str], None]) -> None: ...

    async def close(self) -> None: ...

    async def load(self, serial: int) -> bytes | None:
        """The stored snapshot of a device; None when absent or unreachable."""
        ...

    async def save(self, snapshots: list[tuple[int, bytes]]) -> None: ...

    async def takeover(self, serial: int) -> None:
        """Tells the other gateways that this one serves the device now."""
        ...


class LocalState:
    """One gateway (the embedded mode): nothing is shared, nothing is done."""

    shared = False

    def __init__(self) -> None:
        self.owner = "local"

    async def start(self, on_takeover: Callable[[int, str], None]) -> None:
        return None

    async def close(self) -> None:
        return None

    async def load(self, serial: int) -> bytes | None:
        return None

    async def save(self, snapshots: list[tuple[int, bytes]]) -> None:
        return None

    async def takeover(self, serial: int) -> None:
        return None


_SAVE = """
local ttl = ARGV[1]
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[i + 1], 'PX', ttl)
end
return #KEYS
"""


class RedisState:
    """Snapshots as Redis strings with a TTL; takeovers on a pub/sub channel."""

    shared = True

    def __init__(self, url: str, prefix: str, ttl_seconds: float) -> None:
        self._client: aioredis.Redis = aioredis.from_url(
            url, socket_timeout=5.0, socket_connect_timeout=5.0, health_check_interval=30
        )
        self._prefix = prefix
        self._ttl_ms = max(1000, int(ttl_seconds * 1000))
        self._channel = f"{prefix}:gateway:takeover"
        self.owner = uuid.uuid4().hex[:12]
        self._listener: asyncio.Task[None] | None = None
        self._save_script = self._client.register_script(_SAVE)

    def _key(self, serial: int) -> str:
        return f"{self._prefix}:gateway:link:{serial}"

    async def start(self, on_takeover: Callable[[int, str], None]) -> None:
        ready = asyncio.Event()
        self._listener = asyncio.create_task(
            self._listen(on_takeover, ready), name="gateway-takeovers"
        )
        try:
            await asyncio.wait_for(ready.wait(), 5.0)
        except TimeoutError:
            log.warning("gateway takeovers: Redis pub/sub not ready yet; retrying")

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        await self._client.aclose()

    async def load(self, serial: int) -> bytes | None:
        try:
            value = await asyncio.wait_for(self._client.get(self._key(serial)), LOAD_TIMEOUT)
        except (TimeoutError, aioredis.RedisError) as err:
            log.warning("gateway state of device %s not loaded: %s", serial, err)
            return None
        return value if isinstance(value, bytes) else None

    async def save(self, snapshots: list[tuple[int, bytes]]) -> None:
        # One command for the whole batch: redis-py spends far more per
        # command than per argument (a pipeline of SETs halved the gateway).
        keys = [self._key(serial) for serial, _ in snapshots]
        await self._save_script(keys=keys, args=[self._ttl_ms, *(raw for _, raw in snapshots)])

    async def takeover(self, serial: int) -> None:
        try:
            await self._client.publish(self._channel, f"{serial} {self.owner}")
        except aioredis.RedisError as err:
            log.warning("takeover of device %s not announced: %s", serial, err)

    async def _listen(self, on_takeover: Callable[[int, str], None], ready: asyncio.Event) -> None:
        while True:
            try:
                async with self._client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self._channel)
                    ready.set()
                    async for message in pubsub.listen():
                        self._on_message(message.get("data"), on_takeover)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("gateway takeovers: lost Redis (%s); reconnecting", err)
                await asyncio.sleep(1.0)

    def _on_message(self, data: Any, on_takeover: Callable[[int, str], None]) -> None:
        try:
            serial, owner = bytes(data).decode().split()
            if owner != self.owner:
                on_takeover(int(serial), owner)
        except Exception:
            log.warning("gateway takeovers: unreadable message %r", data)


class StateWriter:
    """Saves changed links in batches: one save in flight, the rest coalesce behind it."""

    def __init__(self, state: SharedState, snapshot: Callable[[int], bytes | None]) -> None:
        self._state = state
        self._snapshot = snapshot
        self._dirty: set[int] = set()
        self._task: asyncio.Task[None] | None = None
        self._scheduled = False
        self.saved = 0
        self.failed = 0

    def changed(self, serial: int) -> None:
        self._dirty.add(serial)
        if not self._scheduled and self._task is None:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        if self._task is not None or not self._dirty:
            return
        serials, self._dirty = self._dirty, set()
        batch = [(s, raw) for s in serials if (raw := self._snapshot(s)) is not None]
        if batch:
            self._task = asyncio.create_task(self._save(batch), name="gateway-state-save")

    async def _save(self, batch: list[tuple[int, bytes]]) -> None:
        try:
            await self._state.save(batch)
            self.saved += len(batch)
        except Exception as err:
            self.failed += len(batch)
            log.warning("gateway state of %d devices not saved: %s", len(batch), err)
        finally:
            self._task = None
        if self._dirty:
            self._flush()

    async def close(self) -> None:
        self._flush()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
