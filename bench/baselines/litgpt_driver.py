"""litgpt side of the training comparison. Runs ONLY inside ``.venv-bench`` (litgpt installed there).

litgpt can fine-tune a model only from its own checkpoint format (``lit_model.pth`` +
``model_config.yaml``), and its converter (``litgpt convert_to_litgpt``) accepts only model names it
knows (``Config.from_name``). The tiny Falcon is not one of them, so this driver:

1. ``convert``: registers the tiny Falcon as a litgpt config named ``falcon-7b-twin-tiny-...`` —
   "falcon" + "7b" in the name select litgpt's Falcon-7B weight map (``copy_weights_falcon``:
   single ``input_layernorm``, fused multi-query ``query_key_value``), which is the tiny model's
   layout — with Falcon-7B's switches (``n_query_groups=1``, ``shared_attention_norm``,
   ``parallel_residual``, no linear biases) and the tiny sizes read from ``config.json``. The tiny
   model ties ``lm_head`` to the embedding and ``save_pretrained`` stores only the embedding;
   Falcon-7B's checkpoint (what litgpt expects) stores both, so the staging copy writes
   ``lm_head.weight`` explicitly. Then it calls litgpt's own ``convert_hf_checkpoint``.
2. ``logits``: runs litgpt's ``GPT`` on token ids, so the caller can check the conversion against
   the Hugging Face model's logits (it must match to float tolerance, or the comparison is void).
3. ``to-hf``: converts litgpt's merged fine-tuned model (``final/lit_model.pth``) back to a
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
    """litgpt Config kwargs for a Hugging Face Falcon config with Falcon-7B's architecture."""
    if hf_config.get("model_type") != "falcon":
        raise SystemExit(f"not a Falcon config (model_type={hf_config.get('model_type')!r})")
    if (
        hf_config.get("new_decoder_architecture")
        or hf_config.get("alibi")
        or not hf_config.get("parallel_attn")
    ):
        raise SystemExit("only Falcon-7B's layout (multi-query, parallel attention, rotary) is mapped here")
    n_embd = hf_config["hidden_size"]
    rope = (hf_config.get("rope_parameters") or {}).get("rope_theta") or hf_config.get("rope_theta", 10000.0)
    return dict(
        name=name,
        hf_config=dict(org="twin-bench", name=name),
        block_size=hf_config.get("max_position_embeddings", 2048),
        vocab_size=hf_config["vocab_size"],
        padded_vocab_size=hf_config["vocab_size"],  # litgpt would round up to 512: shapes must match
        n_layer=hf_config["num_hidden_layers"],
        n_head=hf_config["num_attention_heads"],
        n_embd=n_embd,
        rotary_percentage=1.0,
        rope_base=int(rope),
        n_query_groups=1 if hf_config.get("multi_query", True) else hf_config["num_attention_heads"],
        bias=bool(hf_config.get("bias", False)),
        norm_eps=hf_config.get("layer_norm_epsilon", 1e-5),
        intermediate_size=hf_config.get("ffn_hidden_size") or 4 * n_embd,
        parallel_residual=True,
        shared_attention_norm=True,
    )


def convert(hf_dir: Path, out_dir: Path) -> None:
    import torch
    from litgpt import config as lit_config
    from litgpt.scripts.convert_hf_checkpoint import convert_hf_checkpoint
    from safetensors.torch import load_file, save_file

    hf_config = json.loads((hf_dir / "config.json").read_text(encoding="utf-8"))
    name = out_dir.name
    if "falcon" not in name or "7b" not in name:
        raise SystemExit(
            f"{out_dir}: the directory name must contain 'falcon' and '7b' (litgpt's Falcon-7B map)"
        )
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
    if "lm_head.weight" not in weights:  # tied in the HF model; Falcon-7B's files store both
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
    h = sub.add_parser("to-hf")
    h.add_argument("--lit", type=Path, required=True)
    h.add_argument("--out", type=Path, required=True)
    sub.add_parser("cli", help="run the litgpt command line (arguments after 'cli' go to litgpt)")
    a = p.parse_args(argv)
    if a.cmd == "convert":
        convert(a.hf, a.out)
    elif a.cmd == "logits":
        logits(a.ckpt, a.ids, a.out)
    else:
        to_hf(a.lit, a.out)


if __name__ == "__main__":
    main(sys.argv[1:])
