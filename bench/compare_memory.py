"""The tiny twin with and without memory (`--memory K`) on the bundled sample, same steps and seed.

    .venv/bin/python -m bench.compare_memory --workdir DIR     # full: the demo's own settings
    .venv/bin/python -m bench.compare_memory --quick           # smoke: a few steps, nothing written

First runs `twin demo --serve 0 --workdir DIR` (its stages are reused when current), then trains
the demo's recipe twice on the demo's base and data — `data.memory=0` and `data.memory=K`, same
seed, same steps (the demo's `TRAIN_OVERRIDES`) — and evaluates both with the demo's eval settings.
Reported per run: val loss at the end of training, the eval's loss of the real replies, the
authorship share of base and twin replies (with 95% intervals), BLEU-4 / ROUGE-L, mean prompt
tokens, generation seconds per reply, and BM25 retrieval time per query. One round each: the
training runs take minutes, so the latency figures are indicative on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def _train_and_eval(opts: object, k: int, quick: bool) -> dict:
    from twin.config import load_config
    from twin.demo import EVAL_NEW_TOKENS
    from twin.eval.run import EvalConfig, run_eval
    from twin.train.config import TrainConfig
    from twin.train.loop import train

    p = opts.paths
    run = f"memory-{k}"
    overrides = {
        "base": str(p["base"]),
        "run": run,
        "out_dir": str(p["checkpoints"]),
        "data": {"dir": str(p["processed"]), "memory": k},
        **opts.train_overrides,
    }
    started = time.perf_counter()
    metrics = train(load_config(TrainConfig, p["config"], overrides))
    train_s = time.perf_counter() - started
    cfg = EvalConfig(
        adapter=str(p["checkpoints"] / "adapters" / run),
        data=str(p["processed"]),
        run=run,
        out_dir=str(p["checkpoints"]),
        max_examples=opts.eval_examples,
        max_new_tokens=4 if quick else EVAL_NEW_TOKENS,
    )
    r = run_eval(cfg, progress=False)
    a = r["authorship"]
    shares = (
        {s: {x: a[s][x] for x in ("share", "low", "high")} for s in ("base", "twin")} if "twin" in a else {}
    )
    return {
        "memory": k,
        "train_val_loss": metrics.get("val_loss"),
        "train_seconds": train_s,
        "eval_loss": {s: r["loss"][s]["loss"] for s in ("base", "twin")},
        "authorship": shares,
        "authorship_status": a.get("status"),
        "bleu4": r["overlap"]["twin"]["bleu4"],
        "rougeL": r["overlap"]["twin"]["rougeL"],
        "prompt_tokens": r["prompt_tokens"]["mean"],
        "seconds_per_reply": r["seconds"]["per_reply"],
    }


def _retrieval_ms(opts: object, k: int) -> float:
    from twin.examples import read_examples
    from twin.memory import Memory, ensure_memory

    p = opts.paths
    memory = Memory.open(ensure_memory(p["processed"]))
    val = read_examples(p["processed"] / "val.jsonl")
    started = time.perf_counter()
    for ex in val:
        memory.retrieve(ex["instruction"], k, contact=ex.get("contact"))
    return (time.perf_counter() - started) / len(val) * 1000


def prompt_cost(adapter: Path, data: Path, n: int = 30, rounds: int = 3) -> dict:
    """Prompt tokens and one forward pass over the whole prompt (the prefill every reply pays),
    with the adapter's memory and with the same template's section left empty, alternating."""
    import statistics

    import torch

    from twin.adapter_meta import read_meta
    from twin.examples import read_examples
    from twin.inference.generate import Conversation, build_reply_prompt
    from twin.memory import adapter_memory
    from twin.model.load import load_base, resolve_base

    meta = read_meta(adapter)
    model, tok = load_base(resolve_base(adapter, None, meta))
    memory = adapter_memory(adapter, meta)
    val = read_examples(data / "val.jsonl")[:n]
    prompts: dict[str, list] = {"with": [], "without": []}
    for ex in val:
        hist = ex["context"]
        for side, mem in (("with", memory), ("without", None)):
            text = build_reply_prompt(
                meta, tok, Conversation(hist, ex["instruction"], ex.get("contact")), mem
            )
            prompts[side].append(tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"])
    times: dict[str, list[float]] = {"with": [], "without": []}
    with torch.inference_mode():
        for r in range(rounds):
            for side in ("with", "without") if r % 2 == 0 else ("without", "with"):
                started = time.perf_counter()
                for ids in prompts[side]:
                    model(input_ids=ids)
                times[side].append((time.perf_counter() - started) / len(val) * 1000)
    return {
        side: {
            "tokens": statistics.mean(int(ids.shape[1]) for ids in prompts[side]),
            "prefill_ms": statistics.median(times[side]),
        }
        for side in times
    }


def markdown(rows: list[dict], meta: dict) -> str:
    def ci(x: dict) -> str:
        return f"{x['share']:.2f} ({x['low']:.2f}-{x['high']:.2f})" if x else "n/a"

    lines = [
        f"`{meta['command']}` — {meta['date']}, {meta['machine']}; {meta['eval_examples']} val examples, "
        f"BM25 retrieval {meta['retrieval_ms']:.2f} ms per query.",
        "",
        "| memory K | val loss (train) | eval loss base → twin | authorship base | authorship twin "
        "| BLEU-4 twin | ROUGE-L twin | prompt tokens (mean) | s per reply | train s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['memory']} | {r['train_val_loss']:.3f} | {r['eval_loss']['base']:.3f} → "
            f"{r['eval_loss']['twin']:.3f} | {ci(r['authorship'].get('base', {}))} | "
            f"{ci(r['authorship'].get('twin', {}))} | {r['bleu4']:.2f} | {r['rougeL']:.3f} | "
            f"{r['prompt_tokens']:.0f} | {r['seconds_per_reply']:.3f} | {r['train_seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=OUT / "memory-demo")
    ap.add_argument("--memory", type=int, default=3, help="K for the run with memory")
    ap.add_argument("--quick", action="store_true", help="smoke size; prints only")
    ap.add_argument("--cost-only", type=Path, help="only the prompt cost of this memory adapter (on --data)")
    ap.add_argument("--data", type=Path, default=None)
    args = ap.parse_args(argv)
    if args.cost_only:
        cost = prompt_cost(args.cost_only, args.data or args.cost_only.parent)
        print(json.dumps(cost, indent=2))
        return cost

    from twin.demo import DemoOptions, run_demo

    opts = DemoOptions(workdir=args.workdir, serve=False, echo=lambda s: print(s, flush=True))
    if args.quick:
        opts.pretrain_steps, opts.eval_examples = 2, 4
        opts.train_overrides = {"max_steps": 2, "checkpoint_every_steps": 0, "eval": {"every_steps": 0}}
    run_demo(opts)
    rows = [_train_and_eval(opts, k, args.quick) for k in (0, args.memory)]
    meta = {
        "command": "python -m bench.compare_memory " + " ".join(argv or []),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "eval_examples": opts.eval_examples,
        "retrieval_ms": _retrieval_ms(opts, args.memory),
    }
    table = markdown(rows, meta)
    print(table)
    if not args.quick:
        OUT.mkdir(exist_ok=True)
        (OUT / "compare_memory.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    return {"meta": meta, "rows": rows}


if __name__ == "__main__":
    main(sys.argv[1:])
