"""litgpt side of the training comparison. Runs ONLY inside ``.venv-bench`` (litgpt installed there).

litgpt can fine-tune a model only from its own checkpoint format (``lit_model.pth`` +
``model_config.yaml``), and its converter (``litgpt convert_to_litgpt``) accepts only model names it
knows (``Config.from_name``). The tiny bases are not among them, so this driver:

1. ``convert``: registers the tiny base as a litgpt config under the checkpoint directory's name,
   which selects litgpt's weight map and tokenizer rules:

   * Falcon: a name with "falcon" and "7b" selects litgpt's Falcon-7B weight map
     (``copy_weights_falcon``: single ``input_layernorm``, fused multi-query ``query_key_value``),
     which is the tiny model's layout, with Falcon-7B's switches (``n_query_groups=1``,
     ``shared_attention_norm``, ``parallel_residual``, no linear biases). The tiny Falcon ties
     ``lm_head`` to the embedding and ``save_pretrained`` stores only the embedding; Falcon-7B's
     checkpoint (what litgpt expects) stores both, so the staging copy writes ``lm_head.weight``.
   * Llama: a name starting with "Llama-3" makes litgpt's tokenizer put ``<|begin_of_text|>``
     first, as Llama 3's does; ``LLaMAMLP`` + ``RMSNorm`` select ``copy_weights_hf_llama``
     (separate q/k/v fused into litgpt's ``qkv``), with Llama 3's switches (grouped-query
     attention, no biases, no parallel residual) and the tiny sizes.

   Then it calls litgpt's own ``convert_hf_checkpoint``.
2. ``logits``: runs litgpt's ``GPT`` on token ids, so the caller can check the conversion against
   the Hugging Face model's logits (it must match to float tolerance, or the comparison is void).
3. ``tokens``: litgpt's own ``SFTDataset`` (its tokenizer, prompt masking and truncation) over the
   JSON data, so the caller can check litgpt trains on the same token ids and reply masks as twin.
4. ``to-hf``: converts litgpt's merged fine-tuned model (``final/lit_model.pth``) back to a
   Hugging Face state dict with litgpt's ``convert_lit_checkpoint``, so one evaluator scores all
   three trainers.

Fine-tuning itself uses the unmodified ``litgpt finetune_lora`` command line (see
``bench/compare_train.py``: ``litgpt_command``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "generation_config.json", "config.json")


def litgpt_config(hf_config: dict, name: str) -> dict:
    """litgpt Config kwargs for a Hugging Face Falcon (Falcon-7B's layout) or Llama config."""
    kind = hf_config.get("model_type")
    if kind == "falcon":
        if "falcon" not in name or "7b" not in name:
            raise SystemExit(f"{name}: the name must contain 'falcon' and '7b' (litgpt's Falcon-7B map)")
        return _common_config(hf_config, name) | _falcon_switches(hf_config)
    if kind == "llama":
        if not name.startswith("Llama-3"):
            raise SystemExit(f"{name}: the name must start with 'Llama-3' (litgpt's Llama 3 tokenizer rules)")
        return _common_config(hf_config, name) | _llama_switches(hf_config)
    raise SystemExit(f"model_type {kind!r}: only falcon and llama are mapped to litgpt here")


def _common_config(hf_config: dict, name: str) -> dict:
    rope = (hf_config.get("rope_parameters") or {}).get("rope_theta") or hf_config.get("rope_theta", 10000.0)
    return dict(
        name=name,
        hf_config=dict(org="twin-bench", name=name),
        block_size=hf_config.get("max_position_embeddings", 2048),
        vocab_size=hf_config["vocab_size"],
        padded_vocab_size=hf_config["vocab_size"],  # litgpt would round up to 512: shapes must match
        n_layer=hf_config["num_hidden_layers"],
        n_head=hf_config["num_attention_heads"],
        n_embd=hf_config["hidden_size"],
        rotary_percentage=1.0,
        rope_base=int(rope),
        bias=bool(hf_config.get("bias", False)),
    )


def _falcon_switches(hf_config: dict) -> dict:
    if (
        hf_config.get("new_decoder_architecture")
        or hf_config.get("alibi")
        or not hf_config.get("parallel_attn")
    ):
        raise SystemExit("only Falcon-7B's layout (multi-query, parallel attention, rotary) is mapped here")
    return dict(
        n_query_groups=1 if hf_config.get("multi_query", True) else hf_config["num_attention_heads"],
        norm_eps=hf_config.get("layer_norm_epsilon", 1e-5),
        intermediate_size=hf_config.get("ffn_hidden_size") or 4 * hf_config["hidden_size"],
        parallel_residual=True,
        shared_attention_norm=True,
    )


def _llama_switches(hf_config: dict) -> dict:
    if hf_config.get("attention_bias") or hf_config.get("mlp_bias") or hf_config.get("tie_word_embeddings"):
        raise SystemExit("only Llama 3's layout (no biases, untied head) is mapped here")
    heads = hf_config["num_attention_heads"]
    return dict(
        n_query_groups=hf_config.get("num_key_value_heads") or heads,
        head_size=hf_config.get("head_dim") or hf_config["hidden_size"] // heads,
        norm_eps=hf_config.get("rms_norm_eps", 1e-5),
        intermediate_size=hf_config["intermediate_size"],
        parallel_residual=False,
        norm_class_name="RMSNorm",
        mlp_class_name="LLaMAMLP",
    )


def convert(hf_dir: Path, out_dir: Path) -> None:
    import torch
    from litgpt import config as lit_config
    from litgpt.scripts.convert_hf_checkpoint import convert_hf_checkpoint
    from safetensors.torch import load_file, save_file

    hf_config = json.loads((hf_dir / "config.json").read_text(encoding="utf-8"))
    name = out_dir.name
    conf = litgpt_config(hf_config, name)
    lit_config.configs.append(conf)
    lit_config.name_to_config[name] = conf

    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    for f in TOKENIZER_FILES:
        if (hf_dir / f).is_file():
            shutil.copy2(hf_dir / f, out_dir / f)
    weights = {}
    for f in sorted(hf_dir.glob("*.safetensors")):
        weights.update(load_file(f))
    if "lm_head.weight" not in weights and hf_config.get("model_type") == "falcon":
        # tied in the HF model; Falcon-7B's files store both
        weights["lm_head.weight"] = weights["transformer.word_embeddings.weight"].clone()
    staged = out_dir / "model.safetensors"
    save_file({k: v.contiguous() for k, v in weights.items()}, staged)
    convert_hf_checkpoint(checkpoint_dir=out_dir, model_name=name, dtype="float32")
    staged.unlink()
    sd = torch.load(out_dir / "lit_model.pth", map_location="cpu", weights_only=True)
    print(json.dumps({"converted": str(out_dir), "config": conf, "tensors": len(sd)}))


def logits(ckpt: Path, ids_file: Path, out_file: Path) -> None:
    import torch
    from litgpt.model import GPT, Config

    config = Config.from_file(ckpt / "model_config.yaml")
    model = GPT(config)
    model.load_state_dict(torch.load(ckpt / "lit_model.pth", map_location="cpu", weights_only=True))
    model.eval()
    ids = torch.load(ids_file, weights_only=True)
    with torch.no_grad():
        out = model(ids)
    torch.save(out, out_file)


def tokens(ckpt: Path, json_file: Path, max_seq_length: int, out_file: Path) -> None:
    """What litgpt trains on: each example's token ids and masked prompt length, from ``SFTDataset``."""
    from litgpt.data.base import SFTDataset
    from litgpt.prompts import Default
    from litgpt.tokenizer import Tokenizer

    rows = json.loads(json_file.read_text(encoding="utf-8"))
    data = SFTDataset(rows, Tokenizer(ckpt), Default(), max_seq_length=max_seq_length, mask_prompt=True)
    out = []
    for i in range(len(data)):
        item = data[i]
        out.append(
            {
                "ids": item["input_ids"].tolist(),
                "prompt_len": int((item["labels"] == data.ignore_index).sum()),
            }
        )
    out_file.write_text(json.dumps(out), encoding="utf-8")


def to_hf(lit_dir: Path, out_dir: Path) -> None:
    from litgpt.scripts.convert_lit_checkpoint import convert_lit_checkpoint

    convert_lit_checkpoint(checkpoint_dir=lit_dir, output_dir=out_dir)


def cli(argv: list[str]) -> None:
    """``litgpt <argv>``, with one addition: a prompt style ``default`` that passes text through.

    The examples' prompts are rendered by ``twin/prompt.py`` beforehand (so all trainers see
    identical text); litgpt's ``Default`` style does exactly that, but its ``--data.prompt_style``
    option only accepts names from ``litgpt.prompts.prompt_styles``, where it is missing.
    """
    from litgpt import prompts
    from litgpt.__main__ import main as litgpt_main

    prompts.prompt_styles.setdefault("default", prompts.Default)
    sys.argv = ["litgpt", *argv]
    litgpt_main()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "cli":  # everything after it goes to litgpt untouched
        cli(argv[1:])
        return
    p = argparse.ArgumentParser(prog="litgpt_driver")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert")
    c.add_argument("--hf", type=Path, required=True)
    c.add_argument("--out", type=Path, required=True)
    g = sub.add_parser("logits")
    g.add_argument("--ckpt", type=Path, required=True)
    g.add_argument("--ids", type=Path, required=True)
    g.add_argument("--out", type=Path, required=True)
    t = sub.add_parser("tokens")
    t.add_argument("--ckpt", type=Path, required=True)
    t.add_argument("--json", type=Path, required=True)
    t.add_argument("--max-seq-length", type=int, required=True)
    t.add_argument("--out", type=Path, required=True)
    h = sub.add_parser("to-hf")
    h.add_argument("--lit", type=Path, required=True)
    h.add_argument("--out", type=Path, required=True)
    sub.add_parser("cli", help="run the litgpt command line (arguments after 'cli' go to litgpt)")
    a = p.parse_args(argv)
    if a.cmd == "convert":
        convert(a.hf, a.out)
    elif a.cmd == "logits":
        logits(a.ckpt, a.ids, a.out)
    elif a.cmd == "tokens":
        tokens(a.ckpt, a.json, a.max_seq_length, a.out)
    else:
        to_hf(a.lit, a.out)


if __name__ == "__main__":
    main(sys.argv[1:])
