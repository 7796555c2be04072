"""What differs per architecture in a GGUF: llama.cpp's hyperparameters, tensor names, and row order.

Laid out the way llama.cpp's ``convert_hf_to_gguf.py`` (models) and ``convert_lora_to_gguf.py``
(adapters) do:

* architectures ``falcon``, ``llama`` and ``qwen2``; tensor names from ``gguf.TensorNameMap``
  (``model.layers.N.self_attn.q_proj`` -> ``blk.N.attn_q`` ...);
* Falcon's fused QKV rearranged from HF's per-KV-group order (q heads, k, v per group) to all q
  heads, then all k, then all v (``tensor_data_layout = "jploski"``); with Falcon-7B's multi-query
  attention (one KV group) that is the identity, as it is for the tiny Falcon. Falcon's KV head
  count as HF's modeling code uses it: 1 for ``multi_query`` without the new decoder architecture
  (transformers 5 writes ``num_kv_heads`` as the *query* head count for such configs);
* Llama's Q and K rows permuted from HF's rotary layout (first half / second half of each head) to
  the interleaved pairs llama.cpp's ``llama`` graph rotates (``LlamaModel.permute``); Qwen2's graph
  rotates HF's layout (NEOX rope), so its weights and q/k/v biases are written as they are. Llama
  3.1's ``rope_type: llama3`` becomes the ``rope_freqs`` tensor of per-frequency factors.

The row transforms act on the output rows of a weight, so for a LoRA pair they apply to B
(``delta = B @ A``) and leave A alone.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from twin.errors import TwinError

ARCHS = ("falcon", "llama", "qwen2")  # HF model_type, which is also llama.cpp's architecture name

# ---------------------------------------------------------------- hyperparameters


def falcon_params(cfg: dict) -> dict:
    """Hyperparameters llama.cpp's falcon graph needs, from an HF (or old RW) Falcon config."""
    n_head = cfg.get("num_attention_heads", cfg.get("n_head"))
    n_layer = cfg.get("num_hidden_layers", cfg.get("n_layer"))
    hidden = cfg["hidden_size"]
    if cfg.get("alibi"):
        raise TwinError("config.json: alibi Falcon variants are not supported by llama.cpp's falcon graph")
    if not cfg.get("parallel_attn", True):
        raise TwinError(
            "config.json: Falcon with parallel_attn=false is not supported by llama.cpp's falcon graph"
        )
    new_arch = bool(cfg.get("new_decoder_architecture"))
    if new_arch or not cfg.get("multi_query", True):
        n_kv = cfg.get("num_kv_heads", cfg.get("n_head_kv")) or n_head
    else:
        n_kv = 1
    rope = cfg.get("rope_parameters") or {}
    return {
        "arch": "falcon",
        "n_layer": int(n_layer),
        "n_head": int(n_head),
        "n_head_kv": int(n_kv),
        "hidden": int(hidden),
        "ffn": int(cfg.get("ffn_hidden_size") or 4 * hidden),
        "ctx": int(cfg.get("max_position_embeddings") or 2048),
        "eps": float(cfg.get("layer_norm_epsilon", 1e-5)),
        "rope_theta": float(rope.get("rope_theta", cfg.get("rope_theta", 10000.0))),
        "vocab_size": int(cfg["vocab_size"]),
        "tied": bool(cfg.get("tie_word_embeddings", True)),
        "new_arch": new_arch,
    }


