"""``twin export-gguf``: a merged Falcon model dir -> one GGUF file + an Ollama ``Modelfile``.

Written with the ``gguf`` package (the writer llama.cpp itself uses) and laid out the way
llama.cpp's ``convert_hf_to_gguf.py`` does for Falcon (``FalconModel``):

* architecture ``falcon``; tensor names from ``gguf.TensorNameMap(MODEL_ARCH.FALCON)``
  (``transformer.h.N.self_attention.query_key_value`` -> ``blk.N.attn_qkv`` ...);
* the fused QKV weight rearranged from HF's per-KV-group order (q heads, k, v per group) to all
  q heads, then all k, then all v (``tensor_data_layout = "jploski"``); with Falcon-7B's
  multi-query attention (one KV group) that is the identity, as it is for the tiny Falcon;
* the KV head count as HF's modeling code uses it: 1 for ``multi_query`` without the new
  decoder architecture (llama.cpp's converter reads ``num_kv_heads``, which transformers 5 writes
  as the *query* head count for such configs, so it would get this wrong for the tiny Falcon);
* a GPT-2-style byte-level BPE tokenizer: tokens, merges, token types, bos/eos/pad ids;
* ``f16`` (2-D weights f16, norms f32) or ``q8_0`` (2-D weights with 32-divisible rows in
  Q8_0 via ``gguf.quants``, the rest as f16/f32).

Tensors are streamed: shapes are read from the safetensors headers first, then each tensor is
loaded, converted and written in turn, so a 7B export never holds the whole model in memory.
A tied ``lm_head`` (the tiny Falcon, Falcon-7B) is not written: llama.cpp's Falcon loader falls
back to ``token_embd`` when ``output.weight`` is absent.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from twin.errors import TwinError

log = logging.getLogger(__name__)

OUTTYPES = ("f16", "q8_0")
STOP = "###"  # every twin.prompt.STOP_STRINGS entry contains it


def _load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TwinError(f"{path}: missing; export from a model dir written by `twin merge`") from None
    except ValueError as e:
        raise TwinError(f"{path}: not valid JSON ({e})") from None


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


def qkv_to_gguf(w: Any, n_head: int, n_head_kv: int) -> Any:
    """HF fused QKV (per KV group: q heads, k, v) -> [all q; all k; all v] (llama.cpp's layout)."""
    import numpy as np

    rows, cols = w.shape
    head_dim = rows // (n_head + 2 * n_head_kv)
    g = w.reshape(n_head_kv, n_head // n_head_kv + 2, head_dim, cols)
    q = g[:, :-2].reshape(n_head * head_dim, cols)
    k = g[:, -2:-1].reshape(n_head_kv * head_dim, cols)
    v = g[:, -1:].reshape(n_head_kv * head_dim, cols)
    return np.concatenate([q, k, v]).reshape(rows, cols)


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
            f"{model_dir}: no *.safetensors weights; run `twin merge` first and export its --out dir"
        )
    return found


def _iter_tensor_names(files: list[Path]) -> Iterator[tuple[Path, str, list[int]]]:
    from safetensors import safe_open

    for f in files:
        with safe_open(str(f), framework="pt") as st:
            for name in st.keys():  # noqa: SIM118 (safe_open has keys(), not iteration)
                yield f, name, list(st.get_slice(name).get_shape())


def tokenizer_metadata(model_dir: Path, vocab_size: int, model_type: str) -> dict:
    """Tokens, types, merges, special ids and pre-tokenizer name for a byte-level BPE tokenizer."""
    from gguf import TokenType

    tj = _load_json(model_dir / "tokenizer.json")
    model = tj.get("model") or {}
    if model.get("type") != "BPE":
        raise TwinError(
            f"{model_dir / 'tokenizer.json'}: only byte-level BPE tokenizers (GPT-2/Falcon style) are supported"
        )
    vocab: dict[str, int] = dict(model.get("vocab") or {})
    added = {t["id"]: t for t in tj.get("added_tokens") or []}
    for tid, t in added.items():
        vocab[t["content"]] = tid
    by_id = {i: tok for tok, i in vocab.items()}
    n = max(vocab_size, max(by_id) + 1 if by_id else 0)
    tokens, types = [], []
    for i in range(n):
        if i in by_id:
            tokens.append(by_id[i])
            if i in added:
                types.append(TokenType.CONTROL if added[i].get("special") else TokenType.USER_DEFINED)
            else:
                types.append(TokenType.NORMAL)
        else:  # embedding rows past the tokenizer (padded vocab): llama.cpp's convention
            tokens.append(f"[PAD{i}]")
            types.append(TokenType.UNUSED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges") or []]

    tcfg_path = model_dir / "tokenizer_config.json"
    tcfg = _load_json(tcfg_path) if tcfg_path.is_file() else {}

    def special_id(key: str) -> int | None:
        tok = tcfg.get(key)
        if isinstance(tok, dict):
            tok = tok.get("content")
        return vocab.get(tok) if isinstance(tok, str) else None

    pre = tj.get("pre_tokenizer") or {}
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        pre_name = "gpt-2"  # plain GPT-2 regex split
    elif model_type == "falcon" and pre.get("type") == "Sequence":
        pre_name = "falcon"  # Falcon-7B's own tokenizer: punctuation + digits + byte-level
    else:
        pre_name = "default"
        log.warning("unknown pre-tokenizer %s; llama.cpp will use its default split", pre.get("type"))
    return {
        "tokens": tokens,
        "types": [int(t) for t in types],
        "merges": merges,
        "bos": special_id("bos_token"),
        "eos": special_id("eos_token"),
        "pad": special_id("pad_token"),
        "pre": pre_name,
        "chat_template": tcfg.get("chat_template"),
    }


def _out_type(name: str, shape: list[int], outtype: str) -> Any:
    from gguf import GGMLQuantizationType as Q

    if len(shape) < 2:
        return Q.F32  # norms and biases: tiny, precision-sensitive
    if outtype == "q8_0" and shape[-1] % 32 == 0:
        return Q.Q8_0
    return Q.F16


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
    import numpy as np
    from gguf import MODEL_ARCH, GGUFWriter, LlamaFileType, TensorNameMap
    from gguf import GGMLQuantizationType as Q
    from gguf.quants import quant_shape_to_byte_shape, quantize
    from safetensors import safe_open
    from tqdm.auto import tqdm

    from twin.fileio import atomic_write_text
    from twin.publish.merge import read_merged_meta

    if outtype not in OUTTYPES:
        raise TwinError(f"--type {outtype!r}: use one of {', '.join(OUTTYPES)}")
    src = Path(model_dir)
    if not src.is_dir():
        raise TwinError(f"{src}: model directory not found; run `twin merge` first (make merge)")
    cfg = _load_json(src / "config.json")
    if cfg.get("model_type") != "falcon":
        raise TwinError(
            f"{src / 'config.json'}: model_type {cfg.get('model_type')!r}; twin's GGUF export handles Falcon, "
            "for other architectures use llama.cpp's convert_hf_to_gguf.py on the merged dir"
        )
    hp = falcon_params(cfg)
    merged = read_merged_meta(src)
    template = template or merged.get("template") or "plain-v1"
    name = name or src.name
    tok = tokenizer_metadata(src, hp["vocab_size"], "falcon")
    if tok["eos"] is None:
        raise TwinError(f"{src}: the tokenizer has no eos_token; llama.cpp needs one to stop")

    tmap = TensorNameMap(MODEL_ARCH.FALCON, hp["n_layer"])
    files = _weight_files(src)
    plan: list[tuple[Path, str, str, list[int], Any]] = []  # file, hf name, gguf name, shape, type
    for f, hf_name, shape in _iter_tensor_names(files):
        if hf_name == "lm_head.weight" and hp["tied"]:
            continue  # tied to the embeddings; llama.cpp reuses token_embd
        gname = tmap.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gname is None:
            raise TwinError(
                f"{f}: tensor {hf_name!r} has no GGUF name for falcon; is this a Falcon checkpoint?"
            )
        plan.append((f, hf_name, gname, shape, _out_type(gname, shape, outtype)))

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gguf_path = out / f"{name}-{outtype}.gguf"
    tmp_path = out / f".{gguf_path.name}.tmp"
    writer = GGUFWriter(tmp_path, "falcon")
    try:
        writer.add_name(name)
        writer.add_file_type(LlamaFileType.MOSTLY_Q8_0 if outtype == "q8_0" else LlamaFileType.MOSTLY_F16)
        writer.add_context_length(hp["ctx"])
        writer.add_tensor_data_layout("jploski")
        writer.add_embedding_length(hp["hidden"])
        writer.add_feed_forward_length(hp["ffn"])
        writer.add_block_count(hp["n_layer"])
        writer.add_head_count(hp["n_head"])
        writer.add_head_count_kv(hp["n_head_kv"])
        writer.add_layer_norm_eps(hp["eps"])
        writer.add_rope_freq_base(hp["rope_theta"])
        writer.add_quantization_version(2)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(tok["pre"])
        writer.add_token_list(tok["tokens"])
        writer.add_token_types(tok["types"])
        writer.add_token_merges(tok["merges"])
        writer.add_eos_token_id(tok["eos"])
        writer.add_bos_token_id(tok["bos"] if tok["bos"] is not None else tok["eos"])
        if tok["pad"] is not None:
            writer.add_pad_token_id(tok["pad"])
        writer.add_add_bos_token(False)  # Falcon prompts start without BOS (as in training)
        if tok["chat_template"]:
            writer.add_chat_template(tok["chat_template"])
        s = sampling or {}
        writer.add_sampling_temp(float(s.get("temperature", 0.7)))
        writer.add_sampling_top_p(float(s.get("top_p", 0.9)))
        writer.add_sampling_top_k(int(s.get("top_k", 50)))
        writer.add_sampling_penalty_repeat(float(s.get("repetition_penalty", 1.1)))
        writer.add_string("twin.template", template)

        for _, _, gname, shape, qt in plan:
            if qt == Q.Q8_0:
                bshape = quant_shape_to_byte_shape(shape, Q.Q8_0)
                writer.add_tensor_info(
                    gname, bshape, np.dtype(np.uint8), int(np.prod(bshape)), raw_dtype=Q.Q8_0
                )
            else:
                dt = np.dtype(np.float32 if qt == Q.F32 else np.float16)
                writer.add_tensor_info(gname, shape, dt, int(np.prod(shape)) * dt.itemsize)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        handles: dict[Path, Any] = {}
        try:
            for f, hf_name, _gname, _shape, qt in tqdm(plan, desc=f"writing GGUF ({outtype})", unit="tensor"):
                if f not in handles:
                    handles[f] = safe_open(str(f), framework="pt")
                data = handles[f].get_tensor(hf_name).float().numpy()
                if "query_key_value" in hf_name:
                    data = qkv_to_gguf(data, hp["n_head"], hp["n_head_kv"])
                writer.write_tensor_data(quantize(data, qt))
        finally:
            handles.clear()
        writer.close()
        os.replace(tmp_path, gguf_path)
    except BaseException:
        writer.close()
        tmp_path.unlink(missing_ok=True)
        raise

    modelfile = out / "Modelfile"
    atomic_write_text(
        modelfile,
        ollama_modelfile(
            gguf_path.name, template, tok_eos=tok["tokens"][tok["eos"]], ctx=hp["ctx"], sampling=sampling
        ),
    )
    log.info("wrote %s (%d tensors) and %s", gguf_path, len(plan), modelfile)
    return {"gguf": str(gguf_path), "modelfile": str(modelfile), "tensors": len(plan), "outtype": outtype}


# The plain-v1 prompt (twin.prompt._PLAIN_HEADER) as an Ollama Go template over .Messages:
# user turns are "them", assistant turns are "me"; the last message is their new message.
# Ollama knows no contact name, so it renders as twin does without one ("a friend" / "Them").
PLAIN_V1_GO_TEMPLATE = """You are chatting with a friend. Write your reply to their message the way you usually write.

### Your previous communication:
{{- $hist := false }}
{{- range $i, $m := .Messages }}
{{- if and (ne $m.Role "system") (gt (len (slice $.Messages $i)) 1) }}{{ $hist = true }}
{{ if eq $m.Role "assistant" }}Me{{ else }}Them{{ end }}: {{ $m.Content }}
{{- end }}
{{- end }}
{{- if not $hist }}
(start of the conversation)
{{- end }}

### Their new message:
{{ range $i, $m := .Messages }}{{ if eq (len (slice $.Messages $i)) 1 }}{{ $m.Content }}{{ end }}{{ end }}

### Your response:
"""


def ollama_modelfile(
    gguf_name: str, template: str, *, tok_eos: str, ctx: int, sampling: dict | None = None
) -> str:
    """An Ollama Modelfile: the GGUF, the twin's prompt template, stop strings, sampling defaults."""
    s = {
        "temperature": 0.7,
        "top_p": 0.9,
        "top_k": 50,
        "repetition_penalty": 1.1,
        "max_new_tokens": 64,
        **(sampling or {}),
    }
    lines = [
        "# Ollama Modelfile written by `twin export-gguf`.",
        "#   ollama create mytwin -f Modelfile && ollama run mytwin",
        f"FROM ./{gguf_name}",
        "",
    ]
    if template == "plain-v1":
        lines.append(f'TEMPLATE """{PLAIN_V1_GO_TEMPLATE}"""')
    else:
        lines.append(
            f"# template {template}: the model's own chat template is stored in the GGUF "
            "(tokenizer.chat_template); Ollama picks it up from there."
        )
    lines += [
        "",
        f'PARAMETER stop "{STOP}"',
        f'PARAMETER stop "{tok_eos}"',
        f"PARAMETER temperature {s['temperature']}",
        f"PARAMETER top_p {s['top_p']}",
        f"PARAMETER top_k {s['top_k']}",
        f"PARAMETER repeat_penalty {s['repetition_penalty']}",
        f"PARAMETER num_predict {s['max_new_tokens']}",
        f"PARAMETER num_ctx {min(ctx, 2048)}",
        "",
    ]
    return "\n".join(lines)
