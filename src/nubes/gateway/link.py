"""Per-device state in the gateway.

A `DeviceLink` holds what must survive between two datagrams of a device:
its FLAP transfer state machine, the downlinks offered to it, where it was
last heard from, and a short backlog of packets that arrived while the
previous one was still being made durable (a device waits for each answer,
so only repeats land there; the backlog is capped).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from nubes.flap import Transfer
from nubes.gateway.directory import DeviceInfo
from nubes.gateway.downlinks import Offer
from nubes.gateway.state import RestCache

BACKLOG = 8
RECENTLY_DELIVERED = 64


class Channel(Protocol):
    """Where an answer to one datagram goes: the envelope seals and sends it."""

    envelope: str
    remote: tuple[str, int]
    size_in: int

    def send(self, packet: bytes) -> int:
        """Seals and sends one FLAP packet; returns the datagram size."""
        ...


@dataclass(slots=True)
class DeviceLink:
    info: DeviceInfo
    transfer: Transfer
    fragment_limit: int
    last_activity: float
    envelope: str = ""
    remote: tuple[str, int] = ("", 0)
    offers: dict[Any, Offer] = field(default_factory=dict)
    busy: bool = False
    reload_downlinks: bool = True
    backlog: deque[tuple[bytes, Channel, float]] = field(
        default_factory=lambda: deque(maxlen=BACKLOG)
    )
    # Delivered here, but the database may not say so yet (the state change is
    # still in the pipeline): a reload must not offer these again.
    delivered: deque[Any] = field(default_factory=lambda: deque(maxlen=RECENTLY_DELIVERED))
    # Several gateways (nubes.gateway.state): the version of the state last
    # saved or adopted, whether to load the shared snapshot before the next
    # packet, the packet a snapshot was last consulted for, and the rarely
    # changing part of its snapshot as last encoded.
    version: int = 0
    restore: bool = False
    consulted: Any = None
    rest_cache: RestCache = field(default_factory=RestCache)

    def offer(self, offer: Offer, *, first: bool = False) -> None:
        """Queues a downlink for the device; `first` puts it ahead (SET_SESSION)."""
        if offer.downlink_id not in self.offers and offer.downlink_id not in self.delivered:
            self.offers[offer.downlink_id] = offer
            self.transfer.offer(offer.downlink_id, offer.message, first=first)

    def withdraw(self, downlink_id: Any) -> None:
        self.transfer.withdraw(downlink_id)
        self.offers.pop(downlink_id, None)
