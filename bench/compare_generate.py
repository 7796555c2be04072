"""Generation: continuous batching vs the serial engine (POST /reply at 1, 4, 8, 32 clients), mixed
adapters in one batch, and ``twin eval``'s generation batched vs one at a time.

    .venv/bin/python -m bench.compare_generate            # 3 rounds, writes RESULTS.md
    .venv/bin/python -m bench.compare_generate --quick    # smoke: 1 round, 8 tokens, nothing written
    .venv/bin/python -m bench.compare_generate --mixed-only --rounds 9 --requests 32   # the mixed ratio alone

Two real ``twin serve`` processes on 127.0.0.1 hold the same tiny Falcon and LoRA adapter (registered
twice, as ``twin`` and ``twin2``, so a batch can mix adapters): one with ``--max-batch 1`` (the serial
engine: one reply at a time, as before continuous batching), one with twin serve's default ``--max-batch 0``
(automatic: up to 32, as memory allows). Both use one
torch thread. Every request is the same prompt (built by the server from ``bench_serve``'s message and
history), greedy, repetition penalty 1.1, ``--tokens`` new tokens; each client sends its requests back
to back. In every round the two servers are measured in turn (order flipped each round); medians over
rounds. Mixed adapters: on the batched server, waves of 4 simultaneous requests, all on ``twin`` or
half on ``twin2`` (one mixed batch), alternate within the round; the ratio is the two kinds' tokens/s
over the round (identical weights, so identical replies: only the mixed-batch path differs). The eval part runs ``twin eval``'s generation (``generate_replies``) in-process on 100
synthetic val examples with ``batch_size`` 1 and 8 (sampled, 48 new tokens: eval's defaults).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.baselines import common

SERIAL, BATCHED = "serial (--max-batch 1)", "batched"  # the batched one's label adds its --max-batch


def start_server(twin_process: Any, base: Path, adapter: Path, max_batch: int) -> Any:
    """``twin serve`` with the adapter under two names (for mixed-adapter batches); yields its URL."""
    args = ("--base", str(base), "--adapter", f"twin={adapter}", "--adapter", f"twin2={adapter}",
            "--threads", "1", "--queue-size", "64", "--max-batch", str(max_batch),
            "--dtype", "float32")  # fmt: skip
    return twin_process(
        "serve", *args, health="/healthz", env={**os.environ, "TWIN_API_TOKEN": ""}, timeout=600
    )


async def load(url: str, clients: int, per_client: int, tokens: int, adapters: tuple[str, ...]) -> dict:
    """``clients`` concurrent clients (client i uses ``adapters[i % len]``), requests back to back."""
    common.still_client()  # no full GC collection inside the timed part
    import httpx

    from bench.bench_serve import HISTORY, MESSAGE, summarize

    lat: list[float] = []
    toks: list[int] = []

    async def client(c: httpx.AsyncClient, adapter: str) -> None:
        body = {"message": MESSAGE, "history": HISTORY, "temperature": 0, "max_new_tokens": tokens,
                "adapter": adapter}  # fmt: skip
        for _ in range(per_client):
            t0 = time.perf_counter()
            r = await c.post("/reply", json=body)
            r.raise_for_status()
            lat.append(time.perf_counter() - t0)
            toks.append(r.json()["usage"]["completion_tokens"])

    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as c:
        await c.post(
            "/reply", json={"message": MESSAGE, "max_new_tokens": tokens, "temperature": 0}
        )  # warm-up
        t0 = time.perf_counter()
        await asyncio.gather(*(client(c, adapters[i % len(adapters)]) for i in range(clients)))
        wall = time.perf_counter() - t0
    return summarize(lat, toks, wall)


def paired_one_client(urls: dict[str, str], tokens: int, requests: int) -> dict:
    """1 client, one request to each server in turn: the p50 ratio is immune to slow machine drift."""
    common.still_client()  # no full GC collection inside the timed part
    import httpx

    from bench.bench_serve import HISTORY, MESSAGE

    body = {"message": MESSAGE, "history": HISTORY, "temperature": 0, "max_new_tokens": tokens}
    lat: dict[str, list[float]] = {name: [] for name in urls}
    with httpx.Client(timeout=600) as c:
        for _ in range(requests + 1):  # the first pair warms up
            for name, url in urls.items():
                t0 = time.perf_counter()
                c.post(url + "/reply", json=body).raise_for_status()
                lat[name].append(time.perf_counter() - t0)
    a, b = lat[SERIAL][1:], lat[BATCHED][1:]
    return {"p50_ratio": common.median([y / x for x, y in zip(a, b, strict=True)])}


def server_round(urls: dict[str, str], levels: list[int], tokens: int, requests: int, flip: bool) -> dict:
    """One round: every client level on each server, 1 client paired, 4 clients on 1 vs 2 adapters."""
    rows: dict[str, dict] = {}
    for name in list(urls)[:: -1 if flip else 1]:
        for c in levels:
            per_client = max(1, requests // c)
            rows[f"{name}|{c}"] = asyncio.run(load(urls[name], c, per_client, tokens, ("twin",)))
    rows.update(mixed_round(urls[BATCHED], tokens, requests, flip))
    rows["ratios"].update(paired_one_client(urls, tokens, max(2, requests // 2)))
    rows["ratios"].update(asyncio.run(eight_mixed(urls[BATCHED], tokens, flip)))
    rows["ratios"].update(asyncio.run(eight_mixed(urls[BATCHED], tokens, flip, forced=True)))
    return rows


MIXED_EIGHT = ("twin", "base", "twin2", "twin", "base", "twin2", "twin", "base")


async def eight_mixed(url: str, tokens: int, flip: bool, forced: bool = False, pairs: int = 5) -> dict:
    """8 requests (adapter / bare base / second adapter) at once vs the same 8 one after another, on
    the batched server: the wall-clock ratio, and whether the replies are the same both ways.

    ``pairs`` series/together pairs, alternating, and the median of their ratios: one "together" is
    ~0.3 s, so a single pair moved by ±30% with whatever else the 2 cores did in it (measured).
    ``forced``: every reply forced to ``tokens`` (``min_new_tokens``: EOS blocked; a stop string may
    still end one), so the batch is not capped by replies of unequal length (keys ``*_forced``)."""
    import httpx

    from bench.bench_serve import HISTORY, MESSAGE

    lengths: list[int] = []

    async def one(c: httpx.AsyncClient, i: int, adapter: str) -> str:
        body = {"message": f"{MESSAGE} ({i})", "history": HISTORY, "temperature": 0, "max_new_tokens": tokens,
                "adapter": adapter, **({"min_new_tokens": tokens} if forced else {})}  # fmt: skip
        r = await c.post("/reply", json=body)
        r.raise_for_status()
        lengths.append(r.json()["usage"]["completion_tokens"])
        return r.json()["reply"]

    async def series(c: httpx.AsyncClient) -> list[str]:
        return [await one(c, i, a) for i, a in enumerate(MIXED_EIGHT)]

    async def together(c: httpx.AsyncClient) -> list[str]:
        return list(await asyncio.gather(*(one(c, i, a) for i, a in enumerate(MIXED_EIGHT))))

    ratios, same = [], []
    async with httpx.AsyncClient(base_url=url, timeout=600) as c:
        await together(c)  # warm-up
        for pair in range(pairs):
            wall, replies = {}, {}
            for kind, run in (("series", series), ("together", together))[:: -1 if flip ^ pair % 2 else 1]:
                common.still_client()  # no full GC collection inside the timed part
                t0 = time.perf_counter()
                replies[kind] = await run(c)
                wall[kind] = time.perf_counter() - t0
            ratios.append(wall["series"] / wall["together"])
            same.append(replies["series"] == replies["together"])
    # The most batching can give when the replies end at different lengths: a step of 8 rows costing
    # what a step of 1 does, the batch takes as many steps as the longest reply, the series all of them.
    bound = sum(lengths[-8:]) / max(lengths[-8:])
    key = "eight_mixed_forced" if forced else "eight_mixed"
    return {key: common.median(ratios), f"{key}_bound": bound, f"{key}_same": float(all(same))}


def mixed_round(url: str, tokens: int, requests: int, flip: bool) -> dict:
    """4 clients on one adapter vs 4 clients on two (one mixed batch): see :func:`mixed_waves`."""
    rows = asyncio.run(mixed_waves(url, tokens, max(1, requests // 4), flip))
    ratio = rows["mixed|two adapters"]["tokens_per_s"] / rows["mixed|one adapter"]["tokens_per_s"]
    rows["ratios"] = {"mixed": ratio}
    return rows


async def mixed_waves(url: str, tokens: int, waves: int, flip: bool) -> dict:
    """``waves`` times: 4 clients send one request each at once on one adapter, then 4 on two adapters
    (or the other way round, alternately). Each wave is one batch of 4 rows; the two kinds alternate
    every second or so, so a machine busy with other jobs slows both alike."""
    common.still_client()  # no full GC collection inside the timed part
    import httpx

    from bench.bench_serve import HISTORY, MESSAGE, summarize

    kinds = {"one adapter": ("twin",) * 4, "two adapters": ("twin", "twin2") * 2}
    lat: dict[str, list[float]] = {k: [] for k in kinds}
    toks: dict[str, list[int]] = {k: [] for k in kinds}
    wall = dict.fromkeys(kinds, 0.0)

    async def one(c: httpx.AsyncClient, adapter: str) -> tuple[float, int]:
        body = {"message": MESSAGE, "history": HISTORY, "temperature": 0, "max_new_tokens": tokens,
                "adapter": adapter}  # fmt: skip
        t0 = time.perf_counter()
        r = await c.post("/reply", json=body)
        r.raise_for_status()
        return time.perf_counter() - t0, r.json()["usage"]["completion_tokens"]

    async with httpx.AsyncClient(base_url=url, timeout=600) as c:
        await asyncio.gather(*(one(c, a) for a in kinds["two adapters"]))  # warm-up
        for wave in range(waves):
            for kind in list(kinds)[:: -1 if (wave + flip) % 2 else 1]:
                t0 = time.perf_counter()
                done = await asyncio.gather(*(one(c, a) for a in kinds[kind]))
                wall[kind] += time.perf_counter() - t0
                lat[kind] += [s for s, _ in done]
                toks[kind] += [n for _, n in done]
    return {f"mixed|{k}": summarize(lat[k], toks[k], wall[k]) for k in kinds}


def decode_flatness(base: Path, adapter: Path, tokens: int, reps: int) -> dict:
    """Per-token decode time early in a long reply vs late in it (in-process scheduler, one row, greedy,
    ``tokens`` forced by ``min_new_tokens``): tokens 400-512 vs 1-64 by default (scaled for --quick)."""
    import torch
    from peft import PeftModel

    from twin.inference.batch import Request, Scheduler
    from twin.model.load import load_base

    torch.set_num_threads(1)
    model, tok = load_base(base)
    model = PeftModel.from_pretrained(model, str(adapter), adapter_name="twin").eval()
    sched = Scheduler(model, tok, max_batch=8)
    ids = tok("Alice: are we still on for dinner tonight?\nMe:", add_special_tokens=False)["input_ids"]
    early_n, late_from = max(2, tokens // 8), tokens * 25 // 32  # 64 and 400 of 512
    ratios, early_ms, late_ms = [], [], []
    for _ in range(reps):
        req = Request(ids, forced_greedy(tokens), adapter="twin")
        stamps: list[float] = []
        sched.submit(req)
        accept = req.dec.accept
        req.dec.accept = lambda t, accept=accept, stamps=stamps: (
            stamps.append(time.perf_counter()),
            accept(t),
        )[1]
        req.future.result()
        gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
        early, late = gaps[: early_n - 1], gaps[late_from - 1 :]
        early_ms.append(1000 * sum(early) / len(early))
        late_ms.append(1000 * sum(late) / len(late))
        ratios.append(late_ms[-1] / early_ms[-1])
    return {"tokens": tokens, "early_ms": common.median(early_ms), "late_ms": common.median(late_ms),
            "ratio": common.median(ratios), "ratios": ratios}  # fmt: skip


def forced_greedy(tokens: int) -> Any:
    from twin.inference.generate import GenParams

    return GenParams(max_new_tokens=tokens, min_new_tokens=tokens, temperature=0)


def synthetic_val(n: int) -> list[dict]:
    from bench.bench_serve import MESSAGE

    words = MESSAGE.split()
    return [
        {
            "dialog_id": "bench",
            "session": i,
            "contact": "Alice",
            "context": [{"role": "them", "text": " ".join(words[: 3 + i % 7])}, {"role": "me", "text": "ok"}],
            "instruction": " ".join(words[i % 5 :]),
            "response": "sure, see you",
        }  # fmt: skip
        for i in range(n)
    ]


def eval_generation(base: Path, adapter: Path, n: int, tokens: int | None) -> dict:
    """Seconds of ``twin eval``'s generation on ``n`` examples, one at a time vs batched."""
    import torch
    from peft import PeftModel

    from twin.eval.run import EvalConfig, generate_replies
    from twin.model.load import load_base

    torch.set_num_threads(1)
    model, tok = load_base(base)
    model = PeftModel.from_pretrained(model, str(adapter)).eval()
    examples = synthetic_val(n)
    out: dict[str, float] = {}
    outputs: list[list] = []
    for batch in (1, 8, 32):
        cfg = EvalConfig(batch_size=batch, **({"max_new_tokens": tokens} if tokens else {}))
        t0 = time.perf_counter()
        replies = generate_replies(cfg, model, tok, examples, "plain-v1", progress=False)
        out[f"batch_size {batch}"] = time.perf_counter() - t0
        outputs.append(replies)
    return {**out, "examples": n, "replies_equal": all(r == outputs[0] for r in outputs)}


