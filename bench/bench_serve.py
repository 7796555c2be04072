"""Serve-stage benchmark: latency and tokens/s of `twin serve` at 1, 8 and 32 concurrent clients,
against generating in-process (transformers' ``model.generate`` and twin's own ``generate``) with the
same prompt and settings; plus the memory-bandwidth bound on Falcon-7B decoding speed on an A100.

    .venv/bin/python -m bench.bench_serve            # 64 new tokens, 1/8/32 clients
    .venv/bin/python -m bench.bench_serve --quick    # smoke: 8 tokens, 1/2 clients

The server is a real `twin serve` process (uvicorn, loopback) on the tiny Falcon with one LoRA
adapter; clients are httpx (asyncio) in this process. Both sides use one torch thread so the server
and the client each have a core. Greedy decoding with EOS and stop strings rarely hit by the
untrained tiny model, so every request generates the same number of tokens as the baseline.
Results: a table on stdout and ``bench/out/serve.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.baselines import common

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
MESSAGE = "are we still on for dinner tonight? I might be a bit late"
HISTORY = [{"role": "them", "text": "hey!"}, {"role": "me", "text": "hey, what's up"}]

# Falcon-7B decoding, batch 1: every new token reads all weights once (KV cache is tiny with
# multi-query attention: 32 layers x 1 KV head x 64 x 2 x 2 B = 8 KiB per token of context).
FALCON_7B_PARAMS = 6.92e9
A100_BANDWIDTH = {"A100 40GB (HBM2, 1555 GB/s)": 1555e9, "A100 80GB (HBM2e, 2039 GB/s)": 2039e9}
BYTES_PER_PARAM = {"bf16": 2.0, "int8": 1.0, "nf4": 0.55}


def decode_bound() -> dict:
    """Upper bound on tokens/s (weights bytes / memory bandwidth) per GPU and weight format."""
    return {
        gpu: {fmt: round(bw / (FALCON_7B_PARAMS * b), 1) for fmt, b in BYTES_PER_PARAM.items()}
        for gpu, bw in A100_BANDWIDTH.items()
    }


def make_workdir(work: Path, base: Path | None = None) -> tuple[Path, Path]:
    """Tiny base + a LoRA adapter (random non-zero weights: speed does not depend on their values)."""
    from devkit.adapters import write_random_lora
    from twin.model.tiny import build_tiny

    base = base or work / "tiny-falcon"
    if not (base / "config.json").is_file():
        build_tiny(base, seed=0)
    adapter = work / "adapter"
    if not (adapter / "twin.json").is_file():
        write_random_lora(base, adapter, seed=0, r=8, alpha=16)
    return base, adapter


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def summarize(latencies: list[float], tokens: list[int], wall: float) -> dict:
    return {
        "requests": len(latencies),
        "p50_s": round(statistics.median(latencies), 4),
        "p95_s": round(pct(latencies, 0.95), 4),
        "tokens_per_request": round(statistics.mean(tokens), 1),
        "tokens_per_s": round(sum(tokens) / wall, 1),  # aggregate throughput
        "per_request_tokens_per_s": round(
            statistics.median(t / s for t, s in zip(tokens, latencies, strict=True)), 1
        ),
    }


SERVED = "twin serve, POST /reply"


def _in_process_paths(model: Any, tok: Any, prompt: str, new_tokens: int) -> dict[str, Callable[[], int]]:
    """transformers' ``model.generate`` and twin's ``generate`` on ``prompt``; each returns its new tokens."""
    import torch

    from twin.inference.generate import GenParams, generate

    enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
    params = GenParams(max_new_tokens=new_tokens, temperature=0, repetition_penalty=1.1)

    def hf() -> int:
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=new_tokens, do_sample=False, repetition_penalty=1.1,
                                 min_new_tokens=1, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)  # fmt: skip
        return out.shape[1] - enc["input_ids"].shape[1]

    def ours() -> int:
        return generate(model, tok, prompt, params).completion_tokens

    return {"model.generate (HF), in-process": hf, "twin generate(), in-process": ours}


def _alternate(paths: dict[str, Callable[[], int]], repeats: int) -> tuple[dict, dict]:
    """One warm-up call each, then ``repeats`` rounds of one call each: latencies and token counts."""
    for fn in paths.values():
        fn()  # warm-up
    lat: dict[str, list[float]] = {k: [] for k in paths}
    toks: dict[str, list[int]] = {k: [] for k in paths}
    for _ in range(repeats):
        for name, fn in paths.items():
            t0 = time.perf_counter()
            n = fn()
            lat[name].append(time.perf_counter() - t0)
            toks[name].append(n)
    return lat, toks


def _http_overhead(served_lat: list[float], inside: list[float]) -> dict:
    """What the client waited minus what generation took inside the server (HTTP, JSON, validation,
    queue hand-off, prompt rendering), per request. Immune to machine noise that slows generation
    itself, unlike comparing medians of separate runs."""
    extra = [c - g for c, g in zip(served_lat, inside, strict=True)]
    return {
        "p50_ms": round(statistics.median(extra) * 1000, 2),
        "p95_ms": round(pct(extra, 0.95) * 1000, 2),
        "fraction_of_p50_latency": round(statistics.median(extra) / statistics.median(served_lat), 4),
    }


def one_client_alternating(base: Path, adapter: Path, url: str, new_tokens: int, repeats: int) -> dict:
    """1 client: transformers' generate, twin's generate (both in this process) and one POST /reply
    to the server, in turn, ``repeats`` times; alternating so machine noise hits all three alike."""
    import httpx
    import torch

    from twin.inference.generate import Conversation, build_reply_prompt
    from twin.serve.engine import Engine

    torch.set_num_threads(1)
    engine = Engine(base, [("twin", adapter)])
    engine.model.set_adapter("twin")
    prompt = build_reply_prompt(
        engine.adapters["twin"].meta, engine.tokenizer, Conversation(HISTORY, MESSAGE)
    )
    paths = _in_process_paths(engine.model, engine.tokenizer, prompt, new_tokens)
    body = {"message": MESSAGE, "history": HISTORY, "temperature": 0, "max_new_tokens": new_tokens}
    inside: list[float] = []  # the server's own generation time per request (its latency_s)
    with httpx.Client(base_url=url, timeout=600) as client:

        def served() -> int:
            r = client.post("/reply", json=body)
            r.raise_for_status()
            inside.append(r.json()["latency_s"])
            return r.json()["usage"]["completion_tokens"]

        lat, toks = _alternate({**paths, SERVED: served}, repeats)
    out = {name: {"clients": 1, **summarize(lat[name], toks[name], sum(lat[name]))} for name in lat}
    out["prompt_tokens"] = len(engine.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    out["http_overhead"] = _http_overhead(lat[SERVED], inside[1:])  # inside[0]: the warm-up
    return out


async def load(url: str, clients: int, per_client: int, new_tokens: int) -> dict:
    common.still_client()  # no full GC collection inside the timed part
    import httpx

    body = {"message": MESSAGE, "history": HISTORY, "temperature": 0, "max_new_tokens": new_tokens}
    lat: list[float] = []
    toks: list[int] = []
    refused = 0

    async def client(c: httpx.AsyncClient) -> None:
        nonlocal refused
        for _ in range(per_client):
            t0 = time.perf_counter()
            r = await c.post("/reply", json=body)
            dt = time.perf_counter() - t0
            if r.status_code == 503:
                refused += 1
                continue
            r.raise_for_status()
            lat.append(dt)
            toks.append(r.json()["usage"]["completion_tokens"])

    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as c:
        await c.post("/reply", json=body)  # warm-up
        t0 = time.perf_counter()
        await asyncio.gather(*(client(c) for _ in range(clients)))
        wall = time.perf_counter() - t0
    return {"clients": clients, **summarize(lat, toks, wall), "refused_503": refused}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.bench_serve", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke size: 8 tokens, 1 and 2 clients")
    ap.add_argument("--tokens", type=int, default=None, help="max_new_tokens per request (default 64)")
    ap.add_argument("--out", type=Path, default=OUT / "serve.json")
    ap.add_argument("--work", type=Path, default=OUT / "serve-work")
    ap.add_argument(
        "--base", type=Path, default=None, help="an existing tiny base dir (default: build one in --work)"
    )
    return ap.parse_args(argv)


def _measure(
    base: Path, adapter: Path, new_tokens: int, levels: list[int], repeats: int
) -> tuple[dict, list]:
    """``(single-client results by path, the server's rows by concurrency)`` against a real `twin serve`."""
    from devkit.live_server import twin_process

    serve_args = ("--base", str(base), "--adapter", f"twin={adapter}", "--threads", "1", "--queue-size", "64")
    env = {**os.environ, "TWIN_API_TOKEN": ""}
    with twin_process("serve", *serve_args, health="/healthz", env=env, timeout=180) as url:
        single = one_client_alternating(base, adapter, url, new_tokens, repeats)
        server = [single.pop(SERVED)]
        for clients in levels[1:]:
            # Each client sends requests back to back; about 2 x repeats requests in all.
            per_client = max(1, (2 * repeats) // clients + 1)
            server.append(asyncio.run(load(url, clients, per_client, new_tokens)))
    return single, server


def _print_tables(report: dict, new_tokens: int) -> None:
    print(f"\nserve bench: tiny Falcon + LoRA, greedy, {new_tokens} new tokens, 1 torch thread\n")
    print("| path | clients | requests | p50 latency | p95 latency | tokens/request | tokens/s (aggregate) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, row in report["in_process"].items():
        print(f"| {name} | 1 | {row['requests']} | {row['p50_s'] * 1000:.0f} ms | "
              f"{row['p95_s'] * 1000:.0f} ms | {row['tokens_per_request']} | {row['tokens_per_s']} |")  # fmt: skip
    for row in report["server"]:
        print(f"| {SERVED} | {row['clients']} | {row['requests']} | {row['p50_s'] * 1000:.0f} ms | "
              f"{row['p95_s'] * 1000:.0f} ms | {row['tokens_per_request']} | {row['tokens_per_s']} |")  # fmt: skip
    for name, value in report["overhead_1_client"].items():
        print(f"server overhead at 1 client (p50) vs {name}: {value * 100:+.1f}%")
    h = report["http_overhead_1_client"]
    print(f"server overhead per request at 1 client (client latency - server generation time): p50 {h['p50_ms']} ms, "
          f"p95 {h['p95_ms']} ms = {h['fraction_of_p50_latency'] * 100:.1f}% of the p50 latency")  # fmt: skip
    print("Falcon-7B batch-1 decode bound on A100 (weights bytes / bandwidth), tokens/s:")
    for gpu, row in report["falcon7b_a100_decode_bound_tokens_per_s"].items():
        print(f"  {gpu}: " + ", ".join(f"{k} {v}" for k, v in row.items()))


def main(argv: list[str] | None = None) -> dict:
    args = _parse_args(argv)
    new_tokens = args.tokens or (8 if args.quick else 64)
    levels = [1, 2] if args.quick else [1, 8, 32]
    repeats = 2 if args.quick else 20
    args.work.mkdir(parents=True, exist_ok=True)
    base, adapter = make_workdir(args.work, args.base)
    baseline, server = _measure(base, adapter, new_tokens, levels, repeats)
    prompt_tokens = baseline.pop("prompt_tokens")
    http_overhead = baseline.pop("http_overhead")
    report = {
        "settings": {
            "max_new_tokens": new_tokens,
            "greedy": True,
            "torch_threads": 1,
            "repeats": repeats,
            "prompt_tokens": prompt_tokens,
        },  # fmt: skip
        "in_process": baseline,
        "server": server,
        "http_overhead_1_client": http_overhead,
        "overhead_1_client": {
            name: round(server[0]["p50_s"] / row["p50_s"] - 1, 4) for name, row in baseline.items()
        },
        "falcon7b_a100_decode_bound_tokens_per_s": decode_bound(),
        "reference_tokens_per_s": 45.5,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    _print_tables(report, new_tokens)
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
