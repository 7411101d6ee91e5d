"""A python-mbedtls PSK client and an in-memory network for the DTLS server tests.

The client is the same library the server uses, on the client side. Its
own retransmission timer runs on the wall clock; tests that need it set
`retransmit_after` small and sleep, all others leave it out of reach.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from mbedtls.exceptions import TLSError
from mbedtls.tls import (
    ClientContext,
    DTLSConfiguration,
    DTLSVersion,
    TLSWrappedBuffer,
    WantReadError,
    WantWriteError,
)

from nubes.dtls import Address, Association, DtlsEvent, DtlsServer, Output, identity_of

SERIAL = 2159017985
KEY = bytes(range(16))
OLD_KEY = bytes(range(100, 132))
CCM_8 = "TLS-PSK-WITH-AES-128-CCM-8"


def keys_of(table: dict[int, list[bytes]]) -> Callable[[int], list[bytes]]:
    return lambda serial: table.get(serial, [])


def new_server(table: dict[int, list[bytes]] | None = None, **options: object) -> DtlsServer:
    keys = keys_of(table if table is not None else {SERIAL: [KEY]})
    return DtlsServer(keys, **options)  # type: ignore[arg-type]


class PskClient:
    """A DTLS 1.2 PSK client over in-memory buffers."""

    def __init__(
        self,
        identity: str = identity_of(SERIAL),
        key: bytes = KEY,
        *,
        suites: tuple[str, ...] = (CCM_8,),
        retransmit_after: float = 1000.0,
    ) -> None:
        configuration = DTLSConfiguration(
            pre_shared_key=(identity, key),
            ciphers=suites,
            validate_certificates=False,
            lowest_supported_version=DTLSVersion.DTLSv1_2,
            highest_supported_version=DTLSVersion.DTLSv1_2,
            handshake_timeout_min=retransmit_after,
            handshake_timeout_max=retransmit_after * 64,
        )
        self._tls: TLSWrappedBuffer = ClientContext(configuration).wrap_buffers(None)
        self.established = False
        self.error: TLSError | None = None
        self.last_flight: list[bytes] = []

    def start(self) -> list[bytes]:
        return self._drive()

    def handle(self, datagrams: list[bytes]) -> list[bytes]:
        """Feed datagrams during the handshake; returns what the client sends."""
        out: list[bytes] = []
        for datagram in datagrams:
            self._tls.receive_from_network(datagram)
            out += self._drive()
        return out

    def retransmit(self) -> list[bytes]:
        """Let the library notice its (short) timer expired and resend its flight."""
        return self._drive()

    def send(self, record: bytes) -> list[bytes]:
        self._tls.write(record)
        return self._flush()

    def read(self, datagrams: list[bytes]) -> list[bytes]:
        records = []
        buffer = bytearray(20_000)
        for datagram in datagrams:
            self._tls.receive_from_network(datagram)
            try:
                while True:
                    size = self._tls.readinto(buffer, len(buffer))  # type: ignore[arg-type]
                    records.append(bytes(buffer[:size]))
            except WantReadError:
                pass
        return records

    def close(self) -> list[bytes]:
        self._tls.shutdown()
        return self._flush()

    def _drive(self) -> list[bytes]:
        out: list[bytes] = []
        while not self.established and self.error is None:
            try:
                self._tls.do_handshake()
            except WantReadError:
                break
            except WantWriteError:
                continue
            except TLSError as err:
                self.error = err
            if self._tls._handshake_state.name == "HANDSHAKE_OVER":
                self.established = True
        out += self._flush()
        if out:
            self.last_flight = out
        return out

    def _flush(self) -> list[bytes]:
        data = self._tls.peek_outgoing(1 << 16)
        self._tls.consume_outgoing(len(data))
        return [data] if data else []


@dataclass
class Link:
    """One client and the server, joined by an in-memory network with a fake clock."""

    server: DtlsServer
    client: PskClient
    address: Address = ("192.0.2.7", 40001)
    now: float = 1000.0
    events: list[DtlsEvent] = field(default_factory=list)
    records: list[tuple[Association, bytes]] = field(default_factory=list)
    drop_to_client: Callable[[bytes], bool] = lambda datagram: False
    drop_to_server: Callable[[bytes], bool] = lambda datagram: False

    def to_server(self, datagrams: list[bytes]) -> list[bytes]:
        """Deliver to the server; returns what the server sends back to this address."""
        answers: list[bytes] = []
        for datagram in datagrams:
            if not self.drop_to_server(datagram):
                answers += self.collect(self.server.receive(datagram, self.address, self.now))
        return answers

    def collect(self, out: Output) -> list[bytes]:
        self.events += out.events
        self.records += out.records
        return [d for d, to in out.datagrams if to == self.address and not self.drop_to_client(d)]

    def handshake(self, rounds: int = 8) -> Association | None:
        pending = self.client.start()
        for _ in range(rounds):
            pending = self.client.handle(self.to_server(pending))
            if not pending:
                break
        return self.server.association(self.address)

    def poll(self, at: float) -> list[bytes]:
        self.now = at
        return self.collect(self.server.poll(at))

    def echo(self, payload: bytes) -> list[bytes]:
        """Client sends `payload`; the server answers each record it got with its reverse."""
        before = len(self.records)
        self.to_server(self.client.send(payload))
        answers: list[bytes] = []
        for association, record in self.records[before:]:
            out = self.server.send(association.address, record[::-1], self.now)
            answers += self.collect(out)
        return self.client.read(answers)


def random_address(rng: random.Random) -> Address:
    return (f"198.51.{rng.randrange(256)}.{rng.randrange(256)}", rng.randrange(1024, 65536))


def event_types(events: list[DtlsEvent]) -> list[str]:
    return [type(event).__name__ for event in events]
