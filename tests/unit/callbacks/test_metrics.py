"""The dispatcher's counts and gauges as metric families."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from prometheus_client.registry import CollectorRegistry

from metrics_kit import FakeDispatcher, value
from nubes import metrics
from nubes.callbacks.delivery import Outcome
from nubes.callbacks.metrics import families

AT = datetime(2025, 1, 2, tzinfo=UTC)


def _outcome(outcome: str, state: str, duration_ms: float | None) -> Outcome:
    return Outcome(
        uuid.uuid4(), uuid.uuid4(), AT, state, 1, outcome, endpoint=duration_ms is not None,
        duration_ms=duration_ms,
    )  # fmt: skip


def _scrape(dispatcher: FakeDispatcher) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics.Families(lambda: families(dispatcher)))
    return metrics.exposition(registry)


def test_written_outcomes_count_by_outcome_and_state_and_time_only_requests() -> None:
    dispatcher = FakeDispatcher()
    dispatcher.stats.written(
        [
            _outcome("success", "succeeded", 4.0),
            _outcome("success", "succeeded", 120.0),
            _outcome("failure", "pending", 2500.0),
            _outcome("skipped", "skipped", None),
            _outcome("failure", "failed", None),  # a payload error: nothing sent
        ]
    )
    text = _scrape(dispatcher)
    attempts = "nubes_dispatcher_attempts_total"
    assert value(text, attempts, outcome="success", state="succeeded") == 2
    assert value(text, attempts, outcome="failure", state="pending") == 1
    assert value(text, attempts, outcome="failure", state="failed") == 1
    assert value(text, attempts, outcome="skipped", state="skipped") == 1
    latency = "nubes_dispatcher_attempt_duration_seconds"
    assert value(text, f"{latency}_bucket", le="0.005") == 1
    assert value(text, f"{latency}_bucket", le="0.25") == 2
    assert value(text, f"{latency}_bucket", le="2.5") == 3
    assert value(text, f"{latency}_count") == 3
    assert value(text, f"{latency}_sum") == 2.624


def test_gauges_are_read_from_the_dispatcher() -> None:
    dispatcher = FakeDispatcher()
    dispatcher.stats.in_flight = 4
    dispatcher.stats.created["fast"] += 6
    dispatcher.stats.claimed = 2
    text = _scrape(dispatcher)
    assert value(text, "nubes_dispatcher_deliveries_held") == 3
    assert value(text, "nubes_dispatcher_callbacks_paused") == 1
    assert value(text, "nubes_dispatcher_outcomes_unwritten") == 2
    assert value(text, "nubes_dispatcher_attempts_in_flight") == 4
    assert value(text, "nubes_dispatcher_deliveries_created_total", path="fast") == 6
    assert value(text, "nubes_dispatcher_deliveries_created_total", path="pending") == 0
    assert value(text, "nubes_dispatcher_deliveries_claimed_total") == 2
