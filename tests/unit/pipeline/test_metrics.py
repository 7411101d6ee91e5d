"""The worker's counts as metric families; the lag of each stored message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client.registry import CollectorRegistry

from metrics_kit import value
from nubes import metrics
from nubes.pipeline.metrics import WorkerStats, families

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def _scrape(stats: WorkerStats) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics.Families(lambda: families(stats)))
    return metrics.exposition(registry)


def _row(kind: str, age: float, direction: str = "up") -> dict[str, object]:
    return {"type": kind, "direction": direction, "created_at": NOW - timedelta(seconds=age)}


def test_committed_messages_count_by_type_and_their_lag_is_observed() -> None:
    stats = WorkerStats()
    stats.committed([_row("data", 0.02), _row("data", 0.3), _row("config", 40.0, "down")], NOW)
    text = _scrape(stats)
    assert value(text, "nubes_worker_messages_stored_total", type="data", direction="up") == 2
    assert value(text, "nubes_worker_messages_stored_total", type="config", direction="down") == 1
    assert value(text, "nubes_worker_pipeline_lag_seconds_bucket", le="0.025") == 1
    assert value(text, "nubes_worker_pipeline_lag_seconds_bucket", le="0.5") == 2
    assert value(text, "nubes_worker_pipeline_lag_seconds_bucket", le="30.0") == 2
    assert value(text, "nubes_worker_pipeline_lag_seconds_bucket", le="60.0") == 3
    assert value(text, "nubes_worker_pipeline_lag_seconds_count") == 3
    assert value(text, "nubes_worker_pipeline_lag_seconds_sum") == 40.32


def test_error_and_batch_counts_are_exported_from_zero() -> None:
    stats = WorkerStats()
    text = _scrape(stats)
    for name in (
        "batches_stored",
        "transactions",
        "batches_redelivered",
        "store_errors",
        "store_retries",
        "announce_errors",
    ):
        assert value(text, f"nubes_worker_{name}_total") == 0, name
    stats.batches, stats.store_errors, stats.split_writes = 5, 2, 1
    text = _scrape(stats)
    assert value(text, "nubes_worker_batches_stored_total") == 5
    assert value(text, "nubes_worker_store_errors_total") == 2
    assert value(text, "nubes_worker_store_retries_total") == 1
