"""`twin train` imports only what training uses, and tells how long the first step took to come."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Never needed by a LoRA run without quantization; each costs seconds of start-up (matplotlib
# even builds a font cache), bitsandbytes also looks for kernels on the hub.
# scipy: transformers imports it only for its object-detection losses (twin/imports.py).
DENY = (
    "matplotlib",
    "torchmetrics",
    "sklearn",
    "bm25s",
    "streamlit",
    "bitsandbytes",
    "lightning.pytorch",
    "scipy",
)

# Runs the real CLI in a fresh interpreter and records, at exit, every module it had imported.
CLI = """
import atexit, json, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write(json.dumps([k for k, v in sys.modules.items() if v is not None])))
sys.argv[0] = "twin"
from twin.cli import main
main()
"""


@pytest.mark.slow
def test_twin_train_imports_nothing_on_the_deny_list(
    tiny_base: Path, processed_dir: Path, tmp_path: Path
) -> None:
    mods = tmp_path / "modules.json"
    cmd = [sys.executable, "-c", CLI, str(mods), "train", "--base", str(tiny_base), "--data", str(processed_dir),
           "--run", "imports", "--max-steps", "2", "--set", f"out_dir={tmp_path / 'out'}",
           "--set", "precision=32-true", "--set", "num_threads=2"]  # fmt: skip
    xdg = tmp_path / "xdg"  # where transformers' index of its model files is kept between runs
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "COLUMNS": "200",
           "XDG_CACHE_HOME": str(xdg)}  # fmt: skip
    # One stream, as a terminal shows it: the progress bar and the log lines interleave.
    proc = subprocess.run(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-2000:]
    loaded = set(json.loads(mods.read_text()))
    assert {"torch", "peft", "lightning.fabric"} <= loaded  # it did train, through Fabric and peft
    assert (tmp_path / "out" / "adapters" / "imports" / "adapter_model.safetensors").is_file()
    assert sorted(m for m in loaded for d in DENY if m == d or m.startswith(d + ".")) == []
    # the line as the terminal leaves it (what follows the last carriage return): the log line
    # alone, not the progress bar with the log line glued to its end
    line = next(ln for ln in proc.stdout.split("\n") if "first optimizer step at" in ln)
    assert "train imports" not in line.rsplit("\r", 1)[-1]
    assert (xdg / "twin" / "transformers-index.json").is_file()


def test_omp_wait_policy_follows_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    from twin.model.load import choose_omp_wait

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert "idle" in choose_omp_wait(load=0.4, cores=2)
    assert "OMP_WAIT_POLICY" not in os.environ  # OpenMP's own default on an idle machine
    # busy with niced jobs only: twin's threads get the cores anyway, spinning stays
    assert "niced" in choose_omp_wait(load=3.0, cores=2, rivals=0.3)
    assert "OMP_WAIT_POLICY" not in os.environ
    assert "busy" in choose_omp_wait(load=3.0, cores=2, rivals=1.5)
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's setting is kept
    assert "set outside twin" in choose_omp_wait(load=9.0, cores=2)
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_rivals_count_niced_time_only_when_twin_is_niced_too() -> None:
    from twin.model.load import cpu_rivals

    # 100 ticks on 2 cores: 20 user, 50 nice, 10 system, 20 idle
    before = "cpu  1000 5000 300 9000 10 0 0 0 0 0"
    after = "cpu  1020 5050 310 9020 10 0 0 0 0 0"
    assert cpu_rivals(before, after, 2, niced=False) == pytest.approx(0.6)  # (20 + 10) / 100 x 2 cores
    assert cpu_rivals(before, after, 2, niced=True) == pytest.approx(1.6)
    assert cpu_rivals(before, before, 2, niced=False) == 0.0
