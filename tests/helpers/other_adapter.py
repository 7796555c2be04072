"""A second adapter on the tiny base for serving tests (several adapters in one engine)."""

from __future__ import annotations

import json
from pathlib import Path


def make_other_adapter(base: Path, like: Path, out: Path) -> Path:
    """A second, clearly different adapter: random (non-zero) LoRA weights on the same base."""
    import torch
    from peft import LoraConfig, get_peft_model

    from twin.adapter_meta import read_meta
    from twin.model.load import load_base

    cfg = json.loads((like / "adapter_config.json").read_text())
    model, _ = load_base(base)
    torch.manual_seed(123)
    lora = LoraConfig(
        r=4,
        lora_alpha=64,
        target_modules=cfg["target_modules"],
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    get_peft_model(model, lora).save_pretrained(out)
    read_meta(like).write(out)  # the same record: same base, template and budget
    return out
