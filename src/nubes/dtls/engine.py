"""The port between `DtlsServer` and a DTLS library.

`DtlsServer` owns addresses, timers, cookies-before-state, replacement and
expiry; an `Engine` only runs the handshake and the record layer of one
peer at a time. Nubes depends on this small interface, not on the library:
python-mbedtls is an old Mbed TLS branch with a quiet upstream, and a
replacement (Mbed TLS 3.x for Connection ID, or another binding) should
only need a new `Engine`.

A peer is driven like this, one datagram at a time:

    peer.feed(datagram)
    step = peer.handshake()    # until DONE; HandshakeError on failure
    send(peer.outgoing())
    ...
    peer.feed(datagram)
    records = peer.read()      # after DONE; PeerClosed when the peer ends it
    send(peer.outgoing())      # e.g. a retransmitted final flight
    peer.write(record); send(peer.outgoing())

`HELLO_VERIFY` means the peer answered with a cookie request and holds no
state worth keeping: the server drops it. Engines must treat any bytes as
possible input: malformed datagrams are dropped, never raised.
"""

from __future__ import annotations

import enum
from typing import Protocol


class HandshakeStep(enum.Enum):
    CONTINUE = "continue"
    """Waiting for the client's next flight."""
    HELLO_VERIFY = "hello_verify"
    """A HelloVerifyRequest was written; the peer keeps no state."""
    DONE = "done"
    """Established: `identity`, `suite` and `key_index` are set."""


class Peer(Protocol):
    """One client address, from its cookie-verified ClientHello to its end."""

    @property
    def identity(self) -> str | None: ...

    @property
    def suite(self) -> str | None: ...

    @property
    def key_index(self) -> int | None:
        """Which of the device's valid keys verified (0: newest)."""
        ...

    def feed(self, datagram: bytes) -> None: ...

    def handshake(self) -> HandshakeStep: ...

    def read(self) -> list[bytes]: ...

    def write(self, record: bytes) -> None: ...

    def close(self) -> None:
        """Queue a close_notify; the peer is unusable afterwards."""
        ...

    def outgoing(self) -> list[bytes]:
        """Datagrams to send, in order; each call drains them."""
        ...


class Engine(Protocol):
    """Makes peers; holds what they share (configuration, cookie secret, keys)."""

    def new_peer(self, address: bytes) -> Peer:
        """A peer for a client; `address` binds its cookies to the source address."""
        ...
