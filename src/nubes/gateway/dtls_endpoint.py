"""UDP endpoint of the DTLS envelope (port 5005): `dtls.DtlsServer` on a socket.

The DTLS protocol itself is sans-IO (`nubes.dtls`); this module gives it a
socket, a clock and a timer, and joins it to the gateway:

- every datagram goes to `DtlsServer.receive`; what it returns is sent as
  one datagram each, its decrypted records (one FLAP packet each) go to
  `Gateway.on_dtls_packet` with a `DtlsChannel` that encrypts the answers,
  and its events go to the communication log (`Gateway.on_dtls_event`);
- one timer, always set to the server's next deadline, drives handshake
  retransmission, the reaping of half-open handshakes and idle expiry;
- the PSKs come synchronously from the device directory (newest first, the
  replaced one during its grace), kept fresh from the database every second.

The socket's receive buffer is raised as for the MAC ports: hundreds of
devices starting handshakes at once otherwise lose a third of them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import cast

from nubes.dtls import (
    Address,
    DtlsError,
    DtlsEvent,
    DtlsServer,
    Established,
    HandshakeFailed,
    HandshakeStarted,
    Output,
)
from nubes.errors import ConfigError
from nubes.gateway.endpoint import RECEIVE_BUFFER
from nubes.gateway.service import Gateway

log = logging.getLogger(__name__)


class DtlsEndpoint(asyncio.DatagramProtocol):
    """The DTLS port: datagrams to the server, records to the gateway."""

    def __init__(self, gateway: Gateway, server: DtlsServer) -> None:
        self._gateway = gateway
        self.server = server
        self._transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._started: dict[Address, float] = {}  # handshakes under way: since when

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport does not subclass asyncio.DatagramTransport.
        self._transport = cast(asyncio.DatagramTransport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            except OSError as err:
                log.warning("cannot raise the UDP receive buffer: %s", err)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._gateway.counters["dtls:datagrams_in"] += 1
        try:
            out = self.server.receive(data, (addr[0], addr[1]), time.monotonic())
            self._apply(out, len(data))
        except Exception:
            log.exception("unexpected error handling a DTLS datagram from %s", addr[0])

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def send(self, address: Address, packet: bytes) -> int:
        """Encrypts one FLAP packet for the association at `address`; the bytes sent."""
        try:
            out = self.server.send(address, packet, time.monotonic())
        except DtlsError as err:  # the association ended meanwhile
            self._gateway.counters[f"dtls:not sent ({type(err).__name__})"] += 1
            return 0
        return self._send_all(out)

    def close(self, address: Address) -> None:
        """Ends the association at `address` (e.g. its device was disabled)."""
        self._apply(self.server.close(address, time.monotonic()), 0)

    def _apply(self, out: Output, size_in: int) -> None:
        self._send_all(out)
        for event in out.events:
            self._tell(event)
        for association, record in out.records:
            channel = DtlsChannel(self, association.address, size_in)
            self._gateway.on_dtls_packet(association.serial, record, channel)
        self._schedule()

    def _send_all(self, out: Output) -> int:
        assert self._transport is not None
        size = 0
        for datagram, address in out.datagrams:
            self._transport.sendto(datagram, address)
            size += len(datagram)
        return size

    def _tell(self, event: DtlsEvent) -> None:
        if isinstance(event, HandshakeStarted):
            self._started[event.address] = time.time()
            return
        if isinstance(event, Established):
            started = self._started.pop(event.association.address, None)
        elif isinstance(event, HandshakeFailed):
            started = self._started.pop(event.address, None)
        else:
            started = None
        self._gateway.on_dtls_event(event, started)

    def _schedule(self) -> None:
        """Keeps one timer at the server's next deadline."""
        deadline = self.server.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            delay = max(0.0, deadline - time.monotonic())
            self._timer = asyncio.get_running_loop().call_later(delay, self._tick)

    def _tick(self) -> None:
        self._timer, self._timer_at = None, None
        try:
            self._apply(self.server.poll(time.monotonic()), 0)
        except Exception:
            log.exception("DTLS timer failed")
            self._schedule()


class DtlsChannel:
    """Answers a device over its DTLS association: one FLAP packet per record."""

    __slots__ = ("_endpoint", "remote", "size_in")
    envelope = "dtls"

    def __init__(self, endpoint: DtlsEndpoint, remote: Address, size_in: int) -> None:
        self._endpoint = endpoint
        self.remote: tuple[str, int] = (str(remote[0]), int(remote[1]))
        self.size_in = size_in

    def send(self, packet: bytes) -> int:
        return self._endpoint.send(self.remote, packet)

    def close(self) -> None:
        self._endpoint.close(self.remote)


async def open_dtls_endpoint(
    gateway: Gateway, server: DtlsServer, host: str, port: int
) -> tuple[asyncio.DatagramTransport, DtlsEndpoint]:
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: DtlsEndpoint(gateway, server), local_addr=(host, port)
        )
    except OSError as err:
        raise ConfigError(
            f"cannot listen on {host}:{port}/udp ({err.strerror or err}); is another server "
            "running? Stop it, or choose another port with NUBES_DTLS_PORT"
        ) from err
    return transport, protocol
