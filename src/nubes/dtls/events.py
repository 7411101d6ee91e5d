"""What the DTLS server tells its caller: associations, events, outputs.

Events are small frozen values meant for the communication log; the server
never logs them itself. Reasons are short fixed strings:

- `HandshakeFailed.reason`: `unknown_identity` (no such device or no valid
  key), `bad_key` (the client's Finished did not verify under any valid
  key), `timeout` (the handshake deadline passed), `protocol` (anything
  else the DTLS library refused, or an alert from the client),
  `superseded` (the same address started a new handshake), `closed` (the
  caller closed the address).
- `Closed.reason`: `peer_closed` (close_notify or fatal alert from the
  device), `replaced` (a newer handshake of the same device, or a new
  handshake from the same address), `expired` (idle timeout), `closed`
  (the caller closed it), `protocol` (only when the library keeps the
  records and fails on one).

What produces no event at all, because its source address is not proven:
cookie requests, ClientHellos refused before the cookie check, datagrams
dropped while the handshake table is full; `DtlsServer.counters` counts
them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

Address: TypeAlias = tuple[Any, ...]


@dataclass(slots=True, eq=False)
class Association:
    """An established DTLS session with one device at one address."""

    address: Address
    identity: str
    serial: int
    suite: str
    key_index: int
    """Which of the device's valid keys it used: 0 is the newest."""
    established_at: float
    last_activity: float
    """Time of the last authentic application record from the device."""


@dataclass(frozen=True, slots=True)
class HandshakeStarted:
    address: Address


@dataclass(frozen=True, slots=True)
class Established:
    association: Association


@dataclass(frozen=True, slots=True)
class HandshakeFailed:
    address: Address
    reason: str
    identity: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Closed:
    association: Association
    reason: str


DtlsEvent: TypeAlias = HandshakeStarted | Established | HandshakeFailed | Closed


@dataclass(slots=True)
class Output:
    """Everything one call produced: datagrams to send, records received, events."""

    datagrams: list[tuple[bytes, Address]] = field(default_factory=list)
    records: list[tuple[Association, bytes]] = field(default_factory=list)
    events: list[DtlsEvent] = field(default_factory=list)

    def extend(self, other: Output) -> None:
        self.datagrams.extend(other.datagrams)
        self.records.extend(other.records)
        self.events.extend(other.events)
