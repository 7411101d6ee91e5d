"""The errors of the DTLS layer, under `ProtocolError` of `nubes.errors`.

    DtlsError               (ProtocolError) a DTLS operation that cannot be done
     ├── NoAssociation      send/close for an address without a live association
     ├── RecordTooLarge     an application record above 16 384 bytes
     ├── HandshakeError     an engine's handshake failed; `reason` is one of
     │                      unknown_identity, bad_key, protocol
     └── PeerClosed         the peer sent close_notify or a fatal alert

`DtlsServer.receive` and `poll` never raise: bad input becomes an event or
is dropped. `HandshakeError` and `PeerClosed` travel from an engine to the
server only; `send` raises `NoAssociation` and `RecordTooLarge`.
"""

from __future__ import annotations

from nubes.errors import ProtocolError


class DtlsError(ProtocolError):
    """A DTLS operation that cannot be done."""


class NoAssociation(DtlsError):
    """No established association for this address."""

    def __init__(self, address: object) -> None:
        super().__init__("no_association")
        self.address = address


class RecordTooLarge(DtlsError):
    """An application record larger than DTLS allows."""

    def __init__(self, size: int) -> None:
        super().__init__("record_too_large")
        self.size = size


class HandshakeError(DtlsError):
    """The handshake failed; `reason` says why, `detail` says more for the log."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.detail = detail


class PeerClosed(DtlsError):
    """The association ended: `reason` is peer_closed (an alert) or protocol.

    `records` are the application records that arrived before the end, in
    the same call.
    """

    def __init__(self, reason: str, records: list[bytes] | None = None) -> None:
        super().__init__(reason)
        self.records = records or []
