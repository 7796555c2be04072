"""Adapter helpers for tests and benchmarks: an instant random LoRA adapter, and edited copies."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from twin.adapter_meta import AdapterMeta


def write_random_lora(base: Path, out: Path, *, seed: int = 1, r: int = 4, alpha: int = 8) -> Path:
    """A LoRA adapter dir on ``base`` with random, non-zero B (so it really changes the outputs).

    Untrained, hence instant: PEFT files, the tokenizer, and a ``twin.json`` (:func:`untrained_meta`).
    """
    import torch
    from peft import LoraConfig

    from twin.model.load import load_base
    from twin.model.lora import peft_model

    model, tok = load_base(base)
    torch.manual_seed(seed)
    cfg = LoraConfig(r=r, lora_alpha=alpha, target_modules=_attention_targets(base), init_lora_weights=False,
                     task_type="CAUSAL_LM")  # fmt: skip
    peft_model(model, cfg).save_pretrained(out)
    tok.save_pretrained(out)
    untrained_meta(base).write(out)
    return out


def untrained_meta(base: Path, template: str = "plain-v1") -> AdapterMeta:
    """The twin.json of an untrained adapter on ``base``, shaped like `twin train`'s (base path and
    fingerprint, template, prepare's context settings, train settings; no budget, no memory)."""
    from twin.adapter_meta import AdapterMeta, BaseRecord
    from twin.examples import ContextSettings
    from twin.model.load import base_fingerprint, model_type

    return AdapterMeta(
        base_model=BaseRecord(
            path=str(base), fingerprint=base_fingerprint(base), model_type=model_type(base)
        ),
        template=template,
        prepare=ContextSettings(max_context_tokens=256).model_dump(mode="json"),
        train={"data": {"max_seq_length": 256}},
        metrics={"val_loss": 5.5},
        created="2026-01-01T00:00:00Z",
    )


def edited_copy(src: Path, dst: Path, name: str, edit: Callable[[dict], object]) -> Path:
    """A copy of the directory ``src`` at ``dst`` whose JSON file ``name`` went through ``edit``."""
    shutil.copytree(src, dst)
    data = json.loads((dst / name).read_text())
    edit(data)
    (dst / name).write_text(json.dumps(data))
    return dst


def on_other_base(adapter: Path, dst: Path, fingerprint: str = "sha256:ffffffffffffffff") -> Path:
    """A copy of ``adapter`` whose twin.json says it was trained on another base."""
    return edited_meta(adapter, dst, base_model={"fingerprint": fingerprint})


def edited_meta(adapter: Path, dst: Path, **changes: dict) -> Path:
    """A copy of ``adapter`` at ``dst`` whose twin.json records (sub)fields ``changes``, e.g.
    ``base_model={"path": ...}``; written through :class:`twin.adapter_meta.AdapterMeta`, so it stays valid."""
    from twin.adapter_meta import AdapterMeta, read_meta

    shutil.copytree(adapter, dst)
    data = read_meta(dst).to_json()
    for key, sub in changes.items():
        data[key] = {**data[key], **sub} if isinstance(sub, dict) and isinstance(data.get(key), dict) else sub
    AdapterMeta.from_dict(data, dst / "twin.json").write(dst)
    return dst


def _attention_targets(base: Path) -> list[str]:
    """The attention projections of ``base``'s family (Falcon's fused one, or Llama/Qwen2's four)."""
    cfg = json.loads((Path(base) / "config.json").read_text(encoding="utf-8"))
    return (
        ["query_key_value"] if cfg.get("model_type") == "falcon" else ["q_proj", "k_proj", "v_proj", "o_proj"]
    )
