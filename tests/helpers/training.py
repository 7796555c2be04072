"""Training inputs for tests: a prepare-style data dir and pipelines/tiny.yaml sized to train in seconds."""

from __future__ import annotations

from pathlib import Path


def write_processed(out: Path, n_train: int = 96, n_val: int = 16, seed: int = 0, stats: bool = True) -> Path:
    """A prepare-style output dir (train.jsonl, val.jsonl, stats.json) with synthetic chats."""
    from devkit.synthetic_chats import write_synthetic_processed

    return write_synthetic_processed(out, n_train=n_train, n_val=n_val, seed=seed, stats=stats)


def tiny_train_config(base: Path, data_dir: Path, out: Path, run: str = "t", **overrides):
    """pipelines/tiny.yaml pointed at test dirs, sized to train in seconds."""
    from twin.config import deep_merge, load_config
    from twin.train.config import TrainConfig

    defaults = {
        "base": str(base),
        "run": run,
        "out_dir": str(out),
        "data": {"dir": str(data_dir)},
        "num_threads": 2,
        "precision": "32-true",  # the same numbers on every CPU (auto depends on the machine)
        "checkpoint_every_steps": 0,
        "eval": {"every_steps": 0},
    }
    over = deep_merge(defaults, overrides)
    return load_config(TrainConfig, Path(__file__).resolve().parents[2] / "pipelines" / "tiny.yaml", over)
