"""What ``eval.sample_reply`` (one greedy reply at each validation) costs a tiny run.

    OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE python -m bench.bench_sample_reply [--reps 4]

1. Whole runs, on and off alternating: the tiny Falcon, synthetic chats (96 train / 16 val), 12
   steps, validation every 2 steps (6 validations, 6 sample replies); CPU seconds of ``train()``
   (the machine is shared: CPU time is steadier than wall time) and the val loss (must be equal).
2. One call each, on a fresh LoRA: a validation vs a sample reply, and a sample reply forced to run
   its whole 48 tokens (stop strings and EOS off): the worst case of a trained adapter.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _config(base: Path, data: Path, out: Path, on: bool):
    from twin.config import load_config
    from twin.train.config import TrainConfig

    over = {"base": str(base), "run": "r", "out_dir": str(out), "data": {"dir": str(data)}, "num_threads": 2,
            "precision": "32-true", "checkpoint_every_steps": 0, "max_steps": 12, "optim": {"lr": 1e-2},
            "eval": {"every_steps": 2, "sample_reply": on}}  # fmt: skip
    return load_config(TrainConfig, ROOT / "pipelines" / "tiny.yaml", over)


def _cpu(fn) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


def runs(base: Path, data: Path, work: Path, reps: int) -> None:
    from twin.train.loop import train

    train(_config(base, data, work / "warm", False))  # first-run costs (imports, caches) apart
    cpu: dict[bool, list[float]] = {True: [], False: []}
    for rep in range(reps):
        for on in (False, True):
            cfg = _config(base, data, work / f"{on}{rep}", on)
            t = time.process_time()
            m = train(cfg)
            cpu[on].append(time.process_time() - t)
            print(f"run {rep} sample_reply={on}: {cpu[on][-1]:.2f} CPU s, val loss {m['val_loss']}")
    off, on_ = statistics.median(cpu[False]), statistics.median(cpu[True])
    print(f"median CPU s per 12-step run: off {off:.2f}, on {on_:.2f} ({100 * (on_ / off - 1):+.1f}%)")


def calls(base: Path, data: Path, work: Path) -> None:
    import twin.inference.generate as gen
    from twin.imports import import_fabric
    from twin.train.loop import load_data, load_model, validate
    from twin.train.sample import sample_prompt, sample_reply

    cfg = _config(base, data, work / "calls", True)
    fabric = import_fabric()(accelerator="cpu", devices=1, precision="32-true")
    d = load_data(cfg)
    model = load_model(fabric, cfg, 12)
    s = sample_prompt(model.peft, d.tokenizer, d.sample, d.template, d.budget.prompt_tokens, cfg)
    sample_reply(model.peft, d.tokenizer, s)  # warm-up
    val = [
        _cpu(lambda: validate(fabric, model.module, d.val, d.tokenizer.pad_token_id, cfg)) for _ in range(5)
    ]
    rep = [_cpu(lambda: sample_reply(model.peft, d.tokenizer, s)) for _ in range(5)]
    n = gen.generate(model.peft, d.tokenizer, s.prompt, s.params).completion_tokens
    gen.STOP_STRINGS = ()  # the worst case: all 48 tokens (read by Decoding at each call)
    full = replace(s.params, extra_stops=(), min_new_tokens=s.params.max_new_tokens)
    worst = [_cpu(lambda: gen.generate(model.peft, d.tokenizer, s.prompt, full)) for _ in range(3)]
    print(f"validation ({len(d.val)} examples): {statistics.median(val):.3f} CPU s; sample reply ({n} tokens): "
          f"{statistics.median(rep):.3f} CPU s; forced to {full.max_new_tokens} tokens: "
          f"{statistics.median(worst):.3f} CPU s")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=4)
    args = ap.parse_args()
    import torch

    from devkit.synthetic_chats import write_synthetic_processed
    from twin.model.tiny import build_tiny

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = build_tiny(work / "tiny-falcon", seed=0)
        data = write_synthetic_processed(work / "data", n_train=96, n_val=16)
        runs(base, data, work, args.reps)
        calls(base, data, work)


if __name__ == "__main__":
    main()
