"""Train-stage benchmark: tokens/s, padding fraction and peak memory of the tiny recipe on CPU,
plus the GPU memory budget of each recipe's base (Falcon-7B, Llama-3.1-8B, Qwen2.5-7B) computed from
its architecture (:func:`lora_memory`; the figures in the pipelines/*.yaml headers).

    .venv/bin/python -m bench.bench_train            # 2 rounds x 40 steps per variant
    .venv/bin/python -m bench.bench_train --quick    # smoke: 1 round x 2 steps
    .venv/bin/python -m bench.bench_train --data data/processed --base checkpoints/tiny-falcon

Variants run alternately (grouped/ungrouped batches, 1 vs 2 threads) so machine noise hits both.
Results: a table on stdout and ``bench/out/train.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch; see prefer_passive_omp_wait
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"


# Shapes from each base's config.json on the Hub; `targets` are the LoRA targets twin picks for the
# family (twin/model/lora.py) as (in, out) features. Falcon-7B: multi-query attention, GELU MLP, tied
# embeddings. Llama-3.1-8B and Qwen2.5-7B: grouped-query attention, SwiGLU MLP, untied head.
def _attn_mlp_targets(hidden: int, heads: int, kv_heads: int, ffn: int) -> list[tuple[int, int]]:
    """q, k, v, o, gate, up, down as (in, out) features."""
    kv = hidden // heads * kv_heads
    return [(hidden, hidden), (hidden, kv), (hidden, kv), (hidden, hidden), (hidden, ffn), (hidden, ffn), (ffn, hidden)]  # fmt: skip


FALCON_7B = {"params": 6.92e9, "hidden": 4544, "layers": 32, "heads": 71, "kv_heads": 1, "ffn": 4 * 4544,
             "vocab": 65024, "tied": True, "swiglu": False, "targets": [(4544, 4544 + 2 * 64)]}  # fmt: skip
LLAMA_31_8B = {"params": 8.03e9, "hidden": 4096, "layers": 32, "heads": 32, "kv_heads": 8, "ffn": 14336,
               "vocab": 128256, "tied": False, "swiglu": True, "targets": _attn_mlp_targets(4096, 32, 8, 14336)}  # fmt: skip
QWEN_25_7B = {"params": 7.62e9, "hidden": 3584, "layers": 28, "heads": 28, "kv_heads": 4, "ffn": 18944,
              "vocab": 152064, "tied": False, "swiglu": True, "targets": _attn_mlp_targets(3584, 28, 4, 18944)}  # fmt: skip
BASES = {"Falcon-7B": FALCON_7B, "Llama-3.1-8B": LLAMA_31_8B, "Qwen2.5-7B": QWEN_25_7B}
SETUPS = {  # the recipes' setups: pipelines/<base>.yaml and its -qlora variant
    "LoRA bf16, grad checkpointing": {},
    "LoRA bf16, no checkpointing": {"checkpointing": False},
    "QLoRA nf4, grad checkpointing": {"quant": "nf4"},
    "QLoRA nf4, grad checkpointing, micro-batch 2": {"quant": "nf4", "micro": 2},  # the -qlora recipes
}


def lora_params(shape: dict, r: int = 16) -> int:
    """LoRA parameters on the shape's targets: A is r x in, B is out x r, per layer."""
    return shape["layers"] * r * sum(i + o for i, o in shape["targets"])


def lora_memory(
    shape: dict = FALCON_7B, *, seq: int = 512, micro: int = 4, r: int = 16, quant: str | None = None,
    checkpointing: bool = True, reply_share: float = 0.25,
) -> dict[str, float]:  # fmt: skip
    """GiB estimate of GPU memory for LoRA on a base of this ``shape`` (bf16), from the architecture alone.

    weights: bf16 = 2 B/param; nf4 ~ 0.55 B/param for the decoder blocks, embedding and an untied
    head kept in bf16 (bitsandbytes leaves them unquantized).
    adapter: LoRA on the shape's targets, params + grads + AdamW moments (bf16-true: 2 B each).
    activations: with gradient checkpointing, one hidden state per layer boundary plus one layer
    recomputed in full; without it, every layer's values per token: ~10 x hidden on the attention
    side (k/v counted at full width: an upper bound under grouped-query attention) plus the MLP's
    2 x ffn (GELU: pre- and post-activation) or 3 x ffn (SwiGLU: gate, up and their product).
    logits: only the reply tokens go through the LM head (twin's ResponseLoss), in float32.
    """
    f = shape
    gib = 2**30
    emb = f["vocab"] * f["hidden"] * (1 if f["tied"] else 2)
    blocks = f["params"] - emb
    weights = (blocks * 0.55 + emb * 2) if quant == "nf4" else (blocks * 1.0 + emb * 2) if quant == "int8" else f[
        "params"
    ] * 2  # fmt: skip
    adapter = lora_params(f, r) * 2 * 4  # weights, grads, 2 AdamW moments
    tokens = seq * micro
    per_layer = tokens * (10 * f["hidden"] + (3 if f["swiglu"] else 2) * f["ffn"]) * 2
    boundary = f["layers"] * tokens * f["hidden"] * 2
    activations = boundary + per_layer if checkpointing else f["layers"] * per_layer
    logits = tokens * reply_share * f["vocab"] * 4 * 2  # logits + their gradient
    overhead = 1.0 * gib  # CUDA context, allocator slack, kernels' workspaces
    parts = {
        "weights": weights,
        "adapter+optimizer": adapter,
        "activations": activations,
        "logits": logits,
        "cuda overhead": overhead,
    }
    parts = {k: v / gib for k, v in parts.items()}
    parts["total"] = sum(parts.values())
    return parts


