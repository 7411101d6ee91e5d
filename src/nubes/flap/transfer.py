"""The cloud side of FLAP transfers: one `Transfer` per device, sans-IO.

A device always speaks first and gets at most one packet back, so the whole
protocol is one function: `receive(packet, now) -> Step` (the answer, an
outcome for the communication log, and events for the gateway). There is no
socket, no clock and no timer here; the gateway passes the time in.

Sequence numbers. Device and cloud share one counter: the device sends n, the
cloud answers n+1, the device continues with n+2, or with n+1 after a packet
the cloud does not answer. 0 means "start a new exchange": it discards an
unfinished transfer (a downlink whose fragments were all sent counts as
delivered, as the documentation says, so that a device that rebooted after
applying a config downlink is not sent it again). Behind the expected number
(within half the ring) a packet is stale and ignored; ahead of it, or when
nothing is expected yet (a fresh `Transfer`, e.g. after a server restart), the
answer is a reset packet and the device starts over at 0. A reset changes no
state here: a replayed old packet must not be able to tear a session down.

Duplicates. An identical repeat of the last accepted packet is answered every
second time with the cached answer (the documentation asks devices to repeat
at least twice); once the device has repeated it for longer than
`repeat_reset_seconds`, the answer is a reset and the packet is forgotten, so
that the restarted exchange is processed afresh. The repeat check comes
before the seq-0 rule: a seq-0 packet identical to the last one is a repeat.
Firmware that restarts CREATE_SESSION after a lost ack then opens one session,
not two, and a device whose answer was lost gets it instead of having the
downlink confirmed unseen. The price: a device that did get that downlink,
lost everything it sent afterwards and restarted with the identical seq-0
packet within the window is sent the downlink again (at least once rather
than at most once).

Two-phase completion. When the last fragment of an uplink arrives, `receive`
returns no answer but a `MessageReceived` event, and the transfer waits: the
gateway makes the message durable and then calls `commit` (which builds the
ack, with P when a downlink is waiting at that moment, e.g. the SET_SESSION
the gateway just offered) or `abandon` (no ack; the state rolls back so that
the device's repeat of the fragment is processed as new). Until then
`receive` refuses to run: the gateway serialises each device's packets.

Downlinks. Offered downlinks wait in order; a poll (or an ack with P after a
completed downlink) starts the first one, each device ack asks for the next
fragment, and the last fragment carries P when another downlink waits. A
downlink is delivered on the ack of its last fragment, or when the device's
next packet continues the sequence after that ack was lost; an unfinished one
is offered again on the next poll.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from nubes.flap.messages import MAX_MESSAGE
from nubes.flap.packet import MAX_SEQ, RESET, A, F, L, P, Packet, flag_text, next_seq

MAX_REASSEMBLY = MAX_MESSAGE + 1
"""A reassembled message: the type byte and a value of at most MAX_MESSAGE bytes."""

BEHIND_WINDOW = MAX_SEQ // 2
"""How far behind the expected number a packet is stale rather than ahead."""

REPEAT_RESET_SECONDS = 60.0
"""A device repeating one packet for longer than this gets a reset."""


class Outcome(StrEnum):
    accepted = "accepted"
    duplicate = "duplicate"
    stale = "stale"
    reset = "reset"
    invalid = "invalid"


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """An uplink is complete; answer it with `commit` or `abandon`."""

    message: bytes


@dataclass(frozen=True, slots=True)
class DownlinkSent:
    """The first fragment of a downlink went out; `attempt` counts the starts."""

    downlink_id: Hashable
    attempt: int


@dataclass(frozen=True, slots=True)
class DownlinkDelivered:
    """A downlink is delivered; `assumed` when only a restart at seq 0 confirmed it."""

    downlink_id: Hashable
    assumed: bool = False


@dataclass(frozen=True, slots=True)
class Restarted:
    """The device started over at seq 0 and an unfinished transfer was dropped."""


Event = MessageReceived | DownlinkSent | DownlinkDelivered | Restarted


@dataclass(frozen=True, slots=True)
class Step:
    """What one device packet caused: the answer (None: stay silent) and why."""

    answer: Packet | None
    outcome: Outcome
    reason: str = ""
    events: tuple[Event, ...] = ()


class TransferState(NamedTuple):
    """What a `Transfer` knows, as plain values, to continue it in another process.

    Ages instead of times: the monotonic clock of one process means nothing
    in another. Downlink ids are kept as they are; their encoding is the
    caller's business. Taken only between packets (never while an uplink
    awaits `commit`); with several gateways that is after every packet that
    changed it, so it is a named tuple (a frozen dataclass took three times
    as long to make).
    """

    phase: str
    expected: int | None
    parts: tuple[bytes, ...]
    queue: tuple[tuple[Hashable, bytes], ...]
    attempts: tuple[tuple[Hashable, int], ...]
    out: tuple[Hashable, bytes, int] | None  # downlink id, message, fragment sent last
    last: bytes | None  # the last accepted packet, encoded
    last_answer: bytes | None
    last_age: float  # seconds since the last packet first arrived
    repeats: int


class _Phase(StrEnum):  # a str: `state()` hands the member itself out
    IDLE = "idle"
    UPLINK = "uplink"  # fragments of an uplink arriving
    DOWNLINK = "downlink"  # a fragment was sent; the device acks it
    DOWNLINK_LAST = "downlink last"  # the last fragment was sent; its ack may never come


@dataclass(slots=True)
class _Outgoing:
    downlink_id: Hashable
    message: bytes
    index: int = 0  # the fragment sent last


@dataclass(slots=True)
class _Pending:
    """The last fragment of an uplink, until commit() or abandon()."""

    packet: Packet
    now: float


class Transfer:
    """The transfer state of one device, fed with its packets in order."""

    def __init__(
        self, max_fragment: int, repeat_reset_seconds: float = REPEAT_RESET_SECONDS
    ) -> None:
        if max_fragment < 1:
            raise ValueError("max_fragment must be positive")
        self._max_fragment = max_fragment
        self._repeat_reset = repeat_reset_seconds
        self._queue: dict[Hashable, bytes] = {}
        self._attempts: dict[Hashable, int] = {}
        self._phase = _Phase.IDLE
        self._expected: int | None = None
        self._parts: list[bytes] = []
        self._size = 0
        self._out: _Outgoing | None = None
        self._pending: _Pending | None = None
        self._last: Packet | None = None
        self._last_answer: Packet | None = None
        self._last_since = 0.0
        self._repeats = 0

    # -- downlink queue ------------------------------------------------------------

    def offer(self, downlink_id: Hashable, message: bytes, *, first: bool = False) -> None:
        """Queues a downlink (last, or `first`); an id already queued is ignored."""
        if not message or len(message) > MAX_REASSEMBLY:
            raise ValueError(f"a downlink has 1 to {MAX_REASSEMBLY} bytes")
        if downlink_id in self._queue:
            return
        if first:
            self._queue = {downlink_id: message, **self._queue}
        else:
            self._queue[downlink_id] = message

    def withdraw(self, downlink_id: Hashable) -> None:
        """Stops offering a downlink. One already on the wire is finished, and reported."""
        self._queue.pop(downlink_id, None)
        self._attempts.pop(downlink_id, None)

    @property
    def waiting(self) -> bool:
        return bool(self._queue)

    @property
    def queued_ids(self) -> tuple[Hashable, ...]:
        return tuple(self._queue)

    @property
    def awaiting_commit(self) -> bool:
        return self._pending is not None

    # -- moving to another process ---------------------------------------------------

    def state(self, now: float) -> TransferState:
        """The transfer as plain values (see `TransferState`); `now` as in `receive`."""
        if self._pending is not None:
            raise RuntimeError("state() while an uplink awaits commit() or abandon()")
        out, last, answer = self._out, self._last, self._last_answer
        age = now - self._last_since
        return TransferState(  # positional: keywords took half as long again
            self._phase,
            self._expected,
            tuple(self._parts) if self._parts else (),
            tuple(self._queue.items()) if self._queue else (),
            tuple(self._attempts.items()) if self._attempts else (),
            None if out is None else (out.downlink_id, out.message, out.index),
            None if last is None else last.encode(),
            None if answer is None else answer.encode(),
            age if age > 0.0 else 0.0,
            self._repeats,
        )

    @classmethod
    def from_state(
        cls,
        state: TransferState,
        max_fragment: int,
        now: float,
        repeat_reset_seconds: float = REPEAT_RESET_SECONDS,
    ) -> Transfer:
        """A transfer that continues `state`; raises ValueError for an inconsistent one."""
        transfer = cls(max_fragment, repeat_reset_seconds)
        phase = _Phase(state.phase)
        if (phase in (_Phase.DOWNLINK, _Phase.DOWNLINK_LAST)) != (state.out is not None):
            raise ValueError("a downlink phase needs the downlink, and only it")
        if phase is not _Phase.UPLINK and state.parts:
            raise ValueError("uplink fragments outside an uplink")
        if state.expected is not None and not 0 <= state.expected <= MAX_SEQ:
            raise ValueError("sequence number out of range")
        transfer._phase = phase
        transfer._expected = state.expected
        transfer._parts = list(state.parts)
        transfer._size = sum(len(part) for part in state.parts)
        transfer._queue = dict(state.queue)
        transfer._attempts = dict(state.attempts)
        if state.out is not None:
            transfer._out = _Outgoing(*state.out)
        transfer._last = None if state.last is None else Packet.decode(state.last)
        transfer._last_answer = (
            None if state.last_answer is None else Packet.decode(state.last_answer)
        )
        transfer._last_since = now - state.last_age
        transfer._repeats = state.repeats
        return transfer

    def confirms_unseen(self, packet: Packet) -> bool:
        """Whether `packet` would count a downlink as delivered without its ack, or
        drop an unfinished transfer (a restart at seq 0): what another process
        that served the device since would know better."""
        # Asked before every packet with several gateways: the comparison with
        # the last packet (a repeat confirms nothing) only when it matters.
        if self._phase is _Phase.DOWNLINK_LAST:
            unseen = not (_is_ack(packet) and packet.seq == self._expected)
        else:
            unseen = packet.seq == 0 and self._phase is not _Phase.IDLE
        return unseen and packet != self._last

    # -- device packets --------------------------------------------------------------

    def receive(self, packet: Packet, now: float) -> Step:
        """Handles one device packet received at `now` (seconds, any monotonic origin)."""
        if self._pending is not None:
            raise RuntimeError("receive() while an uplink awaits commit() or abandon()")
        if packet == self._last:
            return self._repeat(now)
        if packet.seq == self._expected:
            return self._in_sequence(packet, now)
        if packet.seq == 0:
            return self._restart(packet, now)
        return self._out_of_sequence(packet, now)

    def commit(self, now: float) -> Packet:
        """Acks the completed uplink (P if a downlink waits now); repeats get this ack.

        `now` is the time of the commit; the repeat window counts from the
        arrival of the fragment.
        """
        pending = self._pending
        if pending is None:
            raise RuntimeError("commit() without an uplink awaiting it")
        self._pending = None
        self._drop_uplink()
        answer = Packet(A | P if self._queue else A, next_seq(pending.packet.seq))
        self._remember(pending.packet, answer, pending.now)
        return answer

    def abandon(self) -> None:
        """Leaves the completed uplink unacked; its last fragment will count as new."""
        pending = self._pending
        if pending is None:
            raise RuntimeError("abandon() without an uplink awaiting it")
        self._pending = None
        self._expected = pending.packet.seq or None

    # -- sequence ----------------------------------------------------------------------

    def _in_sequence(self, packet: Packet, now: float) -> Step:
        phase = self._phase
        if phase is _Phase.IDLE:
            problem = _opening_problem(packet)
            return self._invalid(problem) if problem else self._open(packet, now, ())
        if phase is _Phase.UPLINK:
            return self._continue_uplink(packet, now)
        if phase is _Phase.DOWNLINK:
            return self._continue_downlink(packet, now)
        return self._finish_downlink(packet, now)

    def _restart(self, packet: Packet, now: float) -> Step:
        problem = _opening_problem(packet)
        if problem:
            return self._invalid(problem)
        return self._open(packet, now, self._discard())

    def _out_of_sequence(self, packet: Packet, now: float) -> Step:
        expected = self._expected
        if expected is None:
            return Step(RESET, Outcome.reset, "sequence not known, start over")
        if self._phase is _Phase.DOWNLINK_LAST and packet.seq == next_seq(expected):
            return self._after_lost_ack(packet, now)
        if 0 < (expected - packet.seq) % MAX_SEQ <= BEHIND_WINDOW:
            return Step(None, Outcome.stale, f"seq {packet.seq} behind {expected}")
        return Step(RESET, Outcome.reset, f"seq {packet.seq} ahead of {expected}")

    def _repeat(self, now: float) -> Step:
        if now - self._last_since > self._repeat_reset:
            self._last = None
            return Step(RESET, Outcome.reset, "repeated too long, start over")
        self._repeats += 1
        if self._repeats % 2:
            return Step(None, Outcome.duplicate, f"repeat {self._repeats}, not answered")
        return Step(self._last_answer, Outcome.duplicate, f"repeat {self._repeats}, answered")

    def _remember(self, packet: Packet, answer: Packet | None, now: float) -> None:
        """Makes `packet` the last accepted one, for the sequence and for repeats."""
        self._last = packet
        self._last_answer = answer
        self._last_since = now
        self._repeats = 0
        self._expected = next_seq(packet.seq, 1 if answer is None else 2)

    @staticmethod
    def _invalid(reason: str) -> Step:
        return Step(None, Outcome.invalid, reason)

    # -- opening an exchange ---------------------------------------------------------------

    def _open(self, packet: Packet, now: float, events: tuple[Event, ...]) -> Step:
        """Starts an exchange with a packet `_opening_problem` accepted."""
        if packet.flags == P:
            return self._poll(packet, now, events)
        if packet.flags == F:
            self._parts, self._size, self._phase = [packet.data], len(packet.data), _Phase.UPLINK
            return self._ack_fragment(packet, now, events)
        return self._complete(packet, now, events, packet.data)

    def _discard(self) -> tuple[Event, ...]:
        """Drops unfinished state for a restart at seq 0; a fully sent downlink is confirmed."""
        phase = self._phase
        if phase is _Phase.DOWNLINK_LAST:
            return (self._deliver(assumed=True),)
        self._out = None
        self._drop_uplink()
        return () if phase is _Phase.IDLE else (Restarted(),)

    # -- uplink ------------------------------------------------------------------------------

    def _continue_uplink(self, packet: Packet, now: float) -> Step:
        flags, data = packet.flags, packet.data
        if flags not in (0, L):
            return self._invalid(f"{flag_text(flags)} during an uplink")
        if not data:
            return self._invalid("fragment without data")
        size = self._size + len(data)
        if size > MAX_REASSEMBLY:
            self._drop_uplink()
            return self._invalid(f"message over {MAX_REASSEMBLY} bytes, dropped")
        if flags == L:
            message = b"".join(self._parts) + data
            return self._complete(packet, now, (), message)
        self._parts.append(data)
        self._size = size
        return self._ack_fragment(packet, now, ())

    def _ack_fragment(self, packet: Packet, now: float, events: tuple[Event, ...]) -> Step:
        answer = Packet(A, next_seq(packet.seq))
        self._remember(packet, answer, now)
        return Step(answer, Outcome.accepted, "", events)

    def _complete(
        self, packet: Packet, now: float, events: tuple[Event, ...], message: bytes
    ) -> Step:
        """Holds the last fragment back; the phase stays as it was, for abandon()."""
        self._pending = _Pending(packet, now)
        return Step(None, Outcome.accepted, "", (*events, MessageReceived(message)))

    def _drop_uplink(self) -> None:
        self._parts = []
        self._size = 0
        self._phase = _Phase.IDLE

    # -- downlink ----------------------------------------------------------------------------

    def _poll(self, packet: Packet, now: float, events: tuple[Event, ...]) -> Step:
        if not self._queue:
            answer = Packet(F | L, next_seq(packet.seq))
            self._remember(packet, answer, now)
            return Step(answer, Outcome.accepted, "nothing waits", events)
        downlink_id, message = next(iter(self._queue.items()))
        attempt = self._attempts.get(downlink_id, 0) + 1
        self._attempts[downlink_id] = attempt
        self._out = _Outgoing(downlink_id, message)
        return self._send_fragment(packet, now, (*events, DownlinkSent(downlink_id, attempt)))

    def _continue_downlink(self, packet: Packet, now: float) -> Step:
        if not _is_ack(packet):
            return self._invalid(f"{packet.flag_text} while a downlink is sent")
        assert self._out is not None
        self._out.index += 1
        return self._send_fragment(packet, now, ())

    def _send_fragment(self, packet: Packet, now: float, events: tuple[Event, ...]) -> Step:
        out = self._out
        assert out is not None
        start = out.index * self._max_fragment
        end = start + self._max_fragment
        flags = F if start == 0 else 0
        if end >= len(out.message):
            others = len(self._queue) - (out.downlink_id in self._queue)
            flags |= L | P if others else L
            self._phase = _Phase.DOWNLINK_LAST
        else:
            self._phase = _Phase.DOWNLINK
        answer = Packet(flags, next_seq(packet.seq), out.message[start:end])
        self._remember(packet, answer, now)
        return Step(answer, Outcome.accepted, "", events)

    def _finish_downlink(self, packet: Packet, now: float) -> Step:
        """The device's packet after the last fragment: its ack, or a new exchange."""
        if _is_ack(packet):
            delivered = (self._deliver(assumed=False),)
            if packet.flags & P:
                return self._poll(packet, now, delivered)
            self._remember(packet, None, now)
            return Step(None, Outcome.accepted, "", delivered)
        return self._after_lost_ack(packet, now)

    def _after_lost_ack(self, packet: Packet, now: float) -> Step:
        """The device continues the sequence without the ack: it has the downlink."""
        problem = _opening_problem(packet)
        if problem:
            return self._invalid(problem)
        return self._open(packet, now, (self._deliver(assumed=False),))

    def _deliver(self, *, assumed: bool) -> DownlinkDelivered:
        out = self._out
        assert out is not None
        self._out = None
        self._phase = _Phase.IDLE
        self._queue.pop(out.downlink_id, None)
        self._attempts.pop(out.downlink_id, None)
        return DownlinkDelivered(out.downlink_id, assumed)


def _opening_problem(packet: Packet) -> str:
    """Why `packet` cannot start an exchange ("" when it can): a poll or a first fragment."""
    flags = packet.flags
    if flags == P:
        return "poll with data" if packet.data else ""
    if flags in (F | L, F):
        return "" if packet.data else "fragment without data"
    return f"{flag_text(flags)} cannot start an exchange"


def _is_ack(packet: Packet) -> bool:
    return packet.flags & (F | L | A) == A and not packet.data
