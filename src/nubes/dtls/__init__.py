"""DTLS 1.2 PSK for the device gateway, as a sans-IO package.

Bytes in, `Output` out: no sockets, no asyncio, no clock (the time is
passed in as `now`). The layers:

- `server`: `DtlsServer`, one state per client address: cookies before
  state, bounded handshakes, retransmission, replacement, idle expiry;
- `engine`: the `Engine`/`Peer` port a DTLS library must fill;
- `mbedtls_engine`: that port on python-mbedtls (Mbed TLS 2.28);
- `keychoice`, `transcript`, `crypto`, `records`: the PSK key schedule run
  beside the library, for trying a device's two keys and for the Python
  record layer that replaces the library after the handshake;
- `wire`: protocol numbers and parsers; `keys`: identities and PSKs;
  `events`: what the server reports; `timers`: its deadline heap.

The modules are private in spirit; import from `nubes.dtls`.
"""

from nubes.dtls.crypto import SUITES
from nubes.dtls.engine import Engine, HandshakeStep, Peer
from nubes.dtls.errors import DtlsError, HandshakeError, NoAssociation, PeerClosed, RecordTooLarge
from nubes.dtls.events import (
    Address,
    Association,
    Closed,
    DtlsEvent,
    Established,
    HandshakeFailed,
    HandshakeStarted,
    Output,
)
from nubes.dtls.keys import KeyLookup, identity_of, serial_of
from nubes.dtls.mbedtls_engine import DEFAULT_SUITES, MbedtlsEngine
from nubes.dtls.server import DtlsCounters, DtlsServer

__all__ = [
    "DEFAULT_SUITES",
    "SUITES",
    "Address",
    "Association",
    "Closed",
    "DtlsCounters",
    "DtlsError",
    "DtlsEvent",
    "DtlsServer",
    "Engine",
    "Established",
    "HandshakeError",
    "HandshakeFailed",
    "HandshakeStarted",
    "HandshakeStep",
    "KeyLookup",
    "MbedtlsEngine",
    "NoAssociation",
    "Output",
    "Peer",
    "PeerClosed",
    "RecordTooLarge",
    "identity_of",
    "serial_of",
]
