"""Fixed-bucket histograms, the per-runtime registry and its text format."""

from __future__ import annotations

import pytest
from prometheus_client.core import CounterMetricFamily

from metrics_kit import samples, value
from nubes import __version__, metrics


def test_a_bucket_holds_values_up_to_and_including_its_bound() -> None:
    histogram = metrics.Histogram([0.1, 1.0, 10.0])
    for seconds in (0.05, 0.1, 0.5, 1.0, 20.0):
        histogram.observe(seconds)
    assert histogram.counts == [2, 2, 0, 1]
    assert histogram.count == 5
    assert histogram.sum == pytest.approx(21.65)
    assert histogram.cumulative() == [("0.1", 2), ("1.0", 4), ("10.0", 4), ("+Inf", 5)]


@pytest.mark.parametrize("bounds", [[1.0, 0.5], [1.0, 1.0], []])
def test_bounds_must_increase(bounds: list[float]) -> None:
    if not bounds:
        assert metrics.Histogram(bounds).cumulative() == [("+Inf", 0)]
        return
    with pytest.raises(ValueError, match="increasing"):
        metrics.Histogram(bounds)


def test_labelled_histograms_are_made_on_first_use() -> None:
    histograms = metrics.LabelledHistograms([1.0])
    histograms.observe(("GET", "/a"), 0.5)
    histograms.observe(("GET", "/a"), 2.0)
    histograms.observe(("POST", "/a"), 0.5)
    assert {labels: h.counts for labels, h in histograms.by_labels.items()} == {
        ("GET", "/a"): [1, 1],
        ("POST", "/a"): [1, 0],
    }


def test_a_histogram_family_in_the_text_format() -> None:
    histogram = metrics.Histogram([0.5])
    histogram.observe(0.25)
    histogram.observe(3.0)
    registry = metrics.registry("worker")
    family = metrics.histogram_family("nubes_x_seconds", "x", ["route"], {("/a",): histogram})
    registry.register(metrics.Families(lambda: [family]))
    text = metrics.exposition(registry)
    assert value(text, "nubes_x_seconds_bucket", route="/a", le="0.5") == 1
    assert value(text, "nubes_x_seconds_bucket", route="/a", le="+Inf") == 2
    assert value(text, "nubes_x_seconds_count", route="/a") == 2
    assert value(text, "nubes_x_seconds_sum", route="/a") == 3.25


def test_every_registry_has_build_info_and_process_metrics() -> None:
    text = metrics.exposition(metrics.registry("gateway"))
    assert value(text, "nubes_build_info", version=__version__, process="gateway") == 1
    names = {name for name, _ in samples(text)}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes"} <= names
    assert "process_open_fds" in names


def test_runtimes_have_registries_of_their_own() -> None:
    first, second = metrics.registry("api"), metrics.registry("worker")
    first.register(metrics.Families(lambda: [CounterMetricFamily("nubes_a", "a", value=1)]))
    assert value(metrics.exposition(first), "nubes_a_total") == 1
    assert value(metrics.exposition(second), "nubes_a_total") is None


def test_families_are_read_at_every_scrape() -> None:
    counts = {"n": 1}
    registry = metrics.registry("worker")
    registry.register(
        metrics.Families(lambda: [CounterMetricFamily("nubes_n", "n", value=counts["n"])])
    )
    assert value(metrics.exposition(registry), "nubes_n_total") == 1
    counts["n"] = 7
    assert value(metrics.exposition(registry), "nubes_n_total") == 7