def summarize_rounds(runs: list[dict]) -> dict:
    keys = [k for k in runs[0] if k != "ratios"]
    out = {
        k: {m: common.median([r[k][m] for r in runs]) for m in ("tokens_per_s", "p50_s", "p95_s")}
        | {"requests": sum(r[k]["requests"] for r in runs)}
        for k in keys
    }
    out["ratios"] = {m: common.median([r["ratios"][m] for r in runs]) for m in runs[0]["ratios"]}
    return out


def markdown(
    summary: dict, evals: dict, meta: dict, levels: list[int], arch: str = "falcon", flat: dict | None = None
) -> str:
    one = summary[f"{BATCHED}|1"]["tokens_per_s"]
    mb = meta.get("max_batch", 0)
    lines = [
        f"### Generation: continuous batching vs the serial engine, POST /reply — tiny {arch.capitalize()}",
        "",
        f"`{meta['command']}` — {meta['date']}, {meta['machine']}; the machine was shared with other "
        "engineers' jobs while this ran, so absolute numbers are noisy (ratios are measured in the same rounds).",
        f"Tiny {arch.capitalize()} + LoRA, float32, greedy, {meta['tokens']} new tokens, repetition penalty 1.1, 1 torch thread per "
        f"server, two `twin serve` processes (`--max-batch 1` and `--max-batch {mb}`). Rounds: {meta['rounds']}; "
        "medians shown.",
        "",
        "| engine | clients | tokens/s (all clients) | ÷ serial, same clients | ÷ batched at 1 client | p50 ms | p95 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in (SERIAL, BATCHED):
        for c in levels:
            row, ser = summary[f"{name}|{c}"], summary[f"{SERIAL}|{c}"]
            lines.append(
                f"| {name if name == SERIAL else f'{name} (--max-batch {mb})'} | {c} | {common.fmt(row['tokens_per_s'])} | "
                f"{common.fmt(common.ratio(row['tokens_per_s'], ser['tokens_per_s']), 2)}x | "
                f"{common.fmt(common.ratio(row['tokens_per_s'], one), 2)}x | "
                f"{common.fmt(1000 * row['p50_s'], 0)} | {common.fmt(1000 * row['p95_s'], 0)} |"
            )
    p50, mixed = summary["ratios"]["p50_ratio"] - 1, summary["ratios"]["mixed"]
    lines += [
        "",
        f"- 1 client, requests alternating between the two servers: p50 latency of the batched engine vs "
        f"the serial one **{100 * p50:+.1f}%** (median of per-pair ratios).",
        f"- 4 clients on 2 adapters (one mixed batch, stacked per-row LoRA) vs 4 clients on 1 adapter, same "
        f"round: **{mixed:.2f}x** the tokens/s (median of per-round ratios).",
    ]
    if evals:
        lines.append(
            f"- `twin eval` generation ({evals['examples']} val examples, base + twin reply each, sampled, "
            f"eval's defaults): batch_size 1 {evals['batch_size 1']:.1f} s, batch_size 8 "
            f"{evals['batch_size 8']:.1f} s = **{evals['batch_size 1'] / evals['batch_size 8']:.2f}x faster** "
            f"(batch_size 32: {evals['batch_size 32']:.1f} s, "
            f"{evals['batch_size 1'] / evals['batch_size 32']:.2f}x); replies identical: {evals['replies_equal']}."
        )
    eight = summary["ratios"]["eight_mixed"]
    lines.append(
        f"- 8 requests at once (adapter / bare base / second adapter, cycled) vs the same 8 one after another "
        f"on the batched server: **{eight:.2f}x** faster (median over rounds of each round's median of 5 "
        f"series/together pairs); replies identical both ways in {100 * summary['ratios']['eight_mixed_same']:.0f}% of rounds. The replies are not forced "
        f"to a length: their tokens summed ÷ the longest's = **{summary['ratios']['eight_mixed_bound']:.2f}x**, "
        "what the 8 at once would gain if a step of 8 rows cost no more than a step of 1."
    )
    if "eight_mixed_forced" in summary["ratios"]:
        r = summary["ratios"]
        lines.append(
            f"- The same 8 with every reply forced to {meta['tokens']} tokens (`min_new_tokens`): "
            f"**{r['eight_mixed_forced']:.2f}x** (tokens summed ÷ longest {r['eight_mixed_forced_bound']:.2f}x); "
            f"replies identical both ways in {100 * r['eight_mixed_forced_same']:.0f}% of rounds."
        )
    if flat:
        n = flat["tokens"]
        lines.append(
            f"- Per-token decode cost in a {n}-token reply (in-process scheduler, one row, 1 thread): tokens "
            f"{n * 25 // 32}–{n} {flat['late_ms']:.2f} ms vs tokens 1–{n // 8} {flat['early_ms']:.2f} ms = "
            f"**{flat['ratio']:.2f}x** (per run: {', '.join(f'{r:.2f}' for r in flat['ratios'])})."
        )
    lines += goals(summary, evals, levels, flat)
    return "\n".join(lines)


def goals(summary: dict, evals: dict, levels: list[int], flat: dict | None = None) -> list[str]:
    """The issue's targets, each marked met or not met from this run's numbers."""

    def verdict(ok: bool, shown: str) -> str:
        return f"**{'met' if ok else 'not met'} ({shown})**"

    parts = []
    eight = summary["ratios"]["eight_mixed"]
    parts.append(
        f"8 mixed requests at once ≥ 6x the same 8 in series — {verdict(eight >= 6, f'{eight:.2f}x')}"
    )
    if "eight_mixed_forced" in summary["ratios"]:
        forced = summary["ratios"]["eight_mixed_forced"]
        parts.append(f"the same, replies forced to one length — {verdict(forced >= 6, f'{forced:.2f}x')}")
    if 32 in levels:
        x32 = summary[f"{BATCHED}|32"]["tokens_per_s"] / summary[f"{SERIAL}|32"]["tokens_per_s"]
        parts.append(f"32 clients ≥ 6x the serial engine's tokens/s — {verdict(x32 >= 6, f'{x32:.2f}x')}")
    if flat:
        late = flat["ratio"]
        parts.append(f"late tokens ≤ 1.15x early ones — {verdict(late <= 1.15, f'{late:.2f}x')}")
    p50 = summary["ratios"]["p50_ratio"] - 1
    parts.append(f"1 client p50 ≤ +5% vs the serial engine — {verdict(p50 <= 0.05, f'{100 * p50:+.1f}%')}")
    if evals:
        x = evals["batch_size 1"] / evals["batch_size 8"]
        parts.append(f"`twin eval` ≥ 3x — {verdict(x >= 3, f'{x:.2f}x at the default batch_size 8')}")
    mixed = summary["ratios"]["mixed"]
    parts.append(f"mixed adapters within 10% of one adapter — {verdict(mixed >= 0.9, f'{mixed:.2f}x')}")
    return [
        "- Goals: " + "; ".join(parts) + ".",
        "- Batched replies equal replies decoded alone, token for token: `tests/test_serve_batch.py` (greedy and "
        "seeded, mixed adapters, prompts joining together)"
        + ("; the eval runs above give identical replies at batch sizes 1, 8 and 32." if evals else "."),
    ]


def server_rounds(a: argparse.Namespace, levels: list[int], base: Path, adapter: Path) -> list[dict]:
    """Every round against the two servers (only the batched one with ``--mixed-only``)."""
    from devkit.live_server import twin_process

    engines = ((BATCHED, a.max_batch),) if a.mixed_only else ((SERIAL, 1), (BATCHED, a.max_batch))
    runs: list[dict] = []
    with contextlib.ExitStack() as stack:
        urls = {
            name: stack.enter_context(start_server(twin_process, base, adapter, mb)) for name, mb in engines
        }
        for rnd in range(a.rounds):
            flip = rnd % 2 == 1
            if a.mixed_only:
                runs.append(mixed_round(urls[BATCHED], a.tokens, a.requests, flip))
            else:
                runs.append(server_round(urls, levels, a.tokens, a.requests, flip))
            print(
                f"round {rnd + 1}: "
                + ", ".join(f"{k} {v.get('tokens_per_s', v)}" for k, v in runs[-1].items())
            )
    return runs


def mixed_only_report(a: argparse.Namespace, summary: dict, runs: list[dict], meta: dict) -> dict:
    """``--mixed-only``: the mixed-adapter ratio alone, printed and saved as JSON (RESULTS.md untouched)."""
    meta["command"] += f" --mixed-only --rounds {a.rounds} --requests {a.requests}"
    ratios = [r["ratios"]["mixed"] for r in runs]
    report = {"meta": meta, "summary": summary, "runs": runs}
    path = a.json.with_name(a.json.stem + "_mixed.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    one, two = summary["mixed|one adapter"]["tokens_per_s"], summary["mixed|two adapters"]["tokens_per_s"]
    print(
        f"`{meta['command']}`: 4 clients on 2 adapters vs 4 clients on 1 adapter, same round: "
        f"**{summary['ratios']['mixed']:.2f}x** the tokens/s (median of {len(runs)} per-round ratios: "
        + ", ".join(f"{r:.2f}" for r in ratios)
        + f"; medians {two:.1f} vs {one:.1f} tokens/s)"
    )
    return report


def arch_workdir(work: Path, arch: str) -> tuple[Path, Path]:
    """The tiny ``arch`` base and a random LoRA adapter on it (built once in ``work``)."""
    from bench import bench_serve
    from twin.model.tiny import build_tiny

    if arch == "falcon":
        return bench_serve.make_workdir(work)
    base = work / f"tiny-{arch}"
    if not (base / "config.json").is_file():
        build_tiny(base, arch=arch, seed=0)
    return bench_serve.make_workdir(work / arch, base=base)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench.compare_generate", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round, 8 tokens, nothing written")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=64, help="max_new_tokens per request")
    ap.add_argument(
        "--requests", type=int, default=16, help="requests per client level per round (at least 1 each)"
    )
    ap.add_argument("--clients", default="1,8,32", help="concurrency levels")
    ap.add_argument(
        "--max-batch",
        type=int,
        default=0,
        help="the batched server's --max-batch (0, twin serve's default: auto)",
    )
    ap.add_argument("--archs", default="falcon,llama", help="tiny bases to measure (falcon, llama)")
    ap.add_argument("--long-tokens", type=int, default=512, help="reply length for the per-token cost check")
    ap.add_argument("--eval-examples", type=int, default=100, help="val examples for the eval part (0: skip)")
    ap.add_argument("--llama-cpp", action=argparse.BooleanOptionalAction, default=True,
                    help="add llama.cpp (llama-cpp-python's server) on the merged GGUF, when it is installed")  # fmt: skip
    ap.add_argument("--mixed-only", action="store_true",
                    help="only the mixed-adapter ratio (batched server, 4 clients): printed, RESULTS.md untouched")  # fmt: skip
    ap.add_argument("--work", type=Path, help="keep work files here (default: a temp dir, removed)")
    ap.add_argument("--write", action=argparse.BooleanOptionalAction, default=None,
                    help="update bench/RESULTS.md (default: yes unless --quick)")  # fmt: skip
    ap.add_argument("--json", type=Path, default=common.ROOT / "bench" / "out" / "compare_generate.json")
    a = ap.parse_args(argv)
    if a.quick:
        a.rounds, a.tokens, a.requests, a.eval_examples, a.long_tokens = 1, 8, 4, 8, 64
    write = (not a.quick and not a.mixed_only) if a.write is None else a.write
    levels = sorted({1, *(int(c) for c in a.clients.split(",") if c.strip())})
    archs = [x.strip() for x in a.archs.split(",") if x.strip()]

    work = a.work or Path(tempfile.mkdtemp(prefix="twin-compare-generate-"))
    work.mkdir(parents=True, exist_ok=True)
    meta = {"command": "python -m bench.compare_generate" + (" --quick" if a.quick else "")
            + (f" --max-batch {a.max_batch}" if a.max_batch else ""),
            "date": common.today(), "machine": common.machine(), "tokens": a.tokens, "rounds": a.rounds,
            "max_batch": a.max_batch}  # fmt: skip
    per_arch: dict[str, dict] = {}
    workdirs: dict[str, tuple[Path, Path]] = {}
    evals: dict = {}
    for arch in archs:
        base, adapter = workdirs[arch] = arch_workdir(work, arch)
        runs = server_rounds(a, levels, base, adapter)
        if a.mixed_only:
            return mixed_only_report(a, summarize_rounds(runs), runs, meta)
        flat = decode_flatness(base, adapter, a.long_tokens, 1 if a.quick else 2)
        print(
            f"{arch}: per-token decode cost late / early in a {a.long_tokens}-token reply: {flat['ratio']:.2f}x"
        )
        per_arch[arch] = {"summary": summarize_rounds(runs), "runs": runs, "flat": flat}
        if arch == archs[0] and a.eval_examples:
            evals = eval_generation(base, adapter, a.eval_examples, 8 if a.quick else None)
    peer = {}
    if a.llama_cpp:
        from bench import llama_cpp_peer

        try:
            peer = llama_cpp_peer.run(work, workdirs, quick=a.quick, tokens=a.tokens)
        except Exception as e:  # noqa: BLE001 (the peer is optional: twin's own figures still count)
            peer = {"skipped": f"the llama.cpp part failed: {type(e).__name__}: {str(e)[:200]}"}
    if a.work is None:
        shutil.rmtree(work, ignore_errors=True)

    first = per_arch[archs[0]]
    report = {"meta": meta, "summary": first["summary"], "archs": per_arch, "eval": evals, "llama_cpp": peer}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    md = "\n\n".join(
        markdown(r["summary"], evals if arch == archs[0] else {}, meta, levels, arch, r["flat"])
        for arch, r in per_arch.items()
    )
    if peer:
        from bench import llama_cpp_peer

        md += "\n\n" + llama_cpp_peer.markdown(peer)
    print(md)
    if write:
        common.write_block("generate", md)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
