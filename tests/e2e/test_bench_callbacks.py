"""bench/callbacks.py keeps working: its quick mode runs every phase and prints every figure."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_the_callback_benchmark_runs_and_delivers_everything() -> None:
    done = subprocess.run(
        [sys.executable, "bench/callbacks.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    for figure in (
        r"1\. transform evaluations/s \(one core, cloud\.md example\): [\d,]+/s",
        r"2\. deliveries/s, JSONata to a local receiver \(2,000\): [\d,]+/s",
        r"3\. healthy callback's deliveries/s beside a hanging one: [\d,]+/s",
    ):
        line = re.search(figure + r".*(PASS|MISS)$", out, re.MULTILINE)
        assert line is not None, f"no figure {figure}:\n{out}"
    assert re.search(r"^errors \(deliveries not succeeded\): 0$", out, re.MULTILINE), out