def falcon7b_memory(**kw: object) -> dict[str, float]:
    """:func:`lora_memory` for Falcon-7B (the reference recipe's budget in bench/RESULTS.md)."""
    return lora_memory(FALCON_7B, **kw)  # type: ignore[arg-type]


def _setup(work: Path, n_train: int) -> tuple[Path, Path]:
    from devkit.synthetic_chats import write_synthetic_processed
    from twin.model.tiny import build_tiny, texts_from_dir

    data = write_synthetic_processed(work / "data", n_train=n_train, n_val=16, seed=7, max_context_pairs=5)
    base = work / "tiny-falcon"
    if not (base / "model.safetensors").exists():
        build_tiny(base, texts_from_dir(data), seed=0)
    return base, data


def _run(base: Path, data: Path, work: Path, steps: int, over: dict) -> dict:
    from twin.config import deep_merge, load_config
    from twin.train.config import TrainConfig
    from twin.train.loop import train

    cfg = load_config(
        TrainConfig,
        REPO / "pipelines" / "tiny.yaml",
        deep_merge(
            {
                "base": str(base),
                "run": "bench",
                "out_dir": str(work / "ckpt"),
                "data": {"dir": str(data)},
                "max_steps": steps,
                "checkpoint_every_steps": 0,
                "eval": {"every_steps": 0, "max_batches": 1},
            },
            over,
        ),
    )
    return train(cfg)


VARIANTS = {
    "grouped, 2 threads": {"data": {"group_by_length": True}, "num_threads": 2},
    "ungrouped, 2 threads": {"data": {"group_by_length": False}, "num_threads": 2},
    "grouped, 1 thread": {"data": {"group_by_length": True}, "num_threads": 1},
}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_train", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round of 2 steps")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT / "train.json")
    ap.add_argument("--data", type=Path, help="a prepare output dir instead of synthetic chats")
    ap.add_argument("--base", type=Path, help="a base model dir instead of a fresh tiny Falcon")
    return ap.parse_args(argv)


def _measure(base: Path, data: Path, work: Path, steps: int, rounds: int) -> dict[str, list[dict]]:
    """Every variant's train() results, the variants alternating within each round."""
    results: dict[str, list[dict]] = {k: [] for k in VARIANTS}
    for _ in range(rounds):
        for name, over in VARIANTS.items():
            results[name].append(_run(base, data, work, steps, over))
    return results


def _summarize(results: dict[str, list[dict]], steps: int, rounds: int) -> list[dict]:
    return [
        {
            "variant": name,
            "tokens_per_s": round(statistics.median(r["tokens_per_s"] for r in runs), 1),
            "padding_fraction": runs[0]["padding_fraction"],
            "steps": steps,
            "rounds": rounds,
        }
        for name, runs in results.items()
    ]


def _budget() -> dict[str, dict[str, float]]:
    return {
        f"{name}: {setup}": lora_memory(shape, **kw)
        for name, shape in BASES.items()
        for setup, kw in SETUPS.items()
    }


def _print_tables(table: list[dict], peak: float, budget: dict[str, dict[str, float]]) -> None:
    print("| variant | tokens/s (median) | padding |")
    print("|---|---:|---:|")
    for row in table:
        print(f"| {row['variant']} | {row['tokens_per_s']:,.0f} | {100 * row['padding_fraction']:.1f}% |")
    print(f"\npeak RSS (whole process): {peak:,.0f} MB\n")
    print("| base: setup (seq 512, micro-batch 4, r=16) | " + " | ".join(next(iter(budget.values()))) + " |")
    print("|---|" + "---:|" * len(next(iter(budget.values()))))
    for k, d in budget.items():
        print(f"| {k} | " + " | ".join(f"{v:.1f}" for v in d.values()) + " |")


def main(argv: list[str] | None = None) -> dict:
    args = _parse_args(argv)
    steps, rounds = (2, 1) if args.quick else (args.steps, args.rounds)
    import logging

    logging.basicConfig(level=logging.WARNING)
    import torch

    work = OUT / "train-work"
    base, data = _setup(work, 64 if args.quick else 512)
    results = _measure(args.base or base, args.data or data, work, steps, rounds)
    table = _summarize(results, steps, rounds)
    peak = max(r["peak_memory_mb"] for runs in results.values() for r in runs)
    budget = _budget()
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python -m bench.bench_train" + (" --quick" if args.quick else ""),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "data": str(args.data) if args.data else f"synthetic, {64 if args.quick else 512} examples",
        "base": str(args.base) if args.base else "fresh tiny Falcon",
        "tiny": table,
        "peak_rss_mb": peak,
        "falcon7b_budget_gib": {
            k.split(": ", 1)[1]: {p: round(v, 2) for p, v in d.items()}
            for k, d in budget.items()
            if k.startswith("Falcon-7B")
        },
        "gpu_budget_gib": {k: {p: round(v, 2) for p, v in d.items()} for k, d in budget.items()},
        "lora_params_r16": {name: lora_params(shape) for name, shape in BASES.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    _print_tables(table, peak, budget)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
