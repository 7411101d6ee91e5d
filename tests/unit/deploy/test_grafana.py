"""The Grafana dashboard (deploy/grafana/nubes.json) asks only for what Nubes exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from metrics_kit import every_family, samples
from nubes import metrics

DASHBOARD = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "nubes.json"
METRIC_NAME = re.compile(r"\b(?:nubes|process|python)_[a-z0-9_]+\b")


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _graphs(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def test_a_recent_schema_with_a_prometheus_datasource_variable(dashboard: dict[str, Any]) -> None:
    assert dashboard["schemaVersion"] >= 36
    (variable,) = dashboard["templating"]["list"]
    assert (variable["name"], variable["type"], variable["query"]) == (
        "DS_PROMETHEUS",
        "datasource",
        "prometheus",
    )
    for panel in _graphs(dashboard):
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert all(t["datasource"]["uid"] == "${DS_PROMETHEUS}" for t in panel["targets"])
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_every_expression_uses_only_exported_metric_names(dashboard: dict[str, Any]) -> None:
    exported = {name for name, _ in samples(metrics.exposition(every_family()))}
    used = set()
    for panel in _graphs(dashboard):
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = set(METRIC_NAME.findall(target["expr"]))
            assert names, target["expr"]
            assert names <= exported, (panel["title"], names - exported)
            used |= names
    # Every family of every process type appears in some panel, or is left out on purpose.
    families = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in used}
    unshown = {
        re.sub(r"_(total|bucket|count|sum)$", "", name)
        for name in exported
        if name.startswith("nubes_")
    } - families
    assert unshown <= {
        "nubes_gateway_events",
        "nubes_gateway_devices_evicted",
        "nubes_gateway_dtls_stateless_datagrams",
        "nubes_worker_batches_stored",
        "nubes_worker_transactions",
        "nubes_dispatcher_deliveries_created",
        "nubes_dispatcher_deliveries_claimed",
    }, unshown


def test_the_panels_the_operators_asked_for_are_there(dashboard: dict[str, Any]) -> None:
    titles = " | ".join(panel["title"] for panel in _graphs(dashboard)).lower()
    for words in (
        "datagrams / s",
        "dropped",
        "packets",
        "sessions",
        "dtls handshakes",
        "devices in memory",
        "messages stored",
        "pipeline lag",
        "delivery attempts",
        "delivery latency",
        "api requests",
        "api latency p99",
        "cpu",
        "memory",
    ):
        assert words in titles, words
