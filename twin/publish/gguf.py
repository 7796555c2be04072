"""``twin publish gguf``: a merged model dir -> one GGUF + an Ollama ``Modelfile``; or, with
``--adapter-only``, the LoRA adapter itself as a GGUF adapter applied on top of the stock model.

This module is the two exports, each a plan of tensors and metadata handed to the writer:

* what differs per architecture (hyperparameters, tensor names, Llama's Q/K permutation, Falcon's
  QKV order): :mod:`twin.publish.gguf_arch`;
* the tokenizer metadata (tokens, merges, pre-tokenizer, chat template): :mod:`twin.publish.gguf_tokenizer`;
* the file (GGML types ``f16``/``q8_0``/``f32``, streamed and atomic): :mod:`twin.publish.gguf_writer`;
* the Modelfile and its Go template: :mod:`twin.publish.ollama`.

Models: shapes come from the safetensors headers first, then each tensor is loaded and reordered only
when written. A tied ``lm_head`` is not written: llama.cpp's loaders fall back to ``token_embd``.
Adapters: each LoRA pair as ``<gguf name>.lora_a`` / ``.lora_b`` with ``adapter.lora.alpha``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from twin.checks import SAFE_NAME
from twin.errors import TwinError
from twin.publish.gguf_arch import (
    add_model_kv,
    llama3_rope_factors,
    model_params,
    rows_to_gguf,
    tensor_name_map,
)
from twin.publish.gguf_tokenizer import add_tokenizer_kv, hf_tokenizer, tokenizer_metadata
from twin.publish.gguf_writer import OUTTYPES, GgufTensor, out_type, write_gguf

log = logging.getLogger(__name__)


def _load_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TwinError(f"{path}: missing; export from a model dir written by `twin publish merge`") from None
    except ValueError as e:
        raise TwinError(f"{path}: not valid JSON ({e})") from None


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
    stem = file_stem(name, src)
    cfg = _load_json(src / "config.json")
    hp = model_params(cfg, src / "config.json")
    template = template or read_merged_meta(src).get("template") or "plain-v1"
    name = name or src.name
    hf_tok = hf_tokenizer(src)
    tok = tokenizer_metadata(hf_tok, hp["vocab_size"], hp["arch"], src)
    if tok["eos"] is None:
        raise TwinError(f"{src}: the tokenizer has no eos_token; llama.cpp needs one to stop")
    prompt = prompt_settings(template, hf_tok, stop_tokens(src, tok))
    bos = tok["bos"] if tok["bos"] is not None else cfg.get("bos_token_id")
    eot = tok["eos"] if tok["chat_template"] else None  # chat families end each turn with their eos

    def add_kv(writer: Any) -> None:
        writer.add_name(name)
        add_model_kv(writer, hp, outtype)
        add_tokenizer_kv(writer, tok, add_bos=prompt["add_bos"], eot=eot, bos=bos)
        _add_twin_kv(writer, template, sampling)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gguf_path = out / f"{stem}-{outtype}.gguf"
    handles: dict[Path, Any] = {}
    try:
        tensors = _model_tensors(src, hp, outtype, handles)
        write_gguf(gguf_path, hp["arch"], add_kv, tensors)
    finally:
        handles.clear()
    modelfile = _write_modelfile(out, f"./{gguf_path.name}", template, prompt, hp, sampling)
    log.info("wrote %s (%d tensors) and %s", gguf_path, len(tensors), modelfile)
    return {"gguf": str(gguf_path), "modelfile": str(modelfile), "tensors": len(tensors), "outtype": outtype}


def file_stem(name: str | None, src: Path) -> str:
    """The .gguf file's name before ``-<type>.gguf``: ``--name`` (letters, digits, '.', '_', '-'; one
    line otherwise: a '/' wrote the file outside --out), else the input dir's name with every other
    run of characters as '-' (a space in the Modelfile's ``FROM`` path is refused by Ollama)."""
    if name is not None:
        if not SAFE_NAME.fullmatch(name):
            raise TwinError(
                f"--name {name!r}: use letters, digits, '.', '_' or '-' (it names the .gguf file in --out)"
            )
        return name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", src.resolve().name).strip("-.") or "twin"


def _check_source(path: str | os.PathLike, outtype: str, hint: str) -> Path:
    if outtype not in OUTTYPES:
        raise TwinError(f"--type {outtype!r}: use one of {', '.join(OUTTYPES)}")
    src = Path(path)
    if not src.is_dir():
        raise TwinError(f"{src}: directory not found; {hint}")
    return src


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


def _model_tensors(src: Path, hp: dict, outtype: str, handles: dict) -> list[GgufTensor]:
    """What to write, in file order; each tensor loads (through ``handles``) only when written."""
    from gguf import MODEL_TENSOR, TENSOR_NAMES
    from gguf import GGMLQuantizationType as Q

    tmap = tensor_name_map(hp)
    plan: list[GgufTensor] = []
    for f, hf_name, shape in _iter_tensor_names(_weight_files(src)):
        if (hf_name == "lm_head.weight" and hp["tied"]) or hf_name.endswith("rotary_emb.inv_freq"):
            continue  # tied: llama.cpp reuses token_embd; inv_freq: recomputed from rope_freq_base
        gname = tmap.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gname is None:
            raise TwinError(
                f"{f}: tensor {hf_name!r} has no GGUF name for {hp['arch']}; is this checkpoint intact?"
            )
        plan.append(GgufTensor(gname, shape, out_type(shape, outtype), _loader(handles, f, hf_name, hp)))
    if hp.get("rope_scaling"):
        factors = llama3_rope_factors(hp)
        name = f"{TENSOR_NAMES[MODEL_TENSOR.ROPE_FREQS]}.weight"
        plan.append(GgufTensor(name, list(factors.shape), Q.F32, lambda: factors))
    return plan


def _loader(handles: dict, f: Path, hf_name: str, hp: dict) -> Callable[[], Any]:
    def load() -> Any:
        from safetensors import safe_open

        if f not in handles:
            handles[f] = safe_open(str(f), framework="pt")
        return rows_to_gguf(hf_name, handles[f].get_tensor(hf_name).float().numpy(), hp)

    return load


def stop_tokens(model_dir: Path, tok: dict) -> list[str]:
    """Every token generation stops at: generation_config's eos ids (the family's), then the eos."""
    gen_path = model_dir / "generation_config.json"
    ids = _load_json(gen_path).get("eos_token_id") if gen_path.is_file() else None
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    out = [tok["tokens"][i] for i in ids if isinstance(i, int) and 0 <= i < len(tok["tokens"])]
    return list(dict.fromkeys([*out, tok["tokens"][tok["eos"]]]))


def _add_twin_kv(writer: Any, template: str, sampling: dict | None) -> None:
    s = sampling or {}
    writer.add_sampling_temp(float(s.get("temperature", 0.7)))
    writer.add_sampling_top_p(float(s.get("top_p", 0.9)))
    writer.add_sampling_top_k(int(s.get("top_k", 50)))
    writer.add_sampling_penalty_repeat(float(s.get("repetition_penalty", 1.1)))
    writer.add_string("twin.template", template)


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
    stem = file_stem(name, adapter)
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
    gguf_path = out / f"{stem}-lora-{outtype}.gguf"
    write_gguf(gguf_path, hp["arch"], add_kv, tensors)
    hf_tok = hf_tokenizer(base_dir)
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


def _adapter_tensors(adapter: Path, hp: dict, outtype: str, scale_fix: float) -> list[GgufTensor]:
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
    tmap = tensor_name_map(hp)
    plan: list[GgufTensor] = []
    for hf_name, ab in pairs.items():
        gname = tmap.get_name(hf_name, try_suffixes=(".weight",))
        if gname is None or len(ab) != 2 or (hf_name == "lm_head.weight" and hp["tied"]):
            raise TwinError(f"{f}: no llama.cpp {hp['arch']} weight for the LoRA pair on {hf_name!r}")
        a, b = ab["A"], rows_to_gguf(hf_name, ab["B"] * scale_fix, hp)
        plan.append(
            GgufTensor(f"{gname}.lora_a", list(a.shape), out_type(list(a.shape), outtype), lambda a=a: a)
        )
        plan.append(
            GgufTensor(f"{gname}.lora_b", list(b.shape), out_type(list(b.shape), outtype), lambda b=b: b)
        )
    if not plan:
        raise TwinError(f"{f}: no LoRA matrices in it")
    return plan
