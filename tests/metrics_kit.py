"""Reading the Prometheus text format in tests, with prometheus_client's parser.

`samples` turns a scrape into {(sample name, labels): value}; `value` reads
one sample; `every_family` builds a registry holding every family the code
exports (each counter key and stat set once), for checks of names.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from nubes import metrics
from nubes.api import metrics as api_metrics
from nubes.callbacks import metrics as dispatcher_metrics
from nubes.callbacks.delivery import Outcome
from nubes.dtls.server import DtlsCounters
from nubes.gateway import metrics as gateway_metrics
from nubes.pipeline import metrics as worker_metrics

Labels = frozenset[tuple[str, str]]


def samples(text: str | bytes) -> dict[tuple[str, Labels], float]:
    """Every sample of a scrape; the parser refuses what is not the text format."""
    if isinstance(text, bytes):
        text = text.decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str | bytes, name: str, **labels: str) -> float | None:
    return samples(text).get((name, frozenset(labels.items())))


def total(text: str | bytes, name: str, **labels: str) -> float:
    """The sum of `name` over the samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, got), v in samples(text).items() if n == name and wanted <= got)


class FakeGateway:
    def __init__(self, counters: dict[str, int], links: int = 0) -> None:
        self.counters = Counter(counters)
        self.links = links


class FakeDtls:
    def __init__(self, associations: int = 0, handshakes: int = 0) -> None:
        self.counters = DtlsCounters()
        self.association_count = associations
        self.handshake_count = handshakes


class FakeDispatcher:
    def __init__(self) -> None:
        self.stats = dispatcher_metrics.DispatcherStats()
        self.held = 3
        self.paused_callbacks = 1
        self.unwritten = 2


# One key of each kind the gateway counts.
GATEWAY_KEYS = {
    "datagrams_in": 10,
    "datagrams_out": 8,
    "dropped:unknown serial": 1,
    "in:accepted": 6,
    "out:ack": 6,
    "messages:data": 5,
    "messages:session": 1,
    "dtls:datagrams_in": 4,
    "dtls:dtls_established": 1,
    "dtls:dtls_failed:bad_key": 1,
    "dtls:dtls_closed:expired": 1,
    "links evicted": 1,
    "links expired": 2,
    "dtls:not sent (DtlsError)": 1,
}


def every_family() -> CollectorRegistry:
    """A registry with every family of every process type, each with a sample."""
    registry = metrics.registry("serve")
    gateway = FakeGateway(GATEWAY_KEYS, links=2)
    worker = worker_metrics.WorkerStats()
    row: dict[str, Any] = {"type": "data", "direction": "up", "created_at": datetime.now(UTC)}
    worker.committed([row], datetime.now(UTC))
    dispatcher = FakeDispatcher()
    ids = uuid.uuid4(), uuid.uuid4()
    sent = Outcome(*ids, datetime.now(UTC), "succeeded", 1, "success", True, duration_ms=5.0)
    dispatcher.stats.written([sent])
    http = api_metrics.HttpStats()
    http.requests["GET", "/v1/devices/{device_id}", "2xx"] += 1
    http.latency.observe(("GET", "/v1/devices/{device_id}"), 0.01)
    for source in (
        lambda: gateway_metrics.families(gateway, FakeDtls()),
        lambda: worker_metrics.families(worker),
        lambda: dispatcher_metrics.families(dispatcher),
        lambda: api_metrics.families(http),
    ):
        registry.register(metrics.Families(source))
    return registry
