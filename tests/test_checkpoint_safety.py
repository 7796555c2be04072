"""`twin train --resume` reads state.ckpt as data only: a crafted pickle runs nothing, and a truncated,
empty or garbage checkpoint is one line and exit 2 (issue 19, section 4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Builds each bad state.ckpt, then runs the real `twin train --resume` on it, in one interpreter.
DRIVER = r"""
import contextlib, io, json, os, sys
import torch
from twin.cli import main

base, data, out, marker = sys.argv[1:5]

class Evil:
    def __reduce__(self):
        return (os.system, (f"touch {marker}",))

def write(kind, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "pickle":
        torch.save({"progress": {}, "data": {}, "rng": [], "config": Evil()}, path)
    elif kind == "truncated":
        torch.save({"progress": {"step": 1}, "data": {}, "rng": [torch.zeros(4096)]}, path)
        path.write_bytes(path.read_bytes()[:1000])
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        path.write_bytes(b"not a checkpoint at all\n" * 50)

from pathlib import Path
result = {}
for kind in ("pickle", "truncated", "empty", "garbage"):
    run = f"bad-{kind}"
    write(kind, Path(out) / "runs" / run / "state.ckpt")
    sys.argv = ["twin", "train", "--resume", "--base", base, "--data", data, "--run", run,
                "--set", f"out_dir={out}", "--set", "precision=32-true"]
    err, code = io.StringIO(), 0
    with contextlib.redirect_stderr(err):
        try:
            main()
        except SystemExit as e:
            code = e.code
    result[kind] = {"code": code, "stderr": err.getvalue()}
print("RESULT", json.dumps(result))
"""


@pytest.fixture(scope="module")
def results(tiny_base, processed_dir, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("ckpt")
    marker = out / "marker"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [str(tiny_base), str(processed_dir), str(out), str(marker)]
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, *args], capture_output=True, text=True, env=env, timeout=300
    )
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line, proc.stdout + proc.stderr
    return {"marker": marker.exists(), **json.loads(line[7:])}


def test_a_crafted_checkpoint_runs_no_code(results):
    assert results["marker"] is False  # torch.load(weights_only=False) would have created it


@pytest.mark.parametrize("kind", ["pickle", "truncated", "empty", "garbage"])
def test_a_bad_checkpoint_is_one_line_and_exit_2(results, kind):
    got = results[kind]
    lines = [ln for ln in got["stderr"].splitlines() if ln.strip()]
    assert got["code"] == 2, got["stderr"]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "state.ckpt" in lines[0], got["stderr"]
    assert "Traceback" not in got["stderr"]
