"""bench/bench_serve.py starts and reports (smallest size; the figures themselves are in RESULTS.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.slow  # runs the benchmark as a subprocess


def test_bench_serve_quick(tmp_path: Path, tiny_base: Path) -> None:
    out = tmp_path / "serve.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_serve", "--quick", "--tokens", "4", "--out", str(out), "--work", str(tmp_path / "work"), "--base", str(tiny_base)],
        cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| twin serve, POST /reply | 2 |" in proc.stdout
    report = json.loads(out.read_text())
    assert [r["clients"] for r in report["server"]] == [1, 2]
    assert all(r["tokens_per_s"] > 0 and r["refused_503"] == 0 for r in report["server"][1:])
    assert set(report["overhead_1_client"]) == set(report["in_process"])
    # The documented bound: Falcon-7B bf16 on an A100 40GB cannot decode faster than ~112 tokens/s.
    bound = report["falcon7b_a100_decode_bound_tokens_per_s"]["A100 40GB (HBM2, 1555 GB/s)"]
    assert 100 < bound["bf16"] < 125 and bound["nf4"] > bound["int8"] > bound["bf16"]
