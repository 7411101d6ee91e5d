"""The dispatcher's metrics: plain counts kept by the dispatcher, families at scrape time.

Attempts are counted when their outcome is written to the database (what
the delivery log shows), by outcome (`success`, `failure`, `skipped`) and
the delivery's state after it (`succeeded`, `pending` for a retry,
`failed`, `skipped`). The latency histogram holds the HTTP exchanges only
(attempts that sent a request), as `Sender` timed them. The gauges are read
from the dispatcher at scrape time; `nubes_dispatcher_callbacks_paused` is
what this dispatcher knows of every callback's breaker (all dispatchers
see the same database), so aggregate it with `max`, not `sum`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from nubes.callbacks.delivery import Outcome
from nubes.metrics import Histogram, histogram_family

__all__ = ["LATENCY_BUCKETS", "DispatcherStats", "families"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class DispatcherStats:
    """What a dispatcher counts; the dispatcher only adds, `families` only reads."""

    __slots__ = ("attempts", "claimed", "created", "in_flight", "latency")

    def __init__(self) -> None:
        self.attempts: Counter[tuple[str, str]] = Counter()  # (outcome, state) -> written
        self.created: Counter[str] = Counter()  # fast | pending -> deliveries inserted
        self.claimed = 0
        self.in_flight = 0
        self.latency = Histogram(LATENCY_BUCKETS)

    def written(self, outcomes: Iterable[Outcome]) -> None:
        attempts, observe = self.attempts, self.latency.observe
        for outcome in outcomes:
            attempts[outcome.outcome, outcome.state] += 1
            if outcome.duration_ms is not None:
                observe(outcome.duration_ms / 1000)


class DispatcherView(Protocol):
    @property
    def stats(self) -> DispatcherStats: ...

    @property
    def held(self) -> int: ...

    @property
    def paused_callbacks(self) -> int: ...

    @property
    def unwritten(self) -> int: ...


def families(dispatcher: DispatcherView) -> Iterator[Metric]:
    stats = dispatcher.stats
    attempts = CounterMetricFamily(
        "nubes_dispatcher_attempts",
        "Delivery attempts written, by outcome and the delivery's state after it",
        labels=["outcome", "state"],
    )
    for (outcome, state), count in sorted(stats.attempts.items()):
        attempts.add_metric([outcome, state], count)
    yield attempts
    created = CounterMetricFamily(
        "nubes_dispatcher_deliveries_created",
        "Deliveries inserted for stored messages: sent at once (fast) or left to the claim loop",
        labels=["path"],
    )
    for path in ("fast", "pending"):
        created.add_metric([path], stats.created[path])
    yield created
    yield CounterMetricFamily(
        "nubes_dispatcher_deliveries_claimed",
        "Deliveries claimed from the database (retries, replays, the backlog)",
        value=stats.claimed,
    )
    yield histogram_family(
        "nubes_dispatcher_attempt_duration_seconds",
        "Duration of the HTTP exchange of each attempt that sent a request",
        [],
        {(): stats.latency},
    )
    yield from _gauges(dispatcher)


def _gauges(dispatcher: DispatcherView) -> Iterator[Metric]:
    for name, documentation, value in (
        ("deliveries_held", "Deliveries this dispatcher holds (leased)", dispatcher.held),
        (
            "attempts_in_flight",
            "Attempts under way: preparing or waiting for the endpoint",
            dispatcher.stats.in_flight,
        ),
        ("outcomes_unwritten", "Finished attempts waiting to be written", dispatcher.unwritten),
        (
            "callbacks_paused",
            "Callbacks whose circuit breaker is open or probing (same on every dispatcher)",
            dispatcher.paused_callbacks,
        ),
    ):
        yield GaugeMetricFamily(f"nubes_dispatcher_{name}", documentation, value=value)
