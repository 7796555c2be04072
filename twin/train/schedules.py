"""Learning-rate schedules: transformers' implementations, configured from ``schedule:`` in the YAML."""

from __future__ import annotations

import math
from typing import Any


def warmup_steps(total_steps: int, warmup_ratio: float) -> int:
    return math.ceil(total_steps * warmup_ratio) if warmup_ratio > 0 else 0


def build_scheduler(schedule: Any, optimizer: Any, total_steps: int) -> Any:
    """A per-optimizer-step LambdaLR for ``schedule.name`` with ``warmup_ratio`` of ``total_steps``.

    ``constant`` ignores warmup (use ``constant_with_warmup`` for that); every other name warms up
    linearly from 0 over the warmup steps first.
    """
    from transformers import get_scheduler

    warm = warmup_steps(total_steps, schedule.warmup_ratio)
    extra: dict[str, Any] = {}
    if schedule.name == "cosine_with_restarts":
        extra["num_cycles"] = schedule.num_cycles
    elif schedule.name == "polynomial":
        extra = {"power": schedule.power, "lr_end": schedule.lr_end}
    return get_scheduler(
        schedule.name,
        optimizer,
        num_warmup_steps=None if schedule.name == "constant" else warm,
        num_training_steps=total_steps,
        scheduler_specific_kwargs=extra or None,
    )
