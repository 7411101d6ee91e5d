"""The simulator's DTLS envelope: one UDP socket and one DTLS 1.2 PSK client per device.

The server keeps an association per source address, so unlike the MAC
envelope's shared socket every device here has a socket of its own. What a
link does:

- **The client.** python-mbedtls over memory buffers, PSK identity
  `hsn:<serial>`, DTLS 1.2 only and the suite pinned to
  TLS-PSK-WITH-AES-128-CCM-8, as CHESTER does (left alone, two Mbed TLS ends
  settle on a costly ECDHE suite). The cookie exchange is the library's.
- **The handshake**, driven with asyncio. A lost flight is sent again by
  the library, which re-encrypts it under fresh record numbers (a resend of
  the same bytes would fall into the server's replay window). Its timer
  runs on the wall clock, 1 s doubling; each wait for the server is bounded
  by it, after which the library is asked again and resends. The whole
  handshake has `handshake_timeout` seconds.
- **Records.** Each FLAP packet is written as one record; each record read
  is one FLAP packet for the device's inbox.
- **A new handshake when the association may be gone.** The server may
  have restarted, expired or replaced it without the device knowing: its
  records then vanish. After a packet without an answer, an alert from the
  server (close_notify or fatal) or a failed handshake, the next packet
  first goes through a new handshake, from the same socket, which also ends
  whatever the server still kept for that address.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final, cast

from mbedtls.exceptions import TLSError
from mbedtls.tls import (
    ClientContext,
    DTLSConfiguration,
    DTLSVersion,
    TLSWrappedBuffer,
    WantReadError,
    WantWriteError,
)

from nubes import flap
from nubes.dtls import identity_of
from nubes.sim.types import Profile, Stats

log = logging.getLogger(__name__)

SUITE: Final = "TLS-PSK-WITH-AES-128-CCM-8"
RETRANSMIT_INITIAL: Final = 1.0  # seconds, doubling: the library's own timer
RETRANSMIT_MAX: Final = 60.0
TIMER_SLACK: Final = 0.02  # wake after the library's timer, never just before it
READ_SIZE: Final = 16_384
MAX_STEPS: Final = 32

_OVER: Final = "HANDSHAKE_OVER"  # the binding's HandshakeStep, by name (its stubs mistype it)


def client_configuration(
    identity: str, psk: bytes, retransmit: float = RETRANSMIT_INITIAL
) -> DTLSConfiguration:
    """DTLS 1.2, one PSK, the CCM_8 suite: what the device offers."""
    return DTLSConfiguration(
        pre_shared_key=(identity, psk),
        ciphers=(SUITE,),
        validate_certificates=False,
        lowest_supported_version=DTLSVersion.DTLSv1_2,
        highest_supported_version=DTLSVersion.DTLSv1_2,
        handshake_timeout_min=retransmit,
        handshake_timeout_max=RETRANSMIT_MAX,
    )


class DtlsNetwork:
    """Gives each device a `DtlsLink` to `host:port`, with the PSK of its profile."""

    def __init__(self, host: str, port: int, *, handshake_timeout: float = 15.0) -> None:
        self.remote = (host, port)
        self.handshake_timeout = handshake_timeout

    def attach(self, profile: Profile, stats: Stats) -> DtlsLink:
        if profile.psk is None:
            raise ValueError(f"device {profile.serial} has no PSK for DTLS")
        identity = identity_of(profile.serial)
        return DtlsLink(self.remote, identity, profile.psk, stats, self.handshake_timeout)


class DtlsLink(asyncio.DatagramProtocol):
    """One device's DTLS association: its socket, handshakes and records."""

    fragment_limit = flap.FRAGMENT_LIMIT["dtls"]

    def __init__(
        self,
        remote: tuple[str, int],
        identity: str,
        psk: bytes,
        stats: Stats,
        handshake_timeout: float = 15.0,
        *,
        retransmit: float = RETRANSMIT_INITIAL,
    ) -> None:
        self.remote = remote
        self.identity = identity
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue(16)
        self._configuration = client_configuration(identity, psk, retransmit)
        self._retransmit = retransmit
        self._stats = stats
        self._handshake_timeout = handshake_timeout
        self._transport: asyncio.DatagramTransport | None = None
        self._tls: TLSWrappedBuffer | None = None
        self._established = False
        self._flights: asyncio.Queue[bytes] | None = None  # datagrams while handshaking

    # -- the Link interface ----------------------------------------------------------------

    @property
    def established(self) -> bool:
        return self._established

    async def ready(self) -> bool:
        if self._established:
            return True
        if self._transport is None:
            loop = asyncio.get_running_loop()
            await loop.create_datagram_endpoint(lambda: self, remote_addr=self.remote)
        return await self.handshake()

    def send(self, packet: bytes) -> None:
        if not self._established or self._tls is None:
            return  # a final ack after the association was given up: lost, like on air
        try:
            self._tls.write(packet)
        except TLSError as err:
            self._lost(f"cannot write: {err}")
            return
        self._flush()

    def unanswered(self) -> None:
        if self._established:
            log.debug("%s: no answer, a new handshake comes first next time", self.identity)
            self._established = False

    async def close(self) -> None:
        if self._established and self._tls is not None:
            try:
                self._tls.shutdown()  # close_notify: the server frees the association now
                self._flush()
            except TLSError:
                pass
        self._established = False
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    # -- the handshake ----------------------------------------------------------------------

    async def handshake(self) -> bool:
        """A new handshake from this socket; whether it established."""
        self._established = False
        tls = self._tls = ClientContext(self._configuration).wrap_buffers(None)
        self._flights = asyncio.Queue(16)
        started = time.perf_counter()
        try:
            await asyncio.wait_for(self._exchange_flights(), self._handshake_timeout)
        except TimeoutError:
            return self._failed(f"no answer within {self._handshake_timeout:g} s")
        except TLSError as err:
            return self._failed(str(err))
        finally:
            self._flights = None
        self._stats.handshakes += 1
        self._stats.handshake_latencies.append(time.perf_counter() - started)
        log.info("%s: DTLS established (%s)", self.identity, tls.cipher())
        return True

    async def _exchange_flights(self) -> None:
        assert self._flights is not None
        wait = pause = self._retransmit
        self._step()
        while not self._established:
            try:
                datagram = await asyncio.wait_for(self._flights.get(), pause + TIMER_SLACK)
            except TimeoutError:
                if self._step():  # the library's timer ran out: it sent its flight again
                    wait = min(2 * wait, RETRANSMIT_MAX)
                    pause = wait
                else:
                    pause = TIMER_SLACK
                continue
            assert self._tls is not None
            self._tls.receive_from_network(datagram)
            if self._step():
                wait = pause = self._retransmit  # a new flight, a new timer

    def _step(self) -> bool:
        """Lets the library go as far as it can; whether it sent something."""
        tls = self._tls
        assert tls is not None
        for _ in range(MAX_STEPS):
            if tls._handshake_state.name == _OVER:
                self._established = True
                break
            try:
                tls.do_handshake()
            except WantReadError:
                break
            except WantWriteError:
                continue
        return self._flush()

    def _failed(self, reason: str) -> bool:
        self._stats.handshake_failures += 1
        self._tls = None
        log.warning("%s: DTLS handshake failed: %s", self.identity, reason)
        return False

    # -- datagrams ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDP transport does not subclass asyncio.DatagramTransport.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._established = False

    def error_received(self, exc: Exception) -> None:
        log.debug("%s: UDP error: %s", self.identity, exc)

    def datagram_received(self, data: bytes, addr: object) -> None:
        if self._established:
            self._read(data)
        elif self._flights is not None and not self._flights.full():
            self._flights.put_nowait(data)

    def _read(self, datagram: bytes) -> None:
        tls = self._tls
        assert tls is not None
        tls.receive_from_network(datagram)
        try:
            while record := tls.read(READ_SIZE):  # b"": nothing more in this datagram
                if not self.inbox.full():
                    self.inbox.put_nowait(record)
        except WantReadError:
            pass
        except TLSError as err:  # close_notify or a fatal alert: the association is over
            self._lost(str(err))
        self._flush()

    def _lost(self, reason: str) -> None:
        log.info("%s: DTLS association ended: %s", self.identity, reason)
        self._established = False

    def _flush(self) -> bool:
        tls = self._tls
        if tls is None or self._transport is None:
            return False
        data = tls.peek_outgoing(1 << 16)
        if not data:
            return False
        tls.consume_outgoing(len(data))
        self._transport.sendto(data)
        return True
