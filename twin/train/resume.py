"""What ``--resume`` needs beyond the weights: the settings it must keep, and every process's RNG.

A checkpoint holds one RNG state per process (python, numpy, torch CPU, CUDA when present), so with
DDP each rank continues with its own draws (LoRA dropout), not rank 0's. ``check_resume`` runs
before any process starts, so a changed setting is one line, not a traceback from every worker.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from twin.errors import TwinError
from twin.train.config import TrainConfig

# Changing these on --resume changes which examples a step sees, so the run could not continue exactly.
RESUME_FIXED = (
    "batch_size",
    "micro_batch_size",
    "devices",
    "seed",
    "data.max_seq_length",
    "data.reply_tokens",
    "data.template",
    "data.group_by_length",
    "data.length_pool",
)


def data_identity(cfg: TrainConfig, train_digest: str) -> dict:
    """What a checkpoint must have been trained on to be continued: the data and the base."""
    from twin.model.load import base_fingerprint

    return {"train": train_digest, "base": base_fingerprint(cfg.base)}


def check_resume(cfg: TrainConfig, state_path: Path) -> None:
    """Before launching: a checkpoint is continued only with the settings, data and base it was made with."""

    from twin.train.data import file_digest

    if not state_path.is_file():
        return
    saved = load_state(state_path)
    old_cfg, new_cfg = _flat(saved.get("config", {})), _flat(cfg.model_dump(mode="json"))
    for key in RESUME_FIXED:
        if old_cfg.get(key) != new_cfg.get(key):
            raise TwinError(
                f"{state_path}: {key} was {old_cfg.get(key)!r} and is now {new_cfg.get(key)!r}; a resumed "
                "run must keep it (it decides the data order): set it back, or drop --resume (or use a new --run)"
            )
    train_file = Path(cfg.data.dir) / cfg.data.train_file
    now = data_identity(cfg, file_digest(train_file))
    for key, what in (("train", f"data ({train_file})"), ("base", f"base ({cfg.base})")):
        if key in saved["data"] and saved["data"][key] != now[key]:  # checkpoints before v2: no "base"
            raise TwinError(
                f"{state_path}: {what} is not the one this checkpoint was trained on; resume with the same "
                "one, or drop --resume (or use a new --run)"
            )


def load_state(state_path: Path, *, mmap: bool = True) -> dict:
    """A ``state.ckpt``, loaded as data only (``weights_only``: tensors and plain types, never code).

    A truncated, empty or foreign file (or one holding pickled objects) is one line, not a traceback.
    """
    import pickle

    import torch

    try:
        saved = torch.load(state_path, map_location="cpu", weights_only=True, mmap=mmap)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, AttributeError) as e:
        raise TwinError(
            f"{state_path}: not a checkpoint twin train can read ({_first_line(e)}); it may be truncated or "
            "not written by twin: delete it (and drop --resume) or use a new --run"
        ) from None
    if not isinstance(saved, dict) or not {"progress", "data", "rng"} <= set(saved):
        raise TwinError(
            f"{state_path}: not a twin train checkpoint (fields missing); delete it (and drop --resume) "
            "or use a new --run"
        )
    return saved


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:120]}" if text else type(e).__name__


def rng_state() -> dict:
    """Every RNG this process draws from: python, numpy, torch CPU and (when present) CUDA."""
    import numpy as np
    import torch

    name, keys, pos, has_gauss, gauss = np.random.get_state()
    numpy = (name, keys.tolist(), pos, has_gauss, gauss)  # plain types: checkpoints load weights_only
    state = {"python": random.getstate(), "numpy": numpy, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    if "numpy" in state:
        name, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def gather(fabric: Any, obj: Any) -> list:
    """``obj`` of every process, by rank (on every process)."""
    if fabric.world_size == 1:
        return [obj]
    import torch.distributed as dist

    out: list = [None] * fabric.world_size
    dist.all_gather_object(out, obj)
    return out


def _flat(d: dict, prefix: str = "") -> dict:
    out: dict = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def changed_keys(old: dict, new: dict) -> list[str]:
    a, b = _flat(old), _flat(new)
    return [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
