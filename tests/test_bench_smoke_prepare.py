"""bench/bench_prepare.py starts and reports (smallest size; the figures themselves are in RESULTS.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.slow  # runs the benchmark as a subprocess


def test_bench_prepare_quick(tmp_path: Path) -> None:
    out = tmp_path / "prepare.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_prepare", "--quick", "--out", str(out), "--cache", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "messages/s" in proc.stdout and "| scrub |" in proc.stdout
    report = json.loads(out.read_text())
    assert report["messages"] == 20_000 and report["examples"] > 1000 and report["pii_hits"] > 100
    assert report["messages_per_s"] > 0 and report["peak_rss"]["parent_mb"] > 0
    assert abs(sum(p["share"] for p in report["profile_single_process"]["phases"].values()) - 1) < 0.01
