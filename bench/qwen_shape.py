"""A randomly initialised model of Qwen2.5-0.5B's shape, for a compute-bound llama.cpp comparison.

Qwen2.5-0.5B's own config (24 layers, hidden 896, MLP 4864, 14 heads, 2 key/value heads, q/k/v biases,
tied 151,936-token embedding, rope theta 1M), random weights (the values never matter for speed or
memory, only the shapes), and twin's tiny byte-level BPE tokenizer padded with never-produced entries
to the real vocabulary size. Nothing is downloaded; ``python -m bench.qwen_shape OUT`` builds it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# https://huggingface.co/Qwen/Qwen2.5-0.5B/blob/main/config.json (the published shape)
QWEN25_05B = {
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "vocab_size": 151936,
    "max_position_embeddings": 32768,
    "rope_theta": 1_000_000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
}


def build(out: Path, seed: int = 0) -> Path:
    """Write the model + tokenizer to ``out`` (skipped when it is already there)."""
    if (out / "config.json").is_file():
        return out
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from twin.fileio import atomic_dir
    from twin.model.tiny import FAMILIES, fallback_texts, train_tokenizer
    from twin.prompt import system_prompt

    family = FAMILIES["qwen2"]
    tok = train_tokenizer([*fallback_texts(), system_prompt(None)], 2048, 32768, arch="qwen2",
                          pad_vocab_to=QWEN25_05B["vocab_size"])  # fmt: skip
    ids = {
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }
    cfg = Qwen2Config(**QWEN25_05B, **ids)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    stop = [tok.convert_tokens_to_ids(t) for t in family.stop]
    model.generation_config.eos_token_id = stop if len(stop) > 1 else stop[0]
    model.generation_config.pad_token_id = tok.pad_token_id
    record = {"built_by": "bench.qwen_shape", "shape": "Qwen2.5-0.5B", "seed": seed,
              "parameters": sum(p.numel() for p in model.parameters())}  # fmt: skip
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / "tiny.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return out


def main(argv: list[str]) -> Any:
    out = build(Path(argv[0]))
    print(f"built {out}: {json.loads((out / 'tiny.json').read_text())['parameters']:,} parameters")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
