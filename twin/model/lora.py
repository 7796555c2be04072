"""LoRA / DoRA adapters through peft, with per-architecture target modules and LoRA+ param groups."""

from __future__ import annotations

from typing import Any

from twin.errors import TwinError

# Where the attention projections live, per `config.model_type`. Falcon fuses Q, K and V into one
# `query_key_value` Linear (the reference recipe's target); Llama-like models keep them apart.
TARGETS: dict[str, list[str]] = {
    "falcon": ["query_key_value"],
    "llama": ["q_proj", "v_proj"],
    "mistral": ["q_proj", "v_proj"],
    "mixtral": ["q_proj", "v_proj"],
    "qwen2": ["q_proj", "v_proj"],
    "qwen3": ["q_proj", "v_proj"],
    "gemma": ["q_proj", "v_proj"],
    "gemma2": ["q_proj", "v_proj"],
    "phi3": ["qkv_proj"],
    "gpt_neox": ["query_key_value"],
    "gpt2": ["c_attn"],
}


def target_modules_for(model_type: str, choice: str | list[str] = "auto") -> str | list[str]:
    """Resolve ``auto`` to the architecture's attention projections; pass ``all-linear``/lists through."""
    if isinstance(choice, list):
        if not choice:
            raise TwinError("lora.target_modules: empty list; use auto, all-linear or module names")
        return list(choice)
    if choice == "all-linear":
        return "all-linear"
    if choice != "auto":
        raise TwinError(f"lora.target_modules: {choice!r} is unknown; use auto, all-linear or a list")
    if model_type in TARGETS:
        return list(TARGETS[model_type])
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_TARGETS

    if model_type in PEFT_TARGETS:
        return list(PEFT_TARGETS[model_type])
    raise TwinError(
        f"lora.target_modules: no default for model type {model_type!r}; set it explicitly, "
        "e.g. --set 'lora.target_modules=[q_proj,v_proj]' or --set lora.target_modules=all-linear"
    )


def apply_lora(model: Any, lora: Any) -> Any:
    """Wrap ``model`` in a peft model with fresh adapters per ``lora`` (a twin LoraConfig)."""
    from peft import LoraConfig, get_peft_model

    targets = target_modules_for(model.config.model_type, lora.target_modules)
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    if isinstance(targets, list) and not set(targets) & names:
        raise TwinError(
            f"lora.target_modules: none of {targets} exist in this {model.config.model_type} model; "
            "use auto or all-linear"
        )
    peft_cfg = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        bias=lora.bias,
        use_dora=lora.method == "dora",
        task_type="CAUSAL_LM",
    )
    import warnings

    with warnings.catch_warnings():  # peft calls a transformers API deprecated in 5.x; not ours to fix
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, peft_cfg)


def param_groups(model: Any, lr: float, weight_decay: float, loraplus_lr_ratio: float | None) -> list[dict]:
    """AdamW groups over the trainable params. With LoRA+, the B matrices get ``lr * ratio``."""
    a_like: list[Any] = []
    b: list[Any] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (b if loraplus_lr_ratio and "lora_B" in name else a_like).append(p)
    if not a_like and not b:
        raise TwinError("no trainable parameters after applying LoRA; check lora.target_modules")
    groups = []
    if a_like:
        groups.append({"params": a_like, "lr": lr, "weight_decay": weight_decay, "name": "lora"})
    if b:
        groups.append(
            {"params": b, "lr": lr * loraplus_lr_ratio, "weight_decay": weight_decay, "name": "lora_B"}
        )
    return groups
