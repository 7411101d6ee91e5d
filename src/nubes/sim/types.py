"""The simulator's shared names: what a device is, what it did, how it reaches the cloud.

`Link` is the one seam between a simulated device and an envelope: the
device hands it FLAP packets (header + data) and reads FLAP packets from its
inbox; sealing, verifying, encrypting and handshakes are the link's. A
`Network` gives each device its link: `device.SharedSocket` for the MAC
envelope, `dtls.DtlsNetwork` for DTLS.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Stats:
    """What all simulated devices did, for the summary."""

    sessions: int = 0
    data_acked: int = 0
    uploads: int = 0
    downlinks: int = 0
    shell_answers: int = 0
    timeouts: int = 0
    resets: int = 0
    gave_up: int = 0
    latencies: list[float] = field(default_factory=list)
    dtls: bool = False
    """Whether the summary reports DTLS handshakes (the MAC envelope has none)."""
    handshakes: int = 0
    handshake_failures: int = 0
    handshake_latencies: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        summary = {
            "sessions": self.sessions,
            "data_acked": self.data_acked,
            "uploads": self.uploads,
            "downlinks": self.downlinks,
            "shell_answers": self.shell_answers,
            "timeouts": self.timeouts,
            "resets": self.resets,
            "gave_up": self.gave_up,
            "ack_latency_ms": _percentiles(self.latencies),
        }
        if self.dtls:
            summary["handshakes"] = self.handshakes
            summary["handshake_failures"] = self.handshake_failures
            summary["handshake_ms"] = _percentiles(self.handshake_latencies)
        return summary


def _percentiles(seconds: list[float]) -> dict[str, float | None]:
    ordered = sorted(seconds)

    def pick(fraction: float) -> float | None:
        if not ordered:
            return None
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 2)

    return {"p50": pick(0.5), "p99": pick(0.99)}


@dataclass
class Profile:
    """What a simulated device is and carries."""

    serial: int
    claim_token: bytes
    decoder_yaml: str
    encoder_yaml: str | None
    config: list[str]
    timeout: float = 5.0
    psk: bytes | None = None
    """The DTLS pre-shared key (the DTLS envelope only)."""


class Link(Protocol):
    """One device's way to the cloud: FLAP packets out, FLAP packets into `inbox`."""

    fragment_limit: int
    """Uplink fragment data size of the envelope (`flap.FRAGMENT_LIMIT`)."""
    inbox: asyncio.Queue[bytes]
    """Authentic FLAP packets from the cloud, envelope removed."""

    async def ready(self) -> bool:
        """Whether packets can be sent now (DTLS: after a handshake, made here if needed)."""
        ...

    def send(self, packet: bytes) -> None: ...

    def unanswered(self) -> None:
        """A packet got no answer in time (DTLS: the association may be gone)."""
        ...

    async def close(self) -> None: ...


class Network(Protocol):
    """Gives each device its link."""

    def attach(self, profile: Profile, stats: Stats) -> Link: ...
