"""Two CPU processes (DDP, gloo) with gradient accumulation: token-weighted loss, exact per-rank resume."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from helpers.training import tiny_train_config, write_processed

from twin.errors import TwinError

REPO = Path(__file__).resolve().parents[1]
# 32-true: the comparisons below are about weighting and RNG, not bf16 rounding.
DDP = {"devices": 2, "strategy": "ddp", "precision": "32-true", "num_threads": 1}


pytestmark = pytest.mark.slow  # trains in several processes


def _rows(out: Path) -> list[dict]:
    with (out / "runs" / "r" / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def _adapter(out: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(out / "adapters" / "r" / "adapter_model.safetensors")


def _assert_same_adapter(a: Path, b: Path, atol: float) -> None:
    import torch

    wa, wb = _adapter(a), _adapter(b)
    assert wa.keys() == wb.keys() and wa
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=atol), (k, (wa[k] - wb[k]).abs().max())


@pytest.mark.slow
def test_ddp_from_the_cli_follows_the_single_process_loss_curve(
    tiny_base: Path, processed_dir: Path, tmp_path: Path
) -> None:
    """`twin train --devices 2 --strategy ddp` with 2 accumulated micro-batches per process sees the same
    examples per optimizer step as 1 process with 4, so with every reply token weighted alike the runs
    agree to float rounding: loss within 1e-4 relative, adapter weights within 1e-5. Weighting per
    process (each rank's own token count) misses both."""
    import json
    import os
    import subprocess
    import sys

    from twin.train.loop import train

    kw = {
        "max_steps": 3,
        "batch_size": 32,
        "micro_batch_size": 8,
        "lora": {"dropout": 0.0},
        "optim": {"lr": 1e-2},
    }
    one = train(tiny_train_config(tiny_base, processed_dir, tmp_path / "one", run="r", **kw))
    sets = [
        "out_dir=" + str(tmp_path / "two"),
        "batch_size=32",
        "micro_batch_size=8",
        "lora.dropout=0",
        "optim.lr=1e-2",
        "precision=32-true",
        "num_threads=1",
        "eval.every_steps=2",
        "checkpoint_every_steps=2",
    ]
    cmd = [sys.executable, "-m", "twin.cli", "train", "--config", str(REPO / "pipelines" / "tiny.yaml"),
           "--base", str(tiny_base), "--data", str(processed_dir), "--run", "r", "--max-steps", "3",
           "--devices", "2", "--strategy", "ddp", *(x for kv in sets for x in ("--set", kv))]  # fmt: skip
    env = {
        **os.environ,
        "OMP_WAIT_POLICY": "PASSIVE",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
    }
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "trained 3 steps" in proc.stdout and "2 processes" in proc.stdout + proc.stderr
    meta = json.loads((tmp_path / "two" / "adapters" / "r" / "twin.json").read_text())
    assert meta["train"]["devices"] == 2 and meta["train"]["strategy"] == "ddp"
    r1, r2 = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    assert [r["step"] for r in r2] == ["1", "2", "3"] and r2[1]["val_loss"] and r2[2]["val_loss"]
    # 96 examples / 8 per micro-batch = 12 micro-batches: 6 per process, 2 per step -> 3 steps = 1 epoch.
    assert float(r2[-1]["epoch"]) == pytest.approx(1.0)
    for a, b in zip(r1, r2, strict=True):
        assert float(b["train_loss"]) == pytest.approx(float(a["train_loss"]), rel=1e-4)
    assert meta["metrics"]["val_loss"] == pytest.approx(one["val_loss"], rel=1e-4)
    assert meta["metrics"]["tokens"] == one["tokens"]  # real tokens of both processes, counted once each
    _assert_same_adapter(tmp_path / "one", tmp_path / "two", atol=1e-5)


@pytest.mark.slow
def test_ddp_resume_gives_each_process_its_own_rng(
    tiny_base: Path, processed_dir: Path, tmp_path: Path
) -> None:
    """LoRA dropout draws from each process's RNG; a resumed 2+2 steps equals 4 uninterrupted steps."""
    import torch

    from twin.train.loop import train

    kw = {
        **DDP, "batch_size": 16, "micro_batch_size": 4, "lora": {"dropout": 0.3},
        "schedule": {"name": "constant"}, "optim": {"lr": 1e-2},
    }  # fmt: skip
    train(tiny_train_config(tiny_base, processed_dir, tmp_path / "a", run="r", max_steps=4, **kw))
    train(tiny_train_config(tiny_base, processed_dir, tmp_path / "b", run="r", max_steps=2, **kw))
    rng = torch.load(tmp_path / "b" / "runs" / "r" / "state.ckpt", weights_only=False)["rng"]
    assert len(rng) == 2 and not torch.equal(rng[0]["torch"], rng[1]["torch"])  # the ranks did diverge
    cfg_b = tiny_train_config(tiny_base, processed_dir, tmp_path / "b", run="r", max_steps=4, **kw)
    assert train(cfg_b, resume=True)["steps"] == 4
    ra, rb = _rows(tmp_path / "a"), _rows(tmp_path / "b")
    assert [r["step"] for r in rb] == ["1", "2", "3", "4"]
    for x, y in zip(ra, rb, strict=True):
        assert float(y["train_loss"]) == pytest.approx(float(x["train_loss"]), rel=1e-6)
    _assert_same_adapter(tmp_path / "a", tmp_path / "b", atol=1e-7)

    # Settings that decide the data order are refused on --resume, before any process starts.
    def refused(match: str, data: Path = processed_dir, **over) -> None:
        cfg = tiny_train_config(tiny_base, data, tmp_path / "b", run="r", **(kw | over))
        with pytest.raises(TwinError, match=match) as e:
            train(cfg, resume=True)
        assert "\n" not in str(e.value)

    refused(
        r"state.ckpt: micro_batch_size was 4 and is now 2; a resumed run must keep it", micro_batch_size=2
    )
    refused(r"batch_size was 16 and is now 32", batch_size=32)
    refused(r"seed was 42 and is now 7", seed=7)
    refused(r"devices was 2 and is now 1", devices=1, strategy="auto")
    refused(r"data \(.*train.jsonl\) is not the one", data=write_processed(tmp_path / "other", seed=1))
