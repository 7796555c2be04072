"""Train-stage benchmark: tokens/s, padding fraction and peak memory of the tiny recipe on CPU,
plus the Falcon-7B GPU memory budget computed from its architecture.

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

# Falcon-7B (tiiuae/falcon-7b config.json) and the reference recipe (pipelines/falcon-7b.yaml).
FALCON_7B = {"params": 6.92e9, "hidden": 4544, "layers": 32, "heads": 71, "vocab": 65024, "ffn": 4 * 4544}


def falcon7b_memory(
    *, seq: int = 512, micro: int = 4, r: int = 16, quant: str | None = None, checkpointing: bool = True,
    reply_share: float = 0.25,
) -> dict[str, float]:  # fmt: skip
    """GiB estimate of GPU memory for LoRA on Falcon-7B (bf16), from the architecture alone.

    weights: bf16 = 2 B/param; nf4 ~ 0.55 B/param for the decoder blocks, embedding kept in bf16.
    adapter: LoRA on query_key_value (4544 -> 4672), params + grads + AdamW moments (bf16-true: 2 B each).
    activations: with gradient checkpointing, one hidden state per layer boundary plus one layer
    recomputed in full; without it, every layer's (~10 x hidden + 2 x ffn) values per token.
    logits: only the reply tokens go through the LM head (twin's ResponseLoss), in float32.
    """
    f = FALCON_7B
    gib = 2**30
    emb = f["vocab"] * f["hidden"]
    blocks = f["params"] - emb
    weights = (blocks * 0.55 + emb * 2) if quant == "nf4" else (blocks * 1.0 + emb * 2) if quant == "int8" else f[
        "params"
    ] * 2  # fmt: skip
    head_dim = f["hidden"] // f["heads"]
    lora_params = f["layers"] * r * (f["hidden"] + f["hidden"] + 2 * head_dim)
    adapter = lora_params * 2 * 4  # weights, grads, 2 AdamW moments
    tokens = seq * micro
    per_layer = tokens * (10 * f["hidden"] + 2 * f["ffn"]) * 2
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


def _setup(work: Path, n_train: int) -> tuple[Path, Path]:
    from tests.synthetic_chats import write_synthetic_processed
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


def _falcon7b_budget() -> dict[str, dict[str, float]]:
    return {
        "LoRA bf16, grad checkpointing": falcon7b_memory(),
        "LoRA bf16, no checkpointing": falcon7b_memory(checkpointing=False),
        "QLoRA nf4, grad checkpointing": falcon7b_memory(quant="nf4"),
    }


def _print_tables(table: list[dict], peak: float, budget: dict[str, dict[str, float]]) -> None:
    print("| variant | tokens/s (median) | padding |")
    print("|---|---:|---:|")
    for row in table:
        print(f"| {row['variant']} | {row['tokens_per_s']:,.0f} | {100 * row['padding_fraction']:.1f}% |")
    print(f"\npeak RSS (whole process): {peak:,.0f} MB\n")
    print("| Falcon-7B (seq 512, micro-batch 4, r=16) | " + " | ".join(next(iter(budget.values()))) + " |")
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
    budget = _falcon7b_budget()
    report = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": "python -m bench.bench_train" + (" --quick" if args.quick else ""),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "data": str(args.data) if args.data else f"synthetic, {64 if args.quick else 512} examples",
        "base": str(args.base) if args.base else "fresh tiny Falcon",
        "tiny": table,
        "peak_rss_mb": peak,
        "falcon7b_budget_gib": {k: {p: round(v, 2) for p, v in d.items()} for k, d in budget.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    _print_tables(table, peak, budget)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
