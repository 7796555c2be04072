"""LoRA / DoRA adapters through peft, with per-architecture target modules and LoRA+ param groups."""

from __future__ import annotations

from typing import Any

from twin.errors import TwinError

# Per `config.model_type`. Falcon fuses Q, K and V into one `query_key_value` Linear (the reference
# recipe's target, as in the Falcon-7B LoRA article this project follows). Llama-, Mistral-, Qwen- and
# Gemma-shaped models get every linear layer of attention and MLP, the families' own fine-tuning
# practice (Meta's llama-recipes, Qwen's LoRA examples; the QLoRA paper found LoRA on all linear
# layers of the block needed to match full fine-tuning, q/v alone is not). The adapter stays small:
# 42M parameters at r=16 on Llama-3.1-8B, 0.5% of the base.
_ATTN_MLP = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
TARGETS: dict[str, list[str]] = {
    "falcon": ["query_key_value"],
    "llama": _ATTN_MLP,
    "mistral": _ATTN_MLP,
    "mixtral": ["q_proj", "k_proj", "v_proj", "o_proj"],  # its MLPs are experts (w1/w2/w3)
    "qwen2": _ATTN_MLP,
    "qwen3": _ATTN_MLP,
    "gemma": _ATTN_MLP,
    "gemma2": _ATTN_MLP,
    "phi3": ["qkv_proj"],
    "gpt_neox": ["query_key_value"],
    "gpt2": ["c_attn"],
}


def linear_layer_names(model: Any) -> list[str]:
    """Names (last component) of the model's Linear layers below the head: what LoRA can target."""
    import torch

    names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    names.discard("lm_head")
    return sorted(names)


def target_modules_for(
    model_type: str, choice: str | list[str] = "auto", linear_names: list[str] | None = None
) -> str | list[str]:
    """Resolve ``auto`` to the architecture's targets; pass ``all-linear``/lists through.

    ``linear_names`` (:func:`linear_layer_names`) are listed in the error when the type has no default.
    """
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
    example = ",".join(linear_names[:2]) if linear_names else "q_proj,v_proj"
    which = f"choose from its linear layers ({', '.join(linear_names)})" if linear_names else "set it"
    raise TwinError(
        f"lora.target_modules: no default for model type {model_type!r}; {which}, "
        f"e.g. --set 'lora.target_modules=[{example}]' or --set lora.target_modules=all-linear"
    )


def apply_lora(model: Any, lora: Any) -> Any:
    """Wrap ``model`` in a peft model with fresh adapters per ``lora`` (a twin LoraConfig)."""
    from peft import LoraConfig

    linear = linear_layer_names(model)
    targets = target_modules_for(model.config.model_type, lora.target_modules, linear)
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    if isinstance(targets, list) and not set(targets) & names:
        raise TwinError(
            f"lora.target_modules: none of {targets} exist in this {model.config.model_type} model; "
            f"choose from its linear layers: {', '.join(linear)}; or use auto or all-linear"
        )
    peft_cfg = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=targets,
        bias=lora.bias,
        use_dora=lora.method == "dora",
        task_type="CAUSAL_LM",
        trainable_token_indices=token_rows(model) if lora.train_embeddings else None,
    )
    return peft_model(model, peft_cfg)


def peft_model(model: Any, peft_cfg: Any) -> Any:
    """peft's ``get_peft_model``, without the FutureWarning of the transformers API (deprecated in
    5.x) that peft calls: not ours to fix, and not the owner's to act on."""
    import warnings

    from peft import get_peft_model

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, peft_cfg)


def token_rows(model: Any) -> dict[str, list[int]]:
    """Every row of the input embedding, and of the output head when it is not tied to it (Llama,
    Qwen2): ``{module name: rows}`` for peft's ``trainable_token_indices`` (a tied head follows the
    embedding's rows by itself)."""
    emb = model.get_input_embeddings()
    rows = {_module_name(model, emb): list(range(emb.num_embeddings))}
    head = model.get_output_embeddings()
    if head is not None and head.weight is not emb.weight:
        rows[_module_name(model, head)] = list(range(head.out_features))
    return rows


def _module_name(model: Any, module: Any) -> str:
    return next(n for n, m in model.named_modules() if m is module).rsplit(".", 1)[-1]


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
