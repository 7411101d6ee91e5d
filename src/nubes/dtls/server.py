"""`DtlsServer`: the DTLS 1.2 PSK server of the gateway, sans-IO.

Datagrams in, `Output` out (datagrams to send, decrypted records, events);
no sockets, no asyncio, no clock: the time is passed in. One state per
client address, of two kinds: a half-open handshake or an established
`Association`. The policies, in the order a datagram meets them:

- **Cookies first.** A ClientHello from an address without state is
  answered by the engine's HelloVerifyRequest and forgotten; only a
  ClientHello with a valid cookie (proof that the address is real) creates
  a handshake. A flood of spoofed ClientHellos costs CPU, never memory. A
  ClientHello the library rejects before that (malformed, no shared suite)
  gets its alert, no state and no event; `counters.rejected` counts them.
- **Bounded handshakes.** At most `max_handshakes` are half-open. When the
  table is full, ClientHellos from new addresses are dropped unanswered
  (`counters.busy`) and the clients retry with their own timers;
  handshakes in progress are never evicted for newcomers.
- **A ClientHello from an address with state.** The same ClientHello again
  (same client random) during the handshake means our flight was lost: it
  is sent again; after the handshake it is a late duplicate and dropped.
  Any other ClientHello starts over: it goes through the cookie exchange,
  and once its cookie is valid the old state of that address ends (a
  handshake with `superseded`, an association with `Closed(replaced)`), as
  RFC 6347 4.2.8 allows. Source ports get reused, and a device that sends
  a new ClientHello has lost its session anyway. (Mbed TLS cookies are
  bound to the address, not to the ClientHello, for 60 s: whoever can see
  a device's traffic and send from its address can end its association,
  as whoever can drop its packets can.)
- **Retransmission** (RFC 6347 4.2.4): our last handshake flight is sent
  again after `retransmit_initial` seconds, the wait doubling up to
  `retransmit_max`, until the client answers or `handshake_timeout` after
  the start, when the handshake fails with `timeout`. A repeated client
  flight is answered again (by us for the ClientHello, by the engine after).
- **One device, one association.** When a handshake establishes, an
  association of the same device at another address ends with
  `Closed(replaced)`.
- **Idle expiry.** An association without an authentic record from the
  device for `idle_timeout` seconds ends with `Closed(expired)`. Sending
  does not count as activity.
- **Bad input never raises.** Garbage, records for unknown addresses,
  replays and datagrams over `MAX_DATAGRAM` bytes are dropped
  (`counters.dropped`); engine failures become `HandshakeFailed` events.

Call `poll(now)` at `next_deadline()` for retransmissions, reaping and
expiry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from nubes.dtls import wire
from nubes.dtls.engine import Engine, HandshakeStep, Peer
from nubes.dtls.errors import HandshakeError, NoAssociation, PeerClosed, RecordTooLarge
from nubes.dtls.events import (
    Address,
    Association,
    Closed,
    Established,
    HandshakeFailed,
    HandshakeStarted,
    Output,
)
from nubes.dtls.keys import KeyLookup, serial_of
from nubes.dtls.mbedtls_engine import DEFAULT_SUITES, MbedtlsEngine
from nubes.dtls.records import MAX_PLAINTEXT
from nubes.dtls.timers import Timers

MAX_DATAGRAM: Final = MAX_PLAINTEXT + 2048


@dataclass(slots=True, eq=False)
class _Handshake:
    address: Address
    peer: Peer
    client_random: bytes
    deadline: float
    interval: float
    flight: list[bytes] = field(default_factory=list)
    next_send: float | None = None
    timer_at: float | None = None


@dataclass(slots=True, eq=False)
class _Live:
    association: Association
    peer: Peer
    client_random: bytes
    """Of the ClientHello that made it: a late duplicate of it is not a new handshake."""
    timer_at: float | None = None


@dataclass(slots=True)
class DtlsCounters:
    """Datagrams that produced no state and no event, for metrics."""

    hello_verify: int = 0
    """Cookie requests sent."""
    rejected: int = 0
    """ClientHellos the engine refused before any cookie was checked."""
    busy: int = 0
    """ClientHellos dropped because `max_handshakes` were in progress."""
    dropped: int = 0
    """Datagrams from addresses without state that are not ClientHellos, or too big."""


class DtlsServer:
    """DTLS 1.2 PSK server core; see the module docstring for its policies.

    `keys` builds the default engine (`MbedtlsEngine`, with `suites` and
    `hint`); an `engine` passed in brings its own keys and suites.
    """

    def __init__(
        self,
        keys: KeyLookup,
        *,
        engine: Engine | None = None,
        suites: Sequence[str] = DEFAULT_SUITES,
        hint: str = "hio-udp-server",
        handshake_timeout: float = 30.0,
        idle_timeout: float = 86_400.0,
        max_handshakes: int = 10_000,
        retransmit_initial: float = 1.0,
        retransmit_max: float = 60.0,
    ) -> None:
        self._engine = (
            engine if engine is not None else MbedtlsEngine(keys, suites=suites, hint=hint)
        )
        self._handshake_timeout = handshake_timeout
        self._idle_timeout = idle_timeout
        self._max_handshakes = max_handshakes
        self._retransmit_initial = retransmit_initial
        self._retransmit_max = retransmit_max
        self._handshakes: dict[Address, _Handshake] = {}
        self._live: dict[Address, _Live] = {}
        self._by_serial: dict[int, Address] = {}
        self._timers: Timers[_Handshake | _Live] = Timers()
        self.counters = DtlsCounters()

    # -- the public surface ---------------------------------------------------

    def receive(self, datagram: bytes, address: Address, now: float) -> Output:
        """Handle one datagram from `address`."""
        out = Output()
        if len(datagram) > MAX_DATAGRAM:
            self.counters.dropped += 1
            return out
        hello = wire.client_hello_random(datagram)
        handshake = self._handshakes.get(address)
        live = self._live.get(address)
        if handshake is not None and hello == handshake.client_random:
            self._resend(handshake, out)
        elif live is not None and hello == live.client_random:
            self.counters.dropped += 1
        elif hello is not None:
            self._hello(datagram, address, now, out)
        elif handshake is not None:
            self._continue(handshake, datagram, now, out)
        elif live is not None:
            self._read(live, datagram, now, out)
        else:
            self.counters.dropped += 1
        return out

    def send(self, address: Address, record: bytes, now: float) -> Output:
        """Encrypt one application record for the association at `address`."""
        live = self._live.get(address)
        if live is None:
            raise NoAssociation(address)
        if len(record) > MAX_PLAINTEXT:
            raise RecordTooLarge(len(record))
        out = Output()
        try:
            live.peer.write(record)
        except PeerClosed as closed:
            self._end(live, closed.reason, out)
            return out
        out.datagrams += [(datagram, address) for datagram in live.peer.outgoing()]
        return out

    def poll(self, now: float) -> Output:
        """Retransmit flights, reap half-open handshakes, expire idle associations."""
        out = Output()
        for item in self._timers.due(now):
            if isinstance(item, _Handshake):
                self._tick_handshake(item, now, out)
            else:
                self._tick_association(item, now, out)
        self._compact_timers()
        return out

    def next_deadline(self) -> float | None:
        """When `poll` next has work, or None when nothing is pending."""
        return self._timers.next()

    def association(self, address: Address) -> Association | None:
        live = self._live.get(address)
        return live.association if live is not None else None

    def close(self, address: Address, now: float) -> Output:
        """End whatever `address` has: an association gets a close_notify."""
        out = Output()
        handshake = self._handshakes.get(address)
        if handshake is not None:
            self._fail(handshake, out, "closed")
        live = self._live.get(address)
        if live is not None:
            live.peer.close()
            self._end(live, "closed", out)
        return out

    @property
    def handshake_count(self) -> int:
        return len(self._handshakes)

    @property
    def association_count(self) -> int:
        return len(self._live)

    # -- handshakes -------------------------------------------------------------

    def _hello(self, datagram: bytes, address: Address, now: float, out: Output) -> None:
        if address not in self._handshakes and len(self._handshakes) >= self._max_handshakes:
            self.counters.busy += 1
            return
        peer = self._engine.new_peer(repr(address).encode())
        peer.feed(datagram)
        try:
            step = peer.handshake()
        except HandshakeError:
            self.counters.rejected += 1
            step = None
        flight = peer.outgoing()
        out.datagrams += [(d, address) for d in flight]
        if step is HandshakeStep.HELLO_VERIFY:
            self.counters.hello_verify += 1
        elif step is HandshakeStep.CONTINUE and flight:
            self._start(peer, datagram, address, flight, now, out)

    def _start(
        self,
        peer: Peer,
        hello: bytes,
        address: Address,
        flight: list[bytes],
        now: float,
        out: Output,
    ) -> None:
        """A ClientHello with a valid cookie: the address is real, state begins."""
        self._end_state_of(address, out)
        handshake = _Handshake(
            address=address,
            peer=peer,
            client_random=wire.client_hello_random(hello) or b"",
            deadline=now + self._handshake_timeout,
            interval=self._retransmit_initial,
        )
        self._handshakes[address] = handshake
        out.events.append(HandshakeStarted(address))
        self._sent_flight(handshake, flight, now)

    def _end_state_of(self, address: Address, out: Output) -> None:
        handshake = self._handshakes.get(address)
        if handshake is not None:
            self._fail(handshake, out, "superseded")
        live = self._live.get(address)
        if live is not None:
            self._end(live, "replaced", out)

    def _continue(self, handshake: _Handshake, datagram: bytes, now: float, out: Output) -> None:
        peer = handshake.peer
        peer.feed(datagram)
        try:
            step = peer.handshake()
        except HandshakeError as err:
            self._fail(handshake, out, err.reason, err.detail)
            return
        flight = peer.outgoing()
        out.datagrams += [(d, handshake.address) for d in flight]
        if step is HandshakeStep.DONE:
            self._establish(handshake, now, out)
        elif step is HandshakeStep.HELLO_VERIFY:
            self._fail(handshake, out, "protocol", "unexpected cookie request")
        elif flight:
            self._sent_flight(handshake, flight, now)

    def _sent_flight(self, handshake: _Handshake, flight: list[bytes], now: float) -> None:
        handshake.flight = flight
        handshake.interval = self._retransmit_initial
        handshake.next_send = now + handshake.interval
        self._timers.schedule(handshake, min(handshake.next_send, handshake.deadline))

    def _resend(self, handshake: _Handshake, out: Output) -> None:
        out.datagrams += [(d, handshake.address) for d in handshake.flight]

    def _fail(self, handshake: _Handshake, out: Output, reason: str, detail: str = "") -> None:
        address = handshake.address
        if self._handshakes.get(address) is handshake:
            del self._handshakes[address]
        self._timers.cancel(handshake)
        out.datagrams += [(d, address) for d in handshake.peer.outgoing()]
        identity = handshake.peer.identity
        out.events.append(HandshakeFailed(address, reason, identity, detail))

    def _establish(self, handshake: _Handshake, now: float, out: Output) -> None:
        peer, address = handshake.peer, handshake.address
        identity, suite = peer.identity, peer.suite
        serial = serial_of(identity) if identity is not None else None
        if identity is None or serial is None or suite is None:
            self._fail(handshake, out, "protocol", "no identity after handshake")
            return
        del self._handshakes[address]
        self._timers.cancel(handshake)
        old_address = self._by_serial.get(serial)
        previous = self._live.get(old_address) if old_address is not None else None
        if previous is not None:
            self._end(previous, "replaced", out)
        association = Association(address, identity, serial, suite, peer.key_index or 0, now, now)
        live = _Live(association, peer, handshake.client_random)
        self._live[address] = live
        self._by_serial[serial] = address
        self._timers.schedule(live, now + self._idle_timeout)
        out.events.append(Established(association))
        self._read(live, b"", now, out)

    def _tick_handshake(self, handshake: _Handshake, now: float, out: Output) -> None:
        if self._handshakes.get(handshake.address) is not handshake:
            return
        if now >= handshake.deadline:
            self._fail(handshake, out, "timeout")
            return
        if handshake.next_send is not None and now >= handshake.next_send:
            self._resend(handshake, out)
            handshake.interval = min(handshake.interval * 2, self._retransmit_max)
            handshake.next_send = now + handshake.interval
        next_send = handshake.next_send if handshake.next_send is not None else handshake.deadline
        self._timers.schedule(handshake, min(next_send, handshake.deadline))

    # -- associations -------------------------------------------------------

    def _read(self, live: _Live, datagram: bytes, now: float, out: Output) -> None:
        peer = live.peer
        if datagram:
            peer.feed(datagram)
        try:
            records = peer.read()
        except PeerClosed as closed:
            self._deliver(live, closed.records, now, out)
            self._end(live, closed.reason, out)
            return
        self._deliver(live, records, now, out)
        out.datagrams += [(d, live.association.address) for d in peer.outgoing()]

    def _deliver(self, live: _Live, records: list[bytes], now: float, out: Output) -> None:
        if records:
            live.association.last_activity = now
            out.records += [(live.association, record) for record in records]

    def _tick_association(self, live: _Live, now: float, out: Output) -> None:
        if self._live.get(live.association.address) is not live:
            return
        expiry = live.association.last_activity + self._idle_timeout
        if now >= expiry:
            self._end(live, "expired", out)
        else:
            self._timers.schedule(live, expiry)

    def _end(self, live: _Live, reason: str, out: Output) -> None:
        association = live.association
        address = association.address
        if self._live.get(address) is live:
            del self._live[address]
        if self._by_serial.get(association.serial) == address:
            del self._by_serial[association.serial]
        self._timers.cancel(live)
        out.datagrams += [(d, address) for d in live.peer.outgoing()]
        out.events.append(Closed(association, reason))
        self._compact_timers()

    def _compact_timers(self) -> None:
        if len(self._timers) > 2 * (len(self._handshakes) + len(self._live)) + 1024:
            self._timers.compact()
