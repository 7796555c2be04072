"""``twin publish gguf``: a merged model dir -> one GGUF + an Ollama ``Modelfile``; or, with
``--adapter-only``, the LoRA adapter itself as a GGUF adapter applied on top of the stock model.

Written with the ``gguf`` package (the writer llama.cpp itself uses) and laid out the way
llama.cpp's ``convert_hf_to_gguf.py`` (models) and ``convert_lora_to_gguf.py`` (adapters) do:

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
  3.1's ``rope_type: llama3`` becomes the ``rope_freqs`` tensor of per-frequency factors;
* a byte-level BPE tokenizer: tokens, merges, token types, special ids, the pre-tokenizer whose
  split llama.cpp applies identically (:func:`pre_tokenizer_name`), and the chat template;
* ``f16`` (2-D weights f16, norms and biases f32) or ``q8_0`` (2-D weights with 32-divisible rows
  in Q8_0 via ``gguf.quants``, the rest as f16/f32), or ``f32`` (everything as trained on CPU: what
  compares token for token with twin's own engine).

Adapters: each LoRA pair as ``<gguf name>.lora_a`` / ``.lora_b`` with ``adapter.lora.alpha``; the
row transforms above (Llama's Q/K permutation, Falcon's QKV order) act on the output rows of a
weight, so they apply to B (``delta = B @ A``) and leave A alone.

Tensors are streamed: shapes come from the safetensors headers first, then each tensor is loaded,
converted and written in turn, so a 7B export never holds the whole model in memory. A tied
``lm_head`` is not written: llama.cpp's loaders fall back to ``token_embd``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twin.errors import TwinError

log = logging.getLogger(__name__)

OUTTYPES = ("f16", "q8_0", "f32")
ARCHS = ("falcon", "llama", "qwen2")  # HF model_type, which is also llama.cpp's architecture name

# The Split regexes of Llama 3's and Qwen2's tokenizer.json, and the llama.cpp pre-tokenizer that
# splits text the same way. A pre-tokenizer decides where BPE may merge, so a different one gives
# different tokens for the same text (Llama 3 groups digits by three, Qwen2 splits each digit, GPT-2
# keeps runs of digits; they also cut newlines differently).
_SPLIT_PRE = {
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+": "llama-bpe",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+": "qwen2",
}


@dataclass
class _Tensor:
    """One tensor to write: GGUF name, torch-order shape, GGML type, and how to load its data."""

    name: str
    shape: list[int]
    qtype: Any
    load: Callable[[], Any]


def _load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TwinError(f"{path}: missing; export from a model dir written by `twin publish merge`") from None
    except ValueError as e:
        raise TwinError(f"{path}: not valid JSON ({e})") from None


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


def _add_model_kv(writer: Any, hp: dict, outtype: str) -> None:
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


# ---------------------------------------------------------------- tensors


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


def _weight_files(model_dir: Path) -> list[Path]:
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(_load_json(index)["weight_map"].values()))
        return [model_dir / f for f in files]
    single = model_dir / "model.safetensors"
    if single.is_file():
        return [single]
    found = sorted(model_dir.glob("*.safetensors"))
    if not found:
        raise TwinError(
            f"{model_dir}: no *.safetensors weights; run `twin publish merge` first and export its --out dir"
        )
    return found


def _iter_tensor_names(files: list[Path]) -> Iterator[tuple[Path, str, list[int]]]:
    from safetensors import safe_open

    for f in files:
        with safe_open(str(f), framework="pt") as st:
            for name in st.keys():  # noqa: SIM118 (safe_open has keys(), not iteration)
                yield f, name, list(st.get_slice(name).get_shape())


def _out_type(shape: list[int], outtype: str) -> Any:
    from gguf import GGMLQuantizationType as Q

    if len(shape) < 2:
        return Q.F32  # norms and biases: tiny, precision-sensitive
    if outtype == "q8_0" and shape[-1] % 32 == 0:
        return Q.Q8_0
    return Q.F32 if outtype == "f32" else Q.F16


def _model_tensors(src: Path, hp: dict, outtype: str, handles: dict) -> list[_Tensor]:
    """What to write, in file order; each tensor loads (through ``handles``) only when written."""
    from gguf import MODEL_TENSOR, TENSOR_NAMES
    from gguf import GGMLQuantizationType as Q

    tmap = _name_map(hp)
    plan: list[_Tensor] = []
    for f, hf_name, shape in _iter_tensor_names(_weight_files(src)):
        if (hf_name == "lm_head.weight" and hp["tied"]) or hf_name.endswith("rotary_emb.inv_freq"):
            continue  # tied: llama.cpp reuses token_embd; inv_freq: recomputed from rope_freq_base
        gname = tmap.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gname is None:
            raise TwinError(
                f"{f}: tensor {hf_name!r} has no GGUF name for {hp['arch']}; is this checkpoint intact?"
            )
        plan.append(_Tensor(gname, shape, _out_type(shape, outtype), _loader(handles, f, hf_name, hp)))
    if hp.get("rope_scaling"):
        factors = llama3_rope_factors(hp)
        name = f"{TENSOR_NAMES[MODEL_TENSOR.ROPE_FREQS]}.weight"
        plan.append(_Tensor(name, list(factors.shape), Q.F32, lambda: factors))
    return plan


def _name_map(hp: dict) -> Any:
    from gguf import MODEL_ARCH, TensorNameMap

    arch = {"falcon": MODEL_ARCH.FALCON, "llama": MODEL_ARCH.LLAMA, "qwen2": MODEL_ARCH.QWEN2}[hp["arch"]]
    return TensorNameMap(arch, hp["n_layer"])


def _loader(handles: dict, f: Path, hf_name: str, hp: dict) -> Callable[[], Any]:
    def load() -> Any:
        from safetensors import safe_open

        if f not in handles:
            handles[f] = safe_open(str(f), framework="pt")
        return rows_to_gguf(hf_name, handles[f].get_tensor(hf_name).float().numpy(), hp)

    return load


def _write_gguf(path: Path, arch: str, add_kv: Callable[[Any], None], tensors: list[_Tensor]) -> None:
    """Stream ``tensors`` into ``path`` (atomically: a temp file renamed when complete)."""
    import numpy as np
    from gguf import GGMLQuantizationType as Q
    from gguf import GGUFWriter
    from gguf.quants import quant_shape_to_byte_shape, quantize
    from tqdm.auto import tqdm

    from twin.fileio import replace_path

    tmp = path.with_name(f".{path.name}.tmp")
    writer = GGUFWriter(tmp, arch)
    try:
        add_kv(writer)
        for t in tensors:
            if t.qtype == Q.Q8_0:
                bshape = quant_shape_to_byte_shape(t.shape, Q.Q8_0)
                writer.add_tensor_info(
                    t.name, bshape, np.dtype(np.uint8), int(np.prod(bshape)), raw_dtype=Q.Q8_0
                )
            else:
                dt = np.dtype(np.float32 if t.qtype == Q.F32 else np.float16)
                writer.add_tensor_info(t.name, t.shape, dt, int(np.prod(t.shape)) * dt.itemsize)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for t in tqdm(tensors, desc=f"writing {path.name}", unit="tensor"):
            writer.write_tensor_data(quantize(np.ascontiguousarray(t.load()), t.qtype))
        writer.close()
        replace_path(tmp, path)  # 0600, like every file twin writes (twin/fileio.py)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- tokenizer


def pre_tokenizer_name(tj: dict, model_type: str, where: Path) -> str:
    """The llama.cpp pre-tokenizer that splits text as this tokenizer (its backend JSON) does.

    The tiny Falcon and Llama tokenizers split with GPT-2's byte-level regex: ``gpt-2``, not
    ``llama-bpe``, whose regex groups digits by three and cuts newlines differently (other tokens).
    The tiny Qwen2's is loaded by transformers as a Qwen2 tokenizer with Qwen2's Split regex
    (single digits): ``qwen2``. Downloaded Llama 3 / Qwen2.5 tokenizers carry their own regex,
    matched the same way; anything else is refused rather than silently tokenized differently.
    """
    pre = tj.get("pre_tokenizer") or {}
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt-2"
    steps = (pre.get("pretokenizers") or []) if pre.get("type") == "Sequence" else []
    if model_type == "falcon" and [s.get("type") for s in steps][-1:] == ["ByteLevel"]:
        return "falcon"  # Falcon-7B's own tokenizer: punctuation + digits + byte-level
    if (
        len(steps) == 2
        and steps[0].get("type") == "Split"
        and steps[1].get("type") == "ByteLevel"
        and not steps[1].get("use_regex", True)
    ):
        name = _SPLIT_PRE.get((steps[0].get("pattern") or {}).get("Regex", ""))
        if name:
            return name
    raise TwinError(
        f"{where}: a pre-tokenizer llama.cpp is not known to reproduce (tokens would differ); "
        "use llama.cpp's convert_hf_to_gguf.py on the merged dir"
    )


def tokenizer_metadata(tokenizer: Any, vocab_size: int, model_type: str, where: Path) -> dict:
    """Tokens, types, merges, special ids, pre-tokenizer name and chat template of a byte-level BPE.

    Read from the tokenizer as transformers loads it, not from ``tokenizer.json``: transformers 5
    gives some model types their family's pre-tokenizer whatever the file says (a ``qwen2`` model's
    tokenizer splits with Qwen2's regex), and the GGUF must tokenize as twin trained.
    """
    from gguf import TokenType

    tj = json.loads(tokenizer.backend_tokenizer.to_str())
    model = tj.get("model") or {}
    if model.get("type") != "BPE":
        raise TwinError(f"{where}: only byte-level BPE tokenizers are supported")
    vocab: dict[str, int] = dict(model.get("vocab") or {})
    added = {t["id"]: t for t in tj.get("added_tokens") or []}
    for tid, t in added.items():
        vocab[t["content"]] = tid
    by_id = {i: tok for tok, i in vocab.items()}
    tokens, types = [], []
    for i in range(max(vocab_size, max(by_id) + 1 if by_id else 0)):
        if i not in by_id:  # embedding rows past the tokenizer (padded vocab): llama.cpp's convention
            tokens.append(f"[PAD{i}]")
            types.append(TokenType.UNUSED)
            continue
        tokens.append(by_id[i])
        if i in added:
            types.append(TokenType.CONTROL if added[i].get("special") else TokenType.USER_DEFINED)
        else:
            types.append(TokenType.NORMAL)
    template = getattr(tokenizer, "chat_template", None)
    return {
        "tokens": tokens,
        "types": [int(t) for t in types],
        "merges": [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []],
        "bos": tokenizer.bos_token_id,
        "eos": tokenizer.eos_token_id,
        "pad": tokenizer.pad_token_id,
        "pre": pre_tokenizer_name(tj, model_type, where),
        "chat_template": template if isinstance(template, str) else None,
    }


def stop_tokens(model_dir: Path, tok: dict) -> list[str]:
    """Every token generation stops at: generation_config's eos ids (the family's), then the eos."""
    gen_path = model_dir / "generation_config.json"
    ids = _load_json(gen_path).get("eos_token_id") if gen_path.is_file() else None
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    out = [tok["tokens"][i] for i in ids if isinstance(i, int) and 0 <= i < len(tok["tokens"])]
    return list(dict.fromkeys([*out, tok["tokens"][tok["eos"]]]))


def _add_tokenizer_kv(writer: Any, tok: dict, *, add_bos: bool, eot: int | None, bos: int | None) -> None:
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(tok["pre"])
    writer.add_token_list(tok["tokens"])
    writer.add_token_types(tok["types"])
    writer.add_token_merges(tok["merges"])
    writer.add_eos_token_id(tok["eos"])
    writer.add_bos_token_id(bos if bos is not None else tok["eos"])
    if eot is not None:
        writer.add_eot_token_id(eot)
    if tok["pad"] is not None:
        writer.add_pad_token_id(tok["pad"])
    # twin renders prompts and tokenizes them without special tokens; a BOS that a chat template
    # starts with (Llama 3) is left to llama.cpp, as stock GGUFs of that family do.
    writer.add_add_bos_token(add_bos)
    writer.add_add_eos_token(False)
    if tok["chat_template"]:
        writer.add_chat_template(tok["chat_template"])


def _add_twin_kv(writer: Any, template: str, sampling: dict | None) -> None:
    s = sampling or {}
    writer.add_sampling_temp(float(s.get("temperature", 0.7)))
    writer.add_sampling_top_p(float(s.get("top_p", 0.9)))
    writer.add_sampling_top_k(int(s.get("top_k", 50)))
    writer.add_sampling_penalty_repeat(float(s.get("repetition_penalty", 1.1)))
    writer.add_string("twin.template", template)


def _hf_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as e:
        raise TwinError(f"{path}: cannot load its tokenizer ({str(e).splitlines()[0]})") from None


# ---------------------------------------------------------------- merged model


def export_gguf(
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    outtype: str = "f16",
    name: str | None = None,
    template: str | None = None,
    sampling: dict | None = None,
) -> dict:
    """Write ``<out_dir>/<name>-<outtype>.gguf`` and ``<out_dir>/Modelfile``; returns their paths + counts."""
    from twin.publish.merge import read_merged_meta
    from twin.publish.ollama import prompt_settings

    src = _check_source(model_dir, outtype, "run `twin publish merge` first (make merge)")
    cfg = _load_json(src / "config.json")
    hp = model_params(cfg, src / "config.json")
    template = template or read_merged_meta(src).get("template") or "plain-v1"
    name = name or src.name
    hf_tok = _hf_tokenizer(src)
    tok = tokenizer_metadata(hf_tok, hp["vocab_size"], hp["arch"], src)
    if tok["eos"] is None:
        raise TwinError(f"{src}: the tokenizer has no eos_token; llama.cpp needs one to stop")
    prompt = prompt_settings(template, hf_tok, stop_tokens(src, tok))
    bos = tok["bos"] if tok["bos"] is not None else cfg.get("bos_token_id")
    eot = tok["eos"] if tok["chat_template"] else None  # chat families end each turn with their eos

    def add_kv(writer: Any) -> None:
        writer.add_name(name)
        _add_model_kv(writer, hp, outtype)
        _add_tokenizer_kv(writer, tok, add_bos=prompt["add_bos"], eot=eot, bos=bos)
        _add_twin_kv(writer, template, sampling)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gguf_path = out / f"{name}-{outtype}.gguf"
    handles: dict[Path, Any] = {}
    try:
        tensors = _model_tensors(src, hp, outtype, handles)
        _write_gguf(gguf_path, hp["arch"], add_kv, tensors)
    finally:
        handles.clear()
    modelfile = _write_modelfile(out, f"./{gguf_path.name}", template, prompt, hp, sampling)
    log.info("wrote %s (%d tensors) and %s", gguf_path, len(tensors), modelfile)
    return {"gguf": str(gguf_path), "modelfile": str(modelfile), "tensors": len(tensors), "outtype": outtype}


def _check_source(path: str | os.PathLike, outtype: str, hint: str) -> Path:
    if outtype not in OUTTYPES:
        raise TwinError(f"--type {outtype!r}: use one of {', '.join(OUTTYPES)}")
    src = Path(path)
    if not src.is_dir():
        raise TwinError(f"{src}: directory not found; {hint}")
    return src


def _write_modelfile(
    out: Path,
    source: str,
    template: str,
    prompt: dict,
    hp: dict,
    sampling: dict | None,
    *,
    adapter: str | None = None,
    notes: tuple[str, ...] = (),
) -> Path:
    from twin.fileio import atomic_write_text
    from twin.publish.ollama import ollama_modelfile

    text = ollama_modelfile(
        source,
        template=template,
        go_template=prompt["go"],
        stops=prompt["stops"],
        ctx=hp["ctx"],
        sampling=sampling,
        system=prompt["system"],
        adapter=adapter,
        notes=notes,
    )
    modelfile = out / "Modelfile"
    atomic_write_text(modelfile, text)
    return modelfile


# ---------------------------------------------------------------- adapter only


def export_adapter_gguf(
    adapter_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    base: str | os.PathLike | None = None,
    outtype: str = "f16",
    name: str | None = None,
    source: str | None = None,
    sampling: dict | None = None,
) -> dict:
    """Write ``<out_dir>/<name>-lora-<outtype>.gguf`` (a llama.cpp LoRA adapter) and a Modelfile that
    applies it (``ADAPTER``) to ``source`` (``FROM``; default: the base dir the adapter was trained on)."""
    from twin.adapter_meta import read_meta
    from twin.model.load import resolve_base
    from twin.publish.ollama import prompt_settings

    adapter = _check_source(adapter_dir, outtype, "train one with `twin train --run NAME`")
    meta = read_meta(adapter)
    base_dir = resolve_base(adapter, base, meta)
    hp = model_params(_load_json(base_dir / "config.json"), base_dir / "config.json")
    lcfg = _load_json(adapter / "adapter_config.json")
    scale_fix = _lora_scale_fix(lcfg, adapter / "adapter_config.json")
    tensors = _adapter_tensors(adapter, hp, outtype, scale_fix)
    name = name or adapter.name
    template = meta.template

    def add_kv(writer: Any) -> None:
        writer.add_name(name)
        writer.add_type("adapter")
        writer.add_string("adapter.type", "lora")
        writer.add_float32("adapter.lora.alpha", float(lcfg["lora_alpha"]))
        writer.add_string("twin.template", template)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gguf_path = out / f"{name}-lora-{outtype}.gguf"
    _write_gguf(gguf_path, hp["arch"], add_kv, tensors)
    hf_tok = _hf_tokenizer(base_dir)
    tok = tokenizer_metadata(hf_tok, hp["vocab_size"], hp["arch"], base_dir)
    prompt = prompt_settings(template, hf_tok, stop_tokens(base_dir, tok))
    notes = (
        "FROM: the base this adapter was trained on: its HF dir (Ollama imports Llama/Qwen2 safetensors),",
        "its GGUF (twin publish gguf --model BASE), or an Ollama tag of the very same weights",
        "(e.g. llama3.1:8b-instruct-fp16). On any other model the adapter is meaningless.",
    )
    modelfile = _write_modelfile(
        out, source or str(base_dir), template, prompt, hp, sampling, adapter=gguf_path.name, notes=notes
    )
    log.info("wrote %s (%d LoRA tensors) and %s", gguf_path, len(tensors), modelfile)
    return {"gguf": str(gguf_path), "modelfile": str(modelfile), "tensors": len(tensors), "outtype": outtype}


def _lora_scale_fix(lcfg: dict, where: Path) -> float:
    """Factor folded into every B so llama.cpp's ``alpha / rank`` scale equals peft's.

    1 for plain LoRA; ``sqrt(r)`` for rsLoRA (peft scales by ``alpha / sqrt(r)``). DoRA and per-module
    ranks or alphas have no llama.cpp equivalent: refused.
    """
    if lcfg.get("use_dora"):
        raise TwinError(
            f"{where}: DoRA adapters cannot be applied by llama.cpp; "
            "export a merged model instead (twin publish merge, then twin publish gguf)"
        )
    if lcfg.get("rank_pattern") or lcfg.get("alpha_pattern"):
        raise TwinError(f"{where}: per-module rank_pattern/alpha_pattern have no llama.cpp equivalent")
    if not lcfg.get("lora_alpha") or not lcfg.get("r"):
        raise TwinError(f"{where}: r and lora_alpha are required; is this a peft LoRA adapter?")
    return math.sqrt(lcfg["r"]) if lcfg.get("use_rslora") else 1.0


def _adapter_tensors(adapter: Path, hp: dict, outtype: str, scale_fix: float) -> list[_Tensor]:
    """``<gguf name>.lora_a`` (A as is) and ``.lora_b`` (B with the weight's row order) per LoRA pair."""
    import re

    from safetensors.torch import load_file

    f = adapter / "adapter_model.safetensors"
    if not f.is_file():
        raise TwinError(f"{f}: missing; the adapter dir must hold peft's safetensors weights")
    pairs: dict[str, dict[str, Any]] = {}
    for key, t in load_file(str(f)).items():
        m = re.fullmatch(r"(?:base_model\.model\.)?(.+)\.lora_([AB])\.weight", key)
        if m is None:
            raise TwinError(
                f"{f}: {key!r} is not a LoRA matrix (trained biases, embeddings or modules_to_save); "
                "a llama.cpp adapter holds only LoRA pairs: export a merged model instead"
            )
        pairs.setdefault(f"{m[1]}.weight", {})[m[2]] = t.float().numpy()
    tmap = _name_map(hp)
    plan: list[_Tensor] = []
    for hf_name, ab in pairs.items():
        gname = tmap.get_name(hf_name, try_suffixes=(".weight",))
        if gname is None or len(ab) != 2 or (hf_name == "lm_head.weight" and hp["tied"]):
            raise TwinError(f"{f}: no llama.cpp {hp['arch']} weight for the LoRA pair on {hf_name!r}")
        a, b = ab["A"], rows_to_gguf(hf_name, ab["B"] * scale_fix, hp)
        plan.append(
            _Tensor(f"{gname}.lora_a", list(a.shape), _out_type(list(a.shape), outtype), lambda a=a: a)
        )
        plan.append(
            _Tensor(f"{gname}.lora_b", list(b.shape), _out_type(list(b.shape), outtype), lambda b=b: b)
        )
    if not plan:
        raise TwinError(f"{f}: no LoRA matrices in it")
    return plan
