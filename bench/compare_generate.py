"""Generation: POST /reply at 1, 8 and 32 concurrent clients vs generating in-process.

    .venv/bin/python -m bench.compare_generate            # 3 alternating rounds, writes RESULTS.md
    .venv/bin/python -m bench.compare_generate --quick    # smoke: 1 round, 8 tokens, nothing written

The measuring code is the serve benchmark's (``bench/bench_serve.py``, helper D): the same tiny
Falcon + LoRA adapter, one prompt built by ``build_reply_prompt`` as the server builds it, greedy
decoding with repetition penalty 1.1, one torch thread on each side, a real ``twin serve`` process
on 127.0.0.1. This module runs it as a comparison: in every round, the in-process paths
(Hugging Face ``model.generate`` and twin's ``generate``) and ``/reply`` from 1 client alternate
request by request, then ``/reply`` at 8 and 32 concurrent clients (order flipped each round);
medians over rounds and ratios against in-process ``model.generate``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench.baselines import common

HF = "model.generate (HF), in-process"
OURS = "twin generate(), in-process"
SERVED = "twin serve, POST /reply"


def markdown(summary: dict, meta: dict) -> str:
    ref = summary[HF]["tokens_per_s"]
    lines = [
        "### Generation: POST /reply at 1, 8, 32 clients vs in-process generation",
        "",
        f"`{meta['command']}` — {meta['date']}, {meta['machine']}.",
        f"Tiny Falcon + LoRA adapter, greedy, {meta['tokens']} new tokens, repetition penalty 1.1, prompt of "
        f"{meta['prompt_tokens']} tokens, 1 torch thread per side (measuring code: bench/bench_serve.py). "
        f"Rounds: {meta['rounds']}; medians shown.",
        "",
        "| path | clients | tokens/s (all clients) | ÷ in-process model.generate | p50 latency ms | p95 latency ms | refused |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (name, clients), row in _rows(summary):
        r = common.ratio(row["tokens_per_s"], ref)
        lines.append(
            f"| {name} | {clients} | {common.fmt(row['tokens_per_s'])} | {common.fmt(r, 2)}x | "
            f"{common.fmt(1000 * row['p50_s'], 0)} | {common.fmt(1000 * row['p95_s'], 0)} | {row.get('refused', 0)} |"
        )
    if meta.get("overhead_p50") is not None:
        lines.append(
            f"\nServer overhead at 1 client: p50 latency of /reply vs in-process twin generate "
            f"{100 * meta['overhead_p50']:+.1f}% (vs HF model.generate {100 * meta['overhead_p50_hf']:+.1f}%)."
        )
    return "\n".join(lines)


def _rows(summary: dict):
    for key, row in summary.items():
        if key in (HF, OURS):
            yield (key, 1), row
        else:
            yield (SERVED, int(key.rsplit(" ", 1)[1])), row


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench.compare_generate", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round, 8 tokens, nothing written")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=32, help="max_new_tokens per request")
    ap.add_argument("--repeats", type=int, default=6, help="1-client requests per path per round")
    ap.add_argument("--clients", default="8,32", help="concurrency levels besides 1")
    ap.add_argument("--work", type=Path, help="keep work files here (default: a temp dir, removed)")
    ap.add_argument("--write", action=argparse.BooleanOptionalAction, default=None,
                    help="update bench/RESULTS.md (default: yes unless --quick)")  # fmt: skip
    ap.add_argument("--json", type=Path, default=common.ROOT / "bench" / "out" / "compare_generate.json")
    a = ap.parse_args(argv)
    if a.quick:
        a.rounds, a.tokens, a.repeats = 1, 8, 2
    write = (not a.quick) if a.write is None else a.write
    levels = [int(c) for c in a.clients.split(",") if c.strip()]
    from bench import bench_serve
    from tests.live_server import twin_process

    work = a.work or Path(tempfile.mkdtemp(prefix="twin-compare-generate-"))
    work.mkdir(parents=True, exist_ok=True)
    base, adapter = bench_serve.make_workdir(work)
    args = ("--base", str(base), "--adapter", f"twin={adapter}", "--threads", "1", "--queue-size", "64")
    env = {**os.environ, "TWIN_API_TOKEN": ""}
    runs: dict[str, list[dict]] = {HF: [], OURS: [], **{f"{SERVED} {c}": [] for c in [1, *levels]}}
    prompt_tokens = None
    try:
        with twin_process("serve", *args, health="/healthz", env=env, timeout=180) as url:
            for rnd in range(a.rounds):
                single = bench_serve.one_client_alternating(base, adapter, url, a.tokens, a.repeats)
                prompt_tokens = single.pop("prompt_tokens")
                single.pop("http_overhead")
                runs[HF].append(single[HF])
                runs[OURS].append(single[OURS])
                runs[f"{SERVED} 1"].append(single[SERVED])
                for c in levels if rnd % 2 == 0 else levels[::-1]:
                    per_client = 1 if a.quick else max(1, (2 * a.repeats) // c + 1)
                    row = asyncio.run(bench_serve.load(url, c, per_client, a.tokens))
                    row["refused"] = row.pop("refused_503", 0)
                    runs[f"{SERVED} {c}"].append(row)
                print(
                    f"round {rnd + 1}: "
                    + ", ".join(f"{k} {v[-1]['tokens_per_s']} tok/s" for k, v in runs.items())
                )
    finally:
        if a.work is None:
            shutil.rmtree(work, ignore_errors=True)

    summary = {
        k: {m: common.median([r[m] for r in rs]) for m in ("tokens_per_s", "p50_s", "p95_s")}
        | {"refused": sum(r.get("refused", 0) for r in rs), "requests": sum(r["requests"] for r in rs)}
        for k, rs in runs.items()
    }
    served1 = summary[f"{SERVED} 1"]["p50_s"]
    meta = {
        "command": "python -m bench.compare_generate" + (" --quick" if a.quick else ""),
        "date": common.today(),
        "machine": common.machine(),
        "tokens": a.tokens,
        "prompt_tokens": prompt_tokens,
        "rounds": a.rounds,
        "overhead_p50": served1 / summary[OURS]["p50_s"] - 1,
        "overhead_p50_hf": served1 / summary[HF]["p50_s"] - 1,
    }
    report = {"meta": meta, "summary": summary, "runs": runs}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    md = markdown(summary, meta)
    print(md)
    if write:
        common.write_block("generate", md)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
