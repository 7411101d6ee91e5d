"""The `Engine` on python-mbedtls (Mbed TLS 2.28): handshakes by the library.

One `ServerContext` serves every peer; each peer is a `wrap_buffers()`
object whose cookie is bound to the client address (`setcookieparam`).
What this module adds to the library, and why:

- **Pinned suites, DTLS 1.2 only.** Left alone, two Mbed TLS ends agree on
  ECDHE-PSK-CHACHA20 (15-17 ms of CPU); plain PSK CCM_8 costs ~0.3 ms.
- **The key store is ours.** Mbed TLS asks a `Mapping` for the key, once,
  while it parses the ClientKeyExchange. `_KeyStore` answers for the peer
  being driven, and so learns the identity (the binding does not report
  it). When the device has two valid keys, the client's flight is held
  until its Finished record is in hand and the key that opens it is
  chosen, before the library sees the flight (`keychoice`). Only when that
  cannot be decided (a flight spread over more than `MAX_HELD` datagrams)
  does `KeyPreference` choose, and a `bad_key` failure makes the next
  handshake of that device use the other key.
- **No library timers.** The binding wires Mbed TLS's wall-clock timer,
  which would retransmit (and give up) on its own schedule inside any call.
  Its timeouts are set out of reach; `DtlsServer` retransmits from the
  time it is given. A repeated client flight is still answered by the
  library itself (RFC 6347 4.2.4).
- **Record layer hand-off.** When the handshake is over, the traffic keys
  are derived from the transcript, checked against both Finished records,
  and the Mbed TLS context (45-100 KB) is replaced by a `RecordLayer`
  (~2 KB). If the check cannot be made, the context stays and serves the
  records itself; `python_records=False` keeps it always.
- **No identity hint on the wire.** Mbed TLS 2.28 skips ServerKeyExchange
  for plain PSK suites, so `hint` is accepted but cannot be sent.
- **No Connection ID.** This build has MBEDTLS_SSL_DTLS_CONNECTION_ID off,
  and Mbed TLS 2.28 only knows the pre-RFC 9146 draft (extension 254).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Final

from mbedtls.exceptions import TLSError
from mbedtls.tls import (
    DTLSConfiguration,
    DTLSVersion,
    HelloVerifyRequest,
    RaggedEOF,
    ServerContext,
    TLSWrappedBuffer,
    WantReadError,
    WantWriteError,
)

from nubes.dtls import wire
from nubes.dtls.crypto import SUITES
from nubes.dtls.engine import HandshakeStep
from nubes.dtls.errors import HandshakeError, PeerClosed
from nubes.dtls.keychoice import KeyChoice
from nubes.dtls.keys import KeyLookup, KeyPreference
from nubes.dtls.records import RecordLayer
from nubes.dtls.transcript import Transcript
from nubes.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_SUITES: Final = ("TLS-PSK-WITH-AES-128-CCM-8",)
OUT_OF_REACH: Final = 1_000_000.0  # seconds: Mbed TLS's own retransmission timer
MAX_HELD: Final = 4
MAX_INBOX: Final = 8
MAX_STEPS: Final = 32
MAX_DATAGRAM: Final = 1400
READ_SIZE: Final = 16_384

_OVER: Final = "HANDSHAKE_OVER"  # the binding's HandshakeStep, by name (its stubs mistype it)

# Mbed TLS 2.28 error codes (include/mbedtls/ssl.h), as positive numbers.
_UNKNOWN_IDENTITY: Final = 0x6C80
_INVALID_MAC: Final = 0x7180
_BAD_FINISHED: Final = 0x7E80
_PEER_CLOSE_NOTIFY: Final = 0x7880
_FATAL_ALERT: Final = 0x7780


class _KeyStore(Mapping[str, bytes]):
    """The PSK store Mbed TLS reads; it answers for the peer being driven."""

    def __init__(self) -> None:
        self.active: MbedtlsPeer | None = None

    def __getitem__(self, identity: str) -> bytes:
        if self.active is None:
            raise KeyError(identity)
        return self.active.psk_for(identity)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


class MbedtlsEngine:
    """Peers on one python-mbedtls `ServerContext`."""

    def __init__(
        self,
        keys: KeyLookup,
        *,
        suites: Sequence[str] = DEFAULT_SUITES,
        hint: str = "hio-udp-server",
        python_records: bool = True,
    ) -> None:
        unknown = [suite for suite in suites if suite not in SUITES]
        if not suites or unknown:
            raise ConfigError(f"DTLS suites must be among {sorted(SUITES)}, got {list(suites)}")
        self.keys = keys
        self.hint = hint
        self.python_records = python_records
        self.preference = KeyPreference()
        self.store = _KeyStore()
        self._context = ServerContext(
            DTLSConfiguration(
                validate_certificates=False,
                ciphers=tuple(suites),
                lowest_supported_version=DTLSVersion.DTLSv1_2,
                highest_supported_version=DTLSVersion.DTLSv1_2,
                handshake_timeout_min=OUT_OF_REACH,
                handshake_timeout_max=OUT_OF_REACH,
                pre_shared_key_store=self.store,
            )
        )

    def new_peer(self, address: bytes) -> MbedtlsPeer:
        buffer = self._context.wrap_buffers()
        buffer.setcookieparam(address)
        return MbedtlsPeer(self, buffer)


class MbedtlsPeer:
    """One client: Mbed TLS for the handshake, then usually our `RecordLayer`."""

    __slots__ = (
        "_engine",
        "_final_flight",
        "_held",
        "_inbox",
        "_keys",
        "_out",
        "_records",
        "_tls",
        "_transcript",
        "identity",
        "key_index",
        "suite",
    )

    def __init__(self, engine: MbedtlsEngine, tls: TLSWrappedBuffer) -> None:
        self._engine = engine
        self._tls: TLSWrappedBuffer | None = tls
        self._records: RecordLayer | None = None
        self._transcript: Transcript | None = Transcript()
        self._inbox: list[bytes] = []
        self._held: list[bytes] = []
        self._out: list[bytes] = []
        self._final_flight: list[bytes] = []
        self._keys: KeyChoice | None = KeyChoice(engine.keys, engine.preference)
        self.identity: str | None = None
        self.suite: str | None = None
        self.key_index: int | None = None

    # -- the Peer interface ------------------------------------------------

    def feed(self, datagram: bytes) -> None:
        if len(self._inbox) < MAX_INBOX:
            self._inbox.append(datagram)

    def handshake(self) -> HandshakeStep:
        step = HandshakeStep.CONTINUE
        while self._inbox and step is HandshakeStep.CONTINUE:
            released = self._admit(self._inbox.pop(0))
            for position, datagram in enumerate(released):
                step = self._drive_with(datagram)
                if step is not HandshakeStep.CONTINUE:
                    self._inbox[:0] = released[position + 1 :]  # records, for read()
                    break
        return step

    def read(self) -> list[bytes]:
        received: list[bytes] = []
        while self._inbox:
            datagram = self._inbox.pop(0)
            if self._records is not None:
                received += self._read_records(self._records, datagram, received)
            elif self._tls is not None:
                received += self._read_library(self._tls, datagram, received)
        return received

    def write(self, record: bytes) -> None:
        if self._records is not None:
            self._out.append(self._records.seal(wire.APPLICATION_DATA, record))
        elif self._tls is not None:
            try:
                self._tls.write(record)
            except TLSError as err:
                raise PeerClosed("protocol") from err
            self._flush(self._tls)

    def close(self) -> None:
        if self._records is not None:
            alert = bytes([wire.ALERT_WARNING, wire.CLOSE_NOTIFY])
            self._out.append(self._records.seal(wire.ALERT, alert))
        elif self._tls is not None:
            self._tls.shutdown()
            self._flush(self._tls)
        self._records = None
        self._tls = None

    def outgoing(self) -> list[bytes]:
        out, self._out = self._out, []
        return out

    def psk_for(self, identity: str) -> bytes:
        """The key store's question, while this peer is driven (KeyError: unknown)."""
        self.identity = identity
        if self._keys is None:
            raise KeyError(identity)
        psk = self._keys.psk_for(identity)
        self.key_index = self._keys.index
        return psk

    # -- handshake ------------------------------------------------------------

    def _admit(self, datagram: bytes) -> list[bytes]:
        """The datagrams the library may see now; holds a flight whose key is unsure."""
        if self._transcript is None or self._keys is None:
            return [datagram]
        self._transcript.observe_client(wire.parse_records(datagram))
        self._held.append(datagram)
        if self._keys.must_hold(self._transcript):
            if len(self._held) <= MAX_HELD:
                return []
            self._keys.stop_waiting()
        released, self._held = self._held, []
        return released

    def _drive_with(self, datagram: bytes) -> HandshakeStep:
        tls = self._tls
        if tls is None:
            return HandshakeStep.CONTINUE
        tls.receive_from_network(datagram)
        self._engine.store.active = self
        try:
            step = self._drive(tls)
        finally:
            self._engine.store.active = None
            flight = self._flush(tls)
        if step is HandshakeStep.DONE:
            self._establish(tls, flight)
        return step

    def _drive(self, tls: TLSWrappedBuffer) -> HandshakeStep:
        for _ in range(MAX_STEPS):
            if tls._handshake_state.name == _OVER:
                return HandshakeStep.DONE
            try:
                tls.do_handshake()
            except WantReadError:
                return HandshakeStep.CONTINUE
            except WantWriteError:
                continue
            except HelloVerifyRequest:
                return HandshakeStep.HELLO_VERIFY
            except TLSError as err:
                raise self._failure(err) from err
        raise HandshakeError("protocol", "the handshake made no progress")

    def _failure(self, err: TLSError) -> HandshakeError:
        code, keys = _code(err), self._keys
        if code == _UNKNOWN_IDENTITY or (keys is not None and keys.unknown):
            return HandshakeError("unknown_identity", err.msg)
        if code in (_INVALID_MAC, _BAD_FINISHED) and keys is not None and keys.psk is not None:
            keys.failed(self.identity or "")
            return HandshakeError("bad_key", err.msg)
        return HandshakeError("protocol", err.msg)

    def _establish(self, tls: TLSWrappedBuffer, flight: list[bytes]) -> None:
        self.suite = str(tls.cipher())
        if self._keys is not None:
            self._keys.succeeded(self.identity or "")
        if self._engine.python_records:
            self._records = self._hand_off()
        if self._records is not None:
            self._tls = None
            self._final_flight = flight
        self._transcript = None
        self._keys = None  # no key material kept beyond the handshake

    def _hand_off(self) -> RecordLayer | None:
        transcript = self._transcript
        psk = self._keys.psk if self._keys is not None else None
        suite = transcript.suite() if transcript is not None else None
        if transcript is None or psk is None or suite is None:
            return None
        ours, theirs = transcript.server_finished, transcript.client_finished
        keys = transcript.keys(psk, suite)
        if keys is None or ours is None or theirs is None:
            return None
        if not (
            transcript.opens_client_finished(keys, suite)
            and transcript.opens_server_finished(keys, suite)
        ):
            log.warning("derived DTLS keys do not verify; Mbed TLS keeps the records")
            return None
        layer = RecordLayer(suite, keys, epoch=ours.epoch, next_sequence=ours.sequence + 1)
        layer.mark_seen(theirs.sequence)
        return layer

    # -- records --------------------------------------------------------------

    def _read_records(
        self, layer: RecordLayer, datagram: bytes, earlier: list[bytes]
    ) -> list[bytes]:
        received: list[bytes] = []
        resend = False
        for record in wire.parse_records(datagram):
            opened = layer.open(record)
            if opened is None:
                continue
            if opened.content_type == wire.APPLICATION_DATA:
                self._final_flight = []
                received.append(opened.plaintext)
            elif opened.content_type == wire.ALERT and _ends(opened.plaintext):
                raise PeerClosed("peer_closed", records=earlier + received)
            elif opened.content_type == wire.HANDSHAKE:
                resend = True  # the client repeated its final flight: ours was lost
        if resend:
            self._out += self._final_flight
        return received

    def _read_library(
        self, tls: TLSWrappedBuffer, datagram: bytes, earlier: list[bytes]
    ) -> list[bytes]:
        tls.receive_from_network(datagram)
        received: list[bytes] = []
        buffer = bytearray(READ_SIZE)
        try:
            while True:
                size = tls.readinto(buffer, READ_SIZE)  # type: ignore[arg-type]
                received.append(bytes(buffer[:size]))
        except WantReadError:
            pass
        except (RaggedEOF, TLSError) as err:
            self._flush(tls)
            code = _code(err)
            reason = (
                "protocol" if code not in (0, _PEER_CLOSE_NOTIFY, _FATAL_ALERT) else "peer_closed"
            )
            raise PeerClosed(reason, records=earlier + received) from err
        self._flush(tls)
        return received

    def _flush(self, tls: TLSWrappedBuffer) -> list[bytes]:
        """Move the library's output to `_out`, one datagram per MTU's worth of records."""
        data = tls.peek_outgoing(1 << 16)
        if not data:
            return []
        tls.consume_outgoing(len(data))
        records = wire.parse_records(data)
        if self._transcript is not None:
            self._transcript.observe_server(records)
        datagrams = _datagrams(records)
        self._out += datagrams
        return datagrams


def _code(err: Exception) -> int:
    """The Mbed TLS error code of a binding exception, as a positive number."""
    code = getattr(err, "err", 0)
    return abs(code) if isinstance(code, int) else 0


def _ends(alert: bytes) -> bool:
    """Whether an alert ends the association: close_notify or any fatal alert."""
    return len(alert) == 2 and (alert[0] == wire.ALERT_FATAL or alert[1] == wire.CLOSE_NOTIFY)


def _datagrams(records: list[wire.Record]) -> list[bytes]:
    """Pack the library's output records into datagrams of at most MAX_DATAGRAM bytes."""
    datagrams: list[bytes] = []
    current = b""
    for record in records:
        size = wire.RECORD_HEADER + len(record.fragment)
        if current and len(current) + size > MAX_DATAGRAM:
            datagrams.append(current)
            current = b""
        current += record.header + record.fragment
    if current:
        datagrams.append(current)
    return datagrams
