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
id and hashes it learnt) whenever a packet changed it, batched: one save
command at a time, the links changed meanwhile coalesce into the next
(`StateWriter`), each encoded once per save however many packets changed
it. That is once per uplink under load (a device waits for each answer),
so the encoding is a fixed struct head with the byte strings appended, and
the batch travels as one argument of a Lua script: together about 5 µs of
gateway CPU per uplink, where a CBOR array per snapshot and two arguments
each had cost about 12 (docs/benchmarks.md). A gateway loads the snapshot
when a device it has no link for shows up (it already awaits the database
for that device's downlinks then) and when its own link answers a packet
with a reset or finds it stale, in case another gateway has served the
device since. Whoever loads a snapshot tells the others (`takeover`), even
its own snapshot, and they forget their link of that device: a stale link
could otherwise handle a seq-0 packet as if nothing had happened since, or
take the repeat of a message stored elsewhere for a new one. Takeovers go
over pub/sub, at most once: when a gateway's subscription drops, and again
when it is back, the gateway treats every link as possibly taken over
(each consults Redis and the database before its next packet), since what
was published meanwhile is lost. What is left: a takeover takes a few ms
to arrive, and a repeat reaching the other gateway inside that window
could still be stored twice (devices repeat after seconds).

Snapshots are versioned with a hybrid clock (microseconds, and one more
than the previous version), a loaded snapshot replaces a link only when it
is newer, and snapshot bytes that do not decode are ignored: the gateway
then answers what it would have answered alone (a reset). The embedded
mode has one gateway and `LocalState`, which does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import cbor2
import redis.asyncio as aioredis

from nubes.flap import TransferState

log = logging.getLogger(__name__)

FORMAT = 2
"""Snapshot format, the first byte; a snapshot of another format is ignored
(treated as absent). Format 1 (one CBOR array) took 4-5 µs per snapshot to
encode, format 2 under 1; a gateway of either format ignores the other's
snapshots, so a device remapped during the upgrade may be reset once."""

LOAD_TIMEOUT = 1.0  # seconds; a device waits 5 s for its answer
SAVE_RETRY_SECONDS = 1.0  # after a failed save (`StateWriter`)


class OfferState(NamedTuple):
    """A downlink offered to the device (`gateway.downlinks.Offer` without its bytes)."""

    downlink_id: Hashable
    type_name: str
    message: bytes
    body: Any
    stored: bool


class LinkSnapshot(NamedTuple):
    """A link as plain values; a named tuple, as it is made after every packet."""

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
#
# Format 2: a fixed head, seven byte strings, and the CBOR of the rest.
# The head: format, version, saved_at, last_age, repeats, expected (-1:
# none), fragment limit, session id (0: none; session ids are non-zero), the
# lengths of the byte strings (0xFFFF: None) and of the rest (0: empty).
# The byte strings: owner, phase, decoder, encoder and config hashes (UTF-8),
# the last packet and its answer. The rest: uplink fragments, queued
# downlinks, attempts, the downlink on the wire, offers and delivered ids;
# empty unless downlinks are under way or were delivered, and then encoded
# once and reused while it does not change (`RestCache`).

_HEAD = struct.Struct(">BQddIhHI7HI")
_ABSENT = 0xFFFF
_NO_REST: tuple[Any, ...] = ((), (), (), None, (), ())


@dataclass(slots=True)
class RestCache:
    """A link's last encoded rest, reused while equal.

    A device that got downlinks keeps up to 64 delivered ids for ever
    (`link.RECENTLY_DELIVERED`); encoding them took longer than all the rest
    of a snapshot, and they change once per downlink, not per packet.
    """

    key: tuple[Any, ...] = ()
    raw: bytes = b""


def encode(snapshot: LinkSnapshot, cache: RestCache | None = None) -> bytes:
    """The snapshot's bytes; `cache` (the link's) spares encoding an unchanged rest.

    Written out field by field: this runs after every packet that changed a
    link, and each list or generator more cost a tenth of a microsecond.
    """
    s, t = snapshot, snapshot.transfer
    decoder, encoder, config = s.hashes
    owner, phase = s.owner.encode(), t.phase.encode()
    d = b"" if decoder is None else decoder.encode()
    e = b"" if encoder is None else encoder.encode()
    c = b"" if config is None else config.encode()
    last, answer = t.last, t.last_answer
    rest = _rest(s, cache)
    head = _HEAD.pack(
        FORMAT,
        s.version,
        s.saved_at,
        t.last_age,
        t.repeats,
        -1 if t.expected is None else t.expected,
        s.fragment_limit,
        s.session_id or 0,
        len(owner),
        len(phase),
        _ABSENT if decoder is None else len(d),
        _ABSENT if encoder is None else len(e),
        _ABSENT if config is None else len(c),
        _ABSENT if last is None else len(last),
        _ABSENT if answer is None else len(answer),
        len(rest),
    )
    return b"".join((head, owner, phase, d, e, c, last or b"", answer or b"", rest))


def _rest(s: LinkSnapshot, cache: RestCache | None) -> bytes:
    t = s.transfer
    key = (t.parts, t.queue, t.attempts, t.out, s.offers, s.delivered)
    if not any(key):
        return b""
    if cache is not None and cache.key == key:
        return cache.raw
    raw: bytes = cbor2.dumps(
        [
            list(t.parts),
            [[_id_out(k), v] for k, v in t.queue],
            [[_id_out(k), v] for k, v in t.attempts],
            None if t.out is None else [_id_out(t.out[0]), t.out[1], t.out[2]],
            [[_id_out(o.downlink_id), o.type_name, o.message, o.body, o.stored] for o in s.offers],
            [_id_out(d) for d in s.delivered],
        ]
    )
    if cache is not None:
        cache.key, cache.raw = key, raw
    return raw


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


def decode(raw: bytes) -> LinkSnapshot | None:
    """The snapshot in `raw`; None for another format or bytes that do not decode."""
    if not raw or raw[0] != FORMAT:
        return None
    try:
        return _decode(raw)
    except Exception as err:  # whatever Redis holds must not stop a device's packet
        log.warning("gateway state snapshot ignored: %s", err)
        return None


def _decode(raw: bytes) -> LinkSnapshot:
    (_, version, saved_at, age, repeats, expected, limit, session_id, *sizes) = _HEAD.unpack_from(
        raw
    )
    offset, strings = _HEAD.size, []
    for size in sizes[:-1]:
        strings.append(None if size == _ABSENT else raw[offset : offset + size])
        offset += 0 if size == _ABSENT else size
    if offset + sizes[-1] != len(raw):
        raise ValueError(f"{len(raw)} bytes, not {offset + sizes[-1]}")
    owner, phase, decoder, encoder, config, last, last_answer = strings
    rest = cbor2.loads(raw[offset:]) if sizes[-1] else _NO_REST
    parts, queue, attempts, out, offers, done = rest
    transfer = TransferState(
        phase=_text(phase),
        expected=None if expected < 0 else expected,
        parts=tuple(_bytes(p) for p in parts),
        queue=tuple((_id_in(k), _bytes(v)) for k, v in queue),
        attempts=tuple((_id_in(k), int(v)) for k, v in attempts),
        out=None if out is None else (_id_in(out[0]), _bytes(out[1]), int(out[2])),
        last=last,
        last_answer=last_answer,
        last_age=age,
        repeats=repeats,
    )
    return LinkSnapshot(
        version=version,
        owner=_text(owner),
        fragment_limit=limit,
        session_id=session_id or None,
        hashes=(_hash(decoder), _hash(encoder), _hash(config)),
        transfer=transfer,
        offers=tuple(
            OfferState(_id_in(i), str(n), _bytes(m), b, bool(s)) for i, n, m, b, s in offers
        ),
        delivered=tuple(_id_in(d) for d in done),
        saved_at=saved_at,
    )


def _text(value: bytes | None) -> str:
    if value is None:
        raise ValueError("a text field is absent")
    return value.decode()


def _hash(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def _bytes(value: Any) -> bytes:
    if not isinstance(value, bytes):
        raise ValueError(f"bytes expected, not {type(value).__name__}")
    return value


# -- where snapshots live ---------------------------------------------------------


class SharedState(Protocol):
    """Where gateways keep link snapshots; `shared` is False when there is one gateway."""

    shared: bool
    owner: str

    async def start(
        self, on_takeover: Callable[[int, str], None], on_missed: Callable[[], None]
    ) -> None:
        """Listens for takeovers; `on_missed` when some may have been lost meanwhile."""
        ...

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

    async def start(
        self, on_takeover: Callable[[int, str], None], on_missed: Callable[[], None]
    ) -> None:
        return None

    async def close(self) -> None:
        return None

    async def load(self, serial: int) -> bytes | None:
        return None

    async def save(self, snapshots: list[tuple[int, bytes]]) -> None:
        return None

    async def takeover(self, serial: int) -> None:
        return None


# One command for a whole batch, and one argument: redis-py spends far more
# per command than per argument (a pipeline of SETs halved the gateway), and
# still a microsecond per argument (a key and a value per snapshot were a
# third of the cost of saving). The script builds the keys itself, so they
# are not declared: fine on one Redis, which is what the gateways share.
_SAVE = """
local prefix, ttl, records = ARGV[1], ARGV[2], ARGV[3]
local at, saved = 1, 0
while at <= #records do
  local serial, snapshot
  serial, snapshot, at = struct.unpack('>Bc0I4c0', records, at)
  redis.call('SET', prefix .. serial, snapshot, 'PX', ttl)
  saved = saved + 1
end
return saved
"""
_DIGITS = struct.Struct(">B")
_SIZE = struct.Struct(">I")


def save_records(snapshots: list[tuple[int, bytes]]) -> bytes:
    """The argument of `_SAVE`: each serial in decimal and each snapshot, length first."""
    parts: list[bytes] = []
    for serial, raw in snapshots:
        digits = b"%d" % serial
        parts += (_DIGITS.pack(len(digits)), digits, _SIZE.pack(len(raw)), raw)
    return b"".join(parts)


class RedisState:
    """Snapshots as Redis strings with a TTL; takeovers on a pub/sub channel."""

    shared = True

    def __init__(self, url: str, prefix: str, ttl_seconds: float) -> None:
        self.owner = uuid.uuid4().hex[:12]
        # The name shows in CLIENT LIST: which connections are which gateway's.
        self._client: aioredis.Redis = aioredis.from_url(
            url,
            socket_timeout=5.0,
            socket_connect_timeout=5.0,
            health_check_interval=30,
            client_name=f"nubes-gateway-{self.owner}",
        )
        self._prefix = prefix
        self._ttl_ms = max(1000, int(ttl_seconds * 1000))
        self._channel = f"{prefix}:gateway:takeover"
        self._listener: asyncio.Task[None] | None = None
        self._save_script = self._client.register_script(_SAVE)

    def _key(self, serial: int | str) -> str:
        return f"{self._prefix}:gateway:link:{serial}"

    async def start(
        self, on_takeover: Callable[[int, str], None], on_missed: Callable[[], None]
    ) -> None:
        ready = asyncio.Event()
        self._listener = asyncio.create_task(
            self._listen(on_takeover, on_missed, ready), name="gateway-takeovers"
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
        await self._save_script(args=[self._key(""), self._ttl_ms, save_records(snapshots)])

    async def takeover(self, serial: int) -> None:
        try:
            await self._client.publish(self._channel, f"{serial} {self.owner}")
        except aioredis.RedisError as err:
            log.warning("takeover of device %s not announced: %s", serial, err)

    async def _listen(
        self,
        on_takeover: Callable[[int, str], None],
        on_missed: Callable[[], None],
        ready: asyncio.Event,
    ) -> None:
        """Takeovers until cancelled; pub/sub delivers at most once, so a lost
        subscription calls `on_missed` when it drops and again once it is back
        (whatever was published in between is gone)."""
        while True:
            try:
                async with self._client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self._channel)
                    if ready.is_set():
                        on_missed()
                    ready.set()
                    async for message in pubsub.listen():
                        self._on_message(message.get("data"), on_takeover)
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("gateway takeovers: lost Redis (%s); reconnecting", err)
                if ready.is_set():
                    on_missed()
                await asyncio.sleep(1.0)

    def _on_message(self, data: Any, on_takeover: Callable[[int, str], None]) -> None:
        try:
            serial, owner = bytes(data).decode().split()
            if owner != self.owner:
                on_takeover(int(serial), owner)
        except Exception:
            log.warning("gateway takeovers: unreadable message %r", data)


class StateWriter:
    """Saves changed links in batches: one save in flight, the rest coalesce behind it.

    A batch that fails is saved again `retry_seconds` later, with whatever
    changed meanwhile: a lost save leaves an older snapshot in Redis, and a
    gateway that continued from it after a remap would take the repeat of
    a message acked since for a new one and store it twice. The pause keeps
    a gateway from looping against a Redis that is down; on `close` a failed
    batch is given up.
    """

    def __init__(
        self,
        state: SharedState,
        snapshot: Callable[[int], bytes | None],
        retry_seconds: float = SAVE_RETRY_SECONDS,
    ) -> None:
        self._state = state
        self._snapshot = snapshot
        self._retry_seconds = retry_seconds
        self._dirty: set[int] = set()
        self._task: asyncio.Task[None] | None = None
        self._scheduled = False
        self._closing = False
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
            if not self._closing:
                self._dirty.update(serial for serial, _ in batch)
                await asyncio.sleep(self._retry_seconds)
        finally:
            self._task = None
        if self._dirty:
            self._flush()

    async def close(self) -> None:
        self._closing = True
        self._flush()
        while self._task is not None:  # a save may start the next one as it ends
            await asyncio.gather(self._task, return_exceptions=True)
