"""Before any training process starts: the cheap checks, the precision, the Fabric.

``preflight`` fails in seconds with one clear line (no torch imported for most checks), so a wrong
path or an impossible setting never costs a model load; ``resolve_precision`` picks ``precision:
auto`` for this machine; ``setup`` builds the Fabric (strategy, devices) that runs the loop.
Shared by SFT (:mod:`twin.train.loop`) and the preference stage (:mod:`twin.train.prefs`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from twin.errors import TwinError
from twin.train.config import TrainConfig

log = logging.getLogger(__name__)


def preflight(cfg: TrainConfig) -> None:
    """Every cheap check, before torch is even imported: each failure is one clear line."""
    from twin.checks import check_run_name
    from twin.model.load import check_base_dir, check_quantize

    check_run_name(cfg.run)
    check_quantize(cfg.quantize)
    if cfg.quantize and cfg.strategy == "fsdp":
        raise TwinError("quantize with strategy fsdp is not supported; use ddp (or a single device)")
    if cfg.strategy == "fsdp" or cfg.accelerator == "cuda" or cfg.precision.startswith("16-"):
        import torch

        if not torch.cuda.is_available():
            what = (
                "strategy fsdp"
                if cfg.strategy == "fsdp"
                else "accelerator cuda"
                if cfg.accelerator == "cuda"
                else f"precision {cfg.precision}"
            )
            raise TwinError(
                f"{what} needs a CUDA GPU and none is available; on CPU use --strategy ddp and "
                "precision bf16-true or 32-true"
            )
    check_base_dir(cfg.base)
    data = Path(cfg.data.dir)
    if not data.is_dir():
        raise TwinError(f"{data}: data directory not found; run `twin prepare` first (or pass --data DIR)")
    train_file = data / cfg.data.train_file
    if not train_file.is_file():
        raise TwinError(f"{train_file}: not found; run `twin prepare` first (or pass --data DIR)")
    if train_file.stat().st_size == 0:
        raise TwinError(f"{train_file}: empty, no examples to train on; check `twin prepare`'s summary")


def resolve_precision(cfg: TrainConfig) -> dict:
    """``precision: auto`` -> what suits this machine (``model/precision.py``); logged, and kept for twin.json."""
    if cfg.precision != "auto":
        return {"precision": cfg.precision, "reason": "set in the config"}
    from twin.model.precision import choose_precision

    choice = choose_precision(cfg.base, cfg.accelerator, cfg.devices)
    (log.warning if choice.slow else log.info)("precision auto -> %s: %s", choice.precision, choice.reason)
    return {"precision": choice.precision, "reason": f"auto: {choice.reason}"}


def setup(cfg: TrainConfig) -> Any:
    """The Fabric that runs ``main`` on every device."""
    from twin.imports import cache_transformers_index, import_fabric

    cache_transformers_index()  # before transformers' first import (twin/imports.py)
    Fabric = import_fabric()  # noqa: N806  # without lightning's unused extras (twin/imports.py)
    return Fabric(
        accelerator=cfg.accelerator, devices=cfg.devices, strategy=_strategy(cfg), precision=cfg.precision
    )


def _strategy(cfg: TrainConfig) -> Any:
    if cfg.devices == 1 and cfg.strategy != "fsdp":
        return "auto"
    if cfg.strategy == "fsdp":
        import functools

        from lightning.fabric.strategies import FSDPStrategy
        from torch.distributed.fsdp.wrap import lambda_auto_wrap_policy

        blocks = _decoder_blocks(cfg.base)  # shard per decoder block: the model's `_no_split_modules`
        policy = functools.partial(lambda_auto_wrap_policy, lambda_fn=lambda m: type(m).__name__ in blocks)
        return FSDPStrategy(auto_wrap_policy=policy, state_dict_type="full", use_orig_params=True)
    from lightning.fabric.strategies import DDPStrategy

    # Spawned workers (not re-executed scripts) so `train()` behaves the same from any caller.
    return DDPStrategy(start_method="spawn")


def _decoder_blocks(base: str) -> set[str]:
    """Class names of the base's decoder blocks, read from its model class without loading weights."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    model_class = MODEL_FOR_CAUSAL_LM_MAPPING[type(AutoConfig.from_pretrained(base))]
    return set(getattr(model_class, "_no_split_modules", None) or [])