def llama_params(cfg: dict) -> dict:
    """Hyperparameters of llama.cpp's llama and qwen2 graphs (GQA, RMSNorm, SwiGLU, rope)."""
    n_head, hidden = int(cfg["num_attention_heads"]), int(cfg["hidden_size"])
    # transformers 5 keeps rope settings in rope_parameters, 4.x in rope_scaling + rope_theta
    rope = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in ("default", "llama3"):
        raise TwinError(
            f"config.json: rope_type {rope_type!r} is not handled by twin's GGUF export; "
            "use llama.cpp's convert_hf_to_gguf.py on the merged dir"
        )
    return {
        "arch": cfg["model_type"],
        "n_layer": int(cfg["num_hidden_layers"]),
        "n_head": n_head,
        "n_head_kv": int(cfg.get("num_key_value_heads") or n_head),
        "hidden": hidden,
        "ffn": int(cfg["intermediate_size"]),
        "ctx": int(cfg.get("max_position_embeddings") or 4096),
        "eps": float(cfg.get("rms_norm_eps", 1e-6)),
        "rope_theta": float(rope.get("rope_theta", cfg.get("rope_theta", 10000.0))),
        "head_dim": int(cfg.get("head_dim") or hidden // n_head),
        "vocab_size": int(cfg["vocab_size"]),
        "tied": bool(cfg.get("tie_word_embeddings", False)),
        "rope_scaling": rope if rope_type == "llama3" else None,
    }


def model_params(cfg: dict, where: Path) -> dict:
    """:func:`falcon_params` or :func:`llama_params` by the config's ``model_type``."""
    model_type = cfg.get("model_type")
    if model_type == "falcon":
        return falcon_params(cfg)
    if model_type in ("llama", "qwen2"):
        return llama_params(cfg)
    raise TwinError(
        f"{where}: model_type {model_type!r}; twin's GGUF export handles {', '.join(ARCHS)}, "
        "for other architectures use llama.cpp's convert_hf_to_gguf.py on the merged dir"
    )


def llama3_rope_factors(hp: dict) -> Any:
    """Llama 3.1's per-frequency rope divisors (llama.cpp's ``rope_freqs``), as its converter computes them."""
    import numpy as np

    rs, dim = hp["rope_scaling"], hp["head_dim"]
    factor = float(rs.get("factor", 8.0))
    low, high = float(rs.get("low_freq_factor", 1.0)), float(rs.get("high_freq_factor", 4.0))
    old_ctx = float(rs.get("original_max_position_embeddings", 8192))
    freqs = 1.0 / (hp["rope_theta"] ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < old_ctx / high:
            out.append(1.0)
        elif wavelen > old_ctx / low:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def add_model_kv(writer: Any, hp: dict, outtype: str) -> None:
    from gguf import LlamaFileType

    writer.add_type("model")
    types = {"q8_0": LlamaFileType.MOSTLY_Q8_0, "f32": LlamaFileType.ALL_F32}
    writer.add_file_type(types.get(outtype, LlamaFileType.MOSTLY_F16))
    writer.add_context_length(hp["ctx"])
    writer.add_embedding_length(hp["hidden"])
    writer.add_feed_forward_length(hp["ffn"])
    writer.add_block_count(hp["n_layer"])
    writer.add_head_count(hp["n_head"])
    writer.add_head_count_kv(hp["n_head_kv"])
    writer.add_rope_freq_base(hp["rope_theta"])
    if hp["arch"] == "falcon":
        writer.add_tensor_data_layout("jploski")
        writer.add_layer_norm_eps(hp["eps"])
    else:
        writer.add_layer_norm_rms_eps(hp["eps"])
        writer.add_rope_dimension_count(hp["head_dim"])
        writer.add_key_length(hp["head_dim"])
        writer.add_value_length(hp["head_dim"])
        writer.add_vocab_size(hp["vocab_size"])
    writer.add_quantization_version(2)


# ---------------------------------------------------------------- tensor names and row order


def tensor_name_map(hp: dict) -> Any:
    from gguf import MODEL_ARCH, TensorNameMap

    arch = {"falcon": MODEL_ARCH.FALCON, "llama": MODEL_ARCH.LLAMA, "qwen2": MODEL_ARCH.QWEN2}[hp["arch"]]
    return TensorNameMap(arch, hp["n_layer"])


def qkv_to_gguf(w: Any, n_head: int, n_head_kv: int) -> Any:
    """HF fused QKV rows (per KV group: q heads, k, v) -> [all q; all k; all v] (llama.cpp's layout)."""
    import numpy as np

    rows = w.shape[0]
    head_dim = rows // (n_head + 2 * n_head_kv)
    g = w.reshape(n_head_kv, n_head // n_head_kv + 2, head_dim, *w.shape[1:])
    q = g[:, :-2].reshape(n_head * head_dim, *w.shape[1:])
    k = g[:, -2:-1].reshape(n_head_kv * head_dim, *w.shape[1:])
    v = g[:, -1:].reshape(n_head_kv * head_dim, *w.shape[1:])
    return np.concatenate([q, k, v]).reshape(w.shape)


def permute_rope_rows(w: Any, n_head: int) -> Any:
    """Rows of each head from HF's rotary halves (x0..x(d/2-1), then the rest) to llama.cpp's pairs.

    ``LlamaModel.permute`` of llama.cpp's converter: row ``i`` of the first half and row ``i`` of the
    second half of a head become rows ``2i`` and ``2i+1``. Weights, biases and LoRA B alike.
    """
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def rows_to_gguf(hf_name: str, w: Any, hp: dict) -> Any:
    """Reorder a weight's output rows (or a bias, or a LoRA B) the way llama.cpp's graph expects."""
    if hp["arch"] == "falcon" and "query_key_value" in hf_name:
        return qkv_to_gguf(w, hp["n_head"], hp["n_head_kv"])
    if hp["arch"] == "llama" and ".q_proj." in hf_name:
        return permute_rope_rows(w, hp["n_head"])
    if hp["arch"] == "llama" and ".k_proj." in hf_name:
        return permute_rope_rows(w, hp["n_head_kv"])
    return w
