"""bench/bench_train.py starts and reports (smallest size; the figures themselves are in RESULTS.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.slow  # runs the benchmark as a subprocess


def test_bench_train_quick(tmp_path: Path) -> None:
    out = tmp_path / "train.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_train", "--quick", "--out", str(out)],
        cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| grouped, 2 threads |" in proc.stdout
    report = json.loads(out.read_text())
    rows = {r["variant"]: r for r in report["tiny"]}
    assert all(r["tokens_per_s"] > 0 for r in rows.values())
    assert rows["grouped, 2 threads"]["padding_fraction"] < rows["ungrouped, 2 threads"]["padding_fraction"]
    # The documented budget goals: LoRA bf16 + checkpointing < 24 GB, QLoRA nf4 < 10 GB.
    budget = report["falcon7b_budget_gib"]
    assert budget["LoRA bf16, grad checkpointing"]["total"] < 24
    assert budget["QLoRA nf4, grad checkpointing"]["total"] < 10
