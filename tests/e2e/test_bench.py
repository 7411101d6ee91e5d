"""`make bench` keeps working: its quick mode runs every phase and prints every figure
(the gateway alone with the link state shared in Redis too, as docs/benchmarks.md quotes).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require_service

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]


def test_the_benchmark_runs_and_loses_nothing() -> None:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_service("RabbitMQ", "127.0.0.1", 5672)
    require_service("Redis", "127.0.0.1", 6379)
    done = subprocess.run(
        [sys.executable, "bench/gateway.py", "--quick", "--shared-state"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for phase in (
        "1. raw UDP echo baseline",
        "2. gateway alone",
        "2. gateway alone, link state shared in Redis",
        "3. ack latency",
        "4a. end to end",
        "4b. end to end",
    ):
        assert phase in out, out
    assert re.search(r"lost: 0\b", out), out
    assert re.search(r"shared in Redis, answered .*, 0 resets\)", out), out
    rate = re.search(r"2\. gateway alone, answered single-fragment uplinks: ([\d,]+)/s", out)
    assert rate is not None
    assert int(rate.group(1).replace(",", "")) > 0


def test_the_partitions_benchmark_runs_and_loses_nothing() -> None:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    sizes = ["--insert", "2000", "--warmup", "500", "--rounds", "2", "--convert", "5000"]
    sizes += ["--before", "1", "--month", "2000", "--kept", "500", "--time-limit", "120"]
    done = subprocess.run(
        [sys.executable, "bench/partitions.py", *sizes],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for name in ("plain", "partitioned"):
        rate = re.search(rf"^  {name} +([\d,]+) rows/s", out, re.MULTILINE)
        assert rate is not None, out
        assert int(rate.group(1).replace(",", "")) > 0
    assert "converted True" in out, out
    assert re.search(r"errors 0\b", out), out
    assert re.search(r"lost: 0\b", out), out
    assert "dropped messages_2026_03" in out, out
