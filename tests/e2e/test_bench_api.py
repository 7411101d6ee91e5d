"""bench/api.py keeps working: its quick mode seeds, serves, measures and prints every figure."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import require_service

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = (
    "GET /health (baseline)",
    "GET /v1/auth/me (baseline)",
    "latest 100 of a device",
    "page 50 of a group, offset",
    "page 50 of a group, cursor",
)


def test_the_api_benchmark_runs_without_errors() -> None:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    done = subprocess.run(
        [sys.executable, "bench/api.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    for scenario in SCENARIOS:
        for concurrency in (1, 4):
            line = re.search(rf"{re.escape(scenario)}\s+c={concurrency}\s+p50 .*", out)
            assert line is not None, f"no line for {scenario} at c={concurrency}:\n{out}"
            assert re.search(r"p99\s+[\d.]+ .* errors 0$", line.group(0)), line.group(0)
    assert re.search(r"target: latest 100 of a device, p99 < 20 ms at c=1: [\d.]+ ms", out), out
    assert re.search(r"^errors \(not 200, or not 100 messages\): 0$", out, re.MULTILINE), out
    assert "the same messages in 2/2 groups" in out, out
