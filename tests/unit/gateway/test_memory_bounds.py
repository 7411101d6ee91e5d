"""The gateway's memory stays bounded: device links are capped and idle ones evicted."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from nubes import flap
from nubes.gateway.directory import DeviceInfo
from nubes.gateway.service import Gateway


class Channel:
    envelope = "base64"
    remote = ("127.0.0.1", 1)
    size_in = 20

    def send(self, packet: bytes) -> int:
        return len(packet)


class NoDirectory:
    def get(self, serial: int) -> None:
        return None

    def on_change(self, listener: object) -> None:
        return None


def gateway(*, max_links: int, idle_seconds: float) -> Gateway:
    return Gateway(
        engine=None,  # type: ignore[arg-type]
        directory=NoDirectory(),  # type: ignore[arg-type]
        publisher=None,  # type: ignore[arg-type]
        session_ids=None,  # type: ignore[arg-type]
        publish_timeout=1.0,
        idle_seconds=idle_seconds,
        max_links=max_links,
    )


def info(serial: int) -> DeviceInfo:
    return DeviceInfo(
        uuid.uuid4(),
        uuid.uuid4(),
        None,
        serial,
        bytes(16),
        None,
        "d",
        True,
        None,
        None,
        None,
        None,
        datetime.now(UTC),
    )


def test_links_beyond_the_cap_evict_the_least_recently_heard() -> None:
    g = gateway(max_links=3, idle_seconds=3600)
    for serial in (1, 2, 3):
        g._link(info(serial), Channel(), 0.0)
    g._link(info(1), Channel(), 1.0)  # heard again: now the most recent
    g._link(info(4), Channel(), 2.0)
    assert g.links == 3
    assert set(g._links) == {3, 1, 4}
    assert g.counters["links evicted"] == 1


def test_a_busy_link_is_never_evicted() -> None:
    g = gateway(max_links=2, idle_seconds=0.0)
    busy = g._link(info(1), Channel(), 0.0)
    busy.busy = True
    g._link(info(2), Channel(), 0.0)
    g._link(info(3), Channel(), 0.0)
    assert 1 in g._links
    assert g.evict_idle() == 1
    assert set(g._links) == {1}


def test_idle_links_are_forgotten_and_a_returning_device_starts_over() -> None:
    g = gateway(max_links=100, idle_seconds=0.0)
    link = g._link(info(7), Channel(), 0.0)
    link.last_activity = 0.0
    assert g.evict_idle() == 1
    assert g.links == 0
    fresh = g._link(info(7), Channel(), 1.0)
    step = fresh.transfer.receive(flap.Packet(flap.A, 9), 1.0)
    assert step.answer == flap.RESET  # a forgotten sequence: the device restarts at 0
