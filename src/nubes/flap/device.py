"""A device-side FLAP model that behaves like CHESTER firmware, for the simulator and tests.

It follows `ctr_cloud_transfer.c` of the CHESTER SDK: the device starts at
seq 0 after boot and after any error; it accepts an answer only with its own
seq + 1; an answer with seq 0 (a reset) or any other unexpected seq makes it
start the current message over at 0; an uplink ack with F or L, or a downlink
fragment with A, is an error; the ack of a downlink's last fragment is sent
without waiting for an answer. Two options go beyond that firmware, both
described in the public documentation: `retries` repeats the identical packet
after a timeout (the cloud answers every second repeat; the firmware itself
gives up at once, `retries=0`), and `ack_with_poll` acks a last fragment that
carries P with `[xxAP]` to get the next downlink at once (scenario G), where
the firmware acks with `[xxAx]` and polls again.

How to drive it (sans-IO; the caller owns the socket and the 5 s timer):

    device = DeviceTransfer(max_fragment=360)
    packet = device.send(message)        # or device.poll()
    while True:
        transmit(packet)
        step = device.on_answer(receive_answer_or_none())
        handle(step.events)              # UplinkAcked, DownlinkReceived, ...
        if step.send is None:
            break
        packet = step.send
        if not step.expect_answer:       # the final ack: send it, expect nothing
            transmit(packet)
            break

`device.busy` tells whether an answer is awaited; `send`/`poll` refuse to
start while it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from nubes.flap.packet import A, F, L, P, Packet, next_seq
from nubes.flap.transfer import MAX_REASSEMBLY


@dataclass(frozen=True, slots=True)
class UplinkAcked:
    """The cloud acked the whole message; `downlink_waiting` is the P of the last ack."""

    downlink_waiting: bool


@dataclass(frozen=True, slots=True)
class DownlinkReceived:
    """A whole downlink message arrived; `downlink_waiting`: its last fragment had P."""

    message: bytes
    downlink_waiting: bool


@dataclass(frozen=True, slots=True)
class NothingWaiting:
    """A poll was answered with an empty `[FLxx]`."""


@dataclass(frozen=True, slots=True)
class SequenceReset:
    """A reset or unexpected answer: the current message starts over at seq 0."""

    reason: str


@dataclass(frozen=True, slots=True)
class GaveUp:
    """The exchange failed; the next one starts at seq 0."""

    reason: str


DeviceEvent = UplinkAcked | DownlinkReceived | NothingWaiting | SequenceReset | GaveUp


@dataclass(frozen=True, slots=True)
class DeviceStep:
    """What to transmit next (None: nothing) and whether to wait for its answer."""

    send: Packet | None
    expect_answer: bool
    events: tuple[DeviceEvent, ...] = ()


class DeviceTransfer:
    """One device's end of FLAP: one exchange (an uplink or a poll) at a time."""

    def __init__(
        self,
        max_fragment: int = 494,
        *,
        retries: int = 0,
        max_restarts: int = 3,
        ack_with_poll: bool = False,
    ) -> None:
        if max_fragment < 1:
            raise ValueError("max_fragment must be positive")
        self._max_fragment = max_fragment
        self._retries = retries
        self._max_restarts = max_restarts
        self._ack_with_poll = ack_with_poll
        self._seq = 0
        self._last_recv = 0
        self._current: Packet | None = None
        self._uplink: bytes | None = None  # None while polling
        self._offset = 0
        self._tries = 0
        self._restarts = 0
        self._received = bytearray()
        self._parts = 0

    @property
    def busy(self) -> bool:
        return self._current is not None

    @property
    def seq(self) -> int:
        """The sequence number of the next packet."""
        return self._seq

    def reboot(self) -> None:
        """Forgets everything, as a power cycle does: the next packet has seq 0."""
        self._seq = self._last_recv = 0
        self._current = self._uplink = None

    def send(self, message: bytes) -> Packet:
        """Starts the uplink of `message`; returns its first fragment."""
        if not message or len(message) > MAX_REASSEMBLY:
            raise ValueError(f"a message has 1 to {MAX_REASSEMBLY} bytes")
        self._begin()
        self._uplink = message
        return self._transmit(self._fragment())

    def poll(self) -> Packet:
        """Starts a poll for downlinks; returns the `[xxxP]` packet."""
        self._begin()
        self._uplink = None
        return self._transmit(Packet(P, self._seq))

    def on_answer(self, answer: Packet | None) -> DeviceStep:
        """Handles the cloud's answer to the last packet, or its absence (None)."""
        sent = self._current
        if sent is None:
            raise RuntimeError("no packet awaits an answer")
        if answer is None:
            return self._no_answer("no answer")
        if self._uplink is not None:
            return self._uplink_answer(answer, sent, self._uplink)
        return self._downlink_answer(answer)

    # -- uplink -----------------------------------------------------------------------

    def _fragment(self) -> Packet:
        assert self._uplink is not None
        data = self._uplink[self._offset : self._offset + self._max_fragment]
        flags = F if self._offset == 0 else 0
        if self._offset + len(data) >= len(self._uplink):
            flags |= L
        return Packet(flags, self._seq, data)

    def _uplink_answer(self, answer: Packet, sent: Packet, message: bytes) -> DeviceStep:
        if answer.flags & (F | L):
            return self._give_up("unexpected flags in an uplink ack")
        mismatch = self._check_sequence(answer)
        if mismatch is not None:
            return mismatch
        if answer.data:
            return self._restart("uplink ack with data")
        self._accept(answer)
        self._offset += len(sent.data)
        if self._offset < len(message):
            return DeviceStep(self._transmit(self._fragment()), True)
        self._current = self._uplink = None
        return DeviceStep(None, False, (UplinkAcked(bool(answer.flags & P)),))

    # -- downlink ----------------------------------------------------------------------

    def _downlink_answer(self, answer: Packet) -> DeviceStep:
        mismatch = self._check_sequence(answer)
        if mismatch is not None:
            return mismatch
        self._accept(answer)
        if answer.flags & A:
            return self._give_up("downlink fragment with A")
        if answer.flags & F:
            self._received.clear()
        elif self._parts == 0:
            return self._give_up("downlink starts without F")
        self._received += answer.data
        if len(self._received) > MAX_REASSEMBLY:
            return self._give_up("downlink too long")
        if not answer.flags & L:
            self._parts += 1
            return DeviceStep(self._transmit(Packet(A, self._seq)), True)
        if not answer.data and self._parts == 0:
            self._current = None
            return DeviceStep(None, False, (NothingWaiting(),))
        return self._last_fragment(bool(answer.flags & P))

    def _last_fragment(self, more: bool) -> DeviceStep:
        received = DownlinkReceived(bytes(self._received), more)
        self._received.clear()
        self._parts = 0
        if more and self._ack_with_poll:
            return DeviceStep(self._transmit(Packet(A | P, self._seq)), True, (received,))
        ack = Packet(A, self._seq)
        self._seq = next_seq(ack.seq)
        self._current = None
        return DeviceStep(ack, False, (received,))

    # -- shared --------------------------------------------------------------------------

    def _begin(self) -> None:
        if self._current is not None:
            raise RuntimeError("an exchange is under way")
        self._offset = self._restarts = self._parts = 0
        self._received.clear()

    def _transmit(self, packet: Packet) -> Packet:
        self._current = packet
        self._seq = next_seq(packet.seq)
        self._tries = 0
        return packet

    def _accept(self, answer: Packet) -> None:
        self._last_recv = answer.seq
        self._seq = next_seq(answer.seq)

    def _check_sequence(self, answer: Packet) -> DeviceStep | None:
        """None when `answer` carries the expected seq; otherwise what to do instead."""
        if answer.seq == self._seq:
            return None
        if answer.seq == 0:
            return self._restart("reset by the cloud")
        if answer.seq == self._last_recv:
            return self._no_answer("repeated answer")
        return self._restart(f"answer seq {answer.seq}, expected {self._seq}")

    def _no_answer(self, reason: str) -> DeviceStep:
        if self._tries < self._retries:
            self._tries += 1
            return DeviceStep(self._current, True)
        return self._give_up(reason)

    def _restart(self, reason: str) -> DeviceStep:
        self._restarts += 1
        if self._restarts > self._max_restarts:
            return self._give_up(f"{reason}, too many restarts")
        self._seq = self._offset = self._parts = 0
        self._received.clear()
        first = self._fragment() if self._uplink is not None else Packet(P, 0)
        return DeviceStep(self._transmit(first), True, (SequenceReset(reason),))

    def _give_up(self, reason: str) -> DeviceStep:
        self._seq = self._last_recv = 0
        self._current = self._uplink = None
        return DeviceStep(None, False, (GaveUp(reason),))
