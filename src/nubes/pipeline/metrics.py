"""The worker's metrics: plain counts kept by the worker, families at scrape time.

Pipeline lag is a histogram of every stored message's age at its commit:
from the gateway's receive time (the record's `at`, which becomes the
message's `created_at`) to the moment the worker's transaction committed.
A histogram rather than a gauge of the last batch: a gauge shows only the
batch that happened to be last before a scrape, while a histogram keeps
every message between scrapes, adds up over workers and gives the
percentiles an alert wants (`histogram_quantile`). Its cost is one
subtraction and one `bisect` per message, against the hundreds of
microseconds a message costs the worker in all. Clocks: the gateway's and
the worker's wall clocks; on different hosts their offset is in the lag.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime

from prometheus_client.core import CounterMetricFamily, Metric

from nubes.metrics import Histogram, histogram_family
from nubes.store.ingest import Row

__all__ = ["LAG_BUCKETS", "WorkerStats", "families"]

LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class WorkerStats:
    """What a worker counts; the worker only adds, `families` only reads."""

    __slots__ = (
        "announce_errors",
        "batches",
        "lag",
        "redelivered",
        "split_writes",
        "store_errors",
        "stored",
        "transactions",
    )

    def __init__(self) -> None:
        self.stored: Counter[tuple[str, str]] = Counter()  # (type, direction) -> messages
        self.batches = 0  # pipeline batches stored
        self.transactions = 0  # merged writes committed
        self.redelivered = 0  # batches skipped, stored before
        self.store_errors = 0  # transactions that failed
        self.split_writes = 0  # merged writes retried batch by batch after a failure
        self.announce_errors = 0  # message.stored events not published
        self.lag = Histogram(LAG_BUCKETS)

    def committed(self, rows: Iterable[Row], now: datetime) -> None:
        """Counts the messages a transaction stored and their lag at `now`."""
        stored, observe = self.stored, self.lag.observe
        for row in rows:
            stored[row["type"], row["direction"]] += 1
            observe((now - row["created_at"]).total_seconds())


def families(stats: WorkerStats) -> Iterator[Metric]:
    stored = CounterMetricFamily(
        "nubes_worker_messages_stored",
        "Messages written to the database (new ones only), by type and direction",
        labels=["type", "direction"],
    )
    for (kind, direction), count in sorted(stats.stored.items()):
        stored.add_metric([kind, direction], count)
    yield stored
    yield from _counter("batches_stored", "Pipeline batches stored", stats.batches)
    yield from _counter(
        "transactions", "Database transactions that stored merged batches", stats.transactions
    )
    yield from _counter(
        "batches_redelivered",
        "Batches the broker delivered again that were stored before (skipped)",
        stats.redelivered,
    )
    yield from _counter("store_errors", "Store transactions that failed", stats.store_errors)
    yield from _counter(
        "store_retries",
        "Merged writes that failed and were retried one batch at a time",
        stats.split_writes,
    )
    yield from _counter(
        "announce_errors",
        "Committed messages whose message.stored event could not be published",
        stats.announce_errors,
    )
    yield histogram_family(
        "nubes_worker_pipeline_lag_seconds",
        "Age of each stored message at its commit: gateway receive time to database",
        [],
        {(): stats.lag},
    )


def _counter(name: str, documentation: str, value: int) -> Iterator[Metric]:
    yield CounterMetricFamily(f"nubes_worker_{name}", documentation, value=value)
