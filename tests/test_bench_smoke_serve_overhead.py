"""bench/serve_overhead.py starts and reports (smallest size; the figures themselves are in RESULTS.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.slow  # runs the benchmark (and a twin serve) as subprocesses


def test_serve_overhead_quick(tmp_path: Path) -> None:
    work = tmp_path / "work"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.serve_overhead", "--quick", "--base", "llama", "--clients", "1,2", "--work", str(work)],
        cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| /reply/stream | 2 |" in proc.stdout
    report = json.loads((work / "serve_overhead-llama.json").read_text())
    assert report["same_text"]
    table = report["table"]
    assert {f"{p}|{c}" for p in ("in process", "/reply", "/reply/stream") for c in (1, 2)} == set(table)
    assert all(row["tokens_per_s"] > 0 for row in table.values())
    assert all("overhead_ms" in table[f"{p}|{c}"] for p in ("/reply", "/reply/stream") for c in (1, 2))
