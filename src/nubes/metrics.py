"""Prometheus metrics: counted in the components, read only when scraped.

The gateway handles tens of thousands of datagrams a second on one core, so
nothing on a hot path touches a metrics library: components count with
plain integer increments in their own `Counter`s, dicts and `Histogram`s
(below), and a `Families` collector turns those into metric families at
scrape time. prometheus_client only renders the text format, adds the
process metrics (CPU, memory, file descriptors) and parses in tests.

Why our own `Histogram` and not prometheus_client's: its `observe` takes a
lock and its labelled children a second lookup under another; ours is a
`bisect` and two additions, all that a single-threaded event loop needs
(see `bench/metrics.py` for both costs).

Each `Runtime` has its own `CollectorRegistry` (`registry`), so several
runtimes in one test process do not clash, and names are not checked at
registration (`auto_describe=False`): collectors may yield nothing.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

from prometheus_client import (
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import HistogramMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry

from nubes import __version__

__all__ = [
    "CONTENT_TYPE",
    "Families",
    "Histogram",
    "Histograms",
    "LabelledHistograms",
    "exposition",
    "histogram_family",
    "registry",
]

# The classic text format, which every Prometheus reads; `generate_latest`
# writes it as long as names are plain ASCII (ours are).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[str, ...]


class Histogram:
    """Fixed buckets as a list of ints: `counts[i]` holds values in (bounds[i-1], bounds[i]].

    The last count holds values above every bound (+Inf). Not thread-safe,
    and needs not be: each component lives on one event loop.
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        if list(bounds) != sorted(set(bounds)):
            raise ValueError("histogram bounds must be strictly increasing")
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, float]]:
        """The buckets as Prometheus wants them: (le, observations ≤ le), +Inf last."""
        buckets, total = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            buckets.append((_le(bound), float(total)))
        return buckets


class LabelledHistograms:
    """One `Histogram` per tuple of label values, made on first use."""

    __slots__ = ("bounds", "by_labels")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.by_labels: dict[Labels, Histogram] = {}

    def observe(self, labels: Labels, value: float) -> None:
        histogram = self.by_labels.get(labels)
        if histogram is None:
            histogram = self.by_labels[labels] = Histogram(self.bounds)
        histogram.observe(value)


Histograms = Mapping[Labels, Histogram]


def histogram_family(
    name: str, documentation: str, label_names: Sequence[str], histograms: Histograms
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=list(label_names))
    for labels, histogram in sorted(histograms.items()):
        family.add_metric(list(labels), histogram.cumulative(), histogram.sum)
    return family


class Families:
    """A collector that yields what `source()` builds, at every scrape."""

    def __init__(self, source: Callable[[], Iterable[Metric]]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        yield from self._source()


def registry(process: str) -> CollectorRegistry:
    """A new registry with `nubes_build_info` and the process, platform and GC metrics."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    registry.register(Families(lambda: [build_info(process)]))
    return registry


def build_info(process: str) -> InfoMetricFamily:
    return InfoMetricFamily(
        "nubes_build",
        "The Nubes version and the process type (serve, api, gateway, worker, dispatcher)",
        value={"version": __version__, "process": process},
    )


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry in the Prometheus text format (`CONTENT_TYPE`)."""
    return generate_latest(registry)


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))
