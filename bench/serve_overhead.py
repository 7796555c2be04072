"""The server path's own cost: the same replies in process and through a real ``twin serve`` over HTTP.

    .venv/bin/python -m bench.serve_overhead --base llama --work /tmp/so            # tiny Llama, float32
    .venv/bin/python -m bench.serve_overhead --base qwen05 --dtype bfloat16 --tokens 16 --requests 8 --work /tmp/so
    .venv/bin/python -m bench.serve_overhead --quick --work /tmp/so                 # smoke: 8 tokens, 1 round

The same base, adapter, prompt and settings (greedy, ``--tokens`` new tokens forced by ``min_new_tokens``,
repetition penalty 1.0) are driven (a) in this process through the serve engine
(:class:`twin.serve.engine.Engine`: prompt rendering, the scheduler, its thread) with no HTTP, and (b)
through a real ``twin serve`` process on loopback, ``POST /reply`` and ``POST /reply/stream`` (SSE read to
its ``done`` frame), by httpx clients in this process. Both hold the model at ``--dtype`` on one torch
thread with the same ``--max-batch``. Each client sends its requests back to back; 1 and 8 clients.
In every round the paths run in turn (their order rotates), so a busy machine slows all alike; medians
over rounds.

Per path and client count: aggregate tokens/s, p50 latency per reply, and the **server overhead per reply**
(ms) = the HTTP path's p50 latency − the in-process path's p50 latency at the same client count (what
HTTP, the routes, the thread hand-offs and the client cost on top of generating). ``inside`` is the
server's own ``latency_s`` + ``queue_s`` as it reports them; ``HTTP − inside`` is then the part outside
the engine's clock. Replies must be the same text in process and over HTTP (checked). The model and
adapter are built once in ``--work`` (tiny bases: ``bench.compare_generate.arch_workdir``; ``qwen05``:
:mod:`bench.qwen_shape`). Results: tables on stdout and ``--work``/serve_overhead-BASE.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.baselines import common
from bench.bench_serve import HISTORY, MESSAGE

PATHS = ("in process", "/reply", "/reply/stream")


def workdir(base: str, work: Path) -> tuple[Path, Path]:
    """``(base dir, adapter dir)`` for ``base`` (llama, falcon, qwen05), built once in ``work``."""
    if base == "qwen05":
        from bench import bench_serve, qwen_shape

        return bench_serve.make_workdir(work, base=qwen_shape.build(work / "qwen05"))
    from bench.compare_generate import arch_workdir

    return arch_workdir(work, base)


def body(tokens: int) -> dict:
    return {"message": MESSAGE, "history": HISTORY, "temperature": 0, "repetition_penalty": 1.0,
            "max_new_tokens": tokens, "min_new_tokens": tokens, "adapter": "twin"}  # fmt: skip


class InProcess:
    """The serve engine in this process: what ``twin serve`` runs behind its routes, minus HTTP."""

    def __init__(self, base: Path, adapter: Path, dtype: str, max_batch: int, threads: int) -> None:
        import torch

        from twin.model.load import prefer_passive_omp_wait
        from twin.serve.engine import Engine

        prefer_passive_omp_wait()
        torch.set_num_threads(threads)
        self.engine = Engine(base, [("twin", adapter)], dtype=dtype, max_batch=max_batch)

    def one(self, tokens: int) -> tuple[float, int, str, float]:
        """One reply: ``(seconds, completion tokens, text, inside seconds)``."""
        from twin.inference.generate import Conversation, GenParams

        params = GenParams(
            max_new_tokens=tokens, min_new_tokens=tokens, temperature=0, repetition_penalty=1.0
        )
        t0 = time.perf_counter()
        gen = self.engine.run(self.engine.adapters["twin"], Conversation(HISTORY, MESSAGE), params)
        dt = time.perf_counter() - t0
        return dt, gen.completion_tokens, gen.text, gen.seconds + gen.queue_seconds

    def load(self, clients: int, per_client: int, tokens: int) -> dict:
        rows: list[tuple[float, int, str, float]] = []
        lock = threading.Lock()

        def client() -> None:
            for _ in range(per_client):
                row = self.one(tokens)
                with lock:
                    rows.append(row)

        self.one(tokens)  # warm-up
        threads = [threading.Thread(target=client) for _ in range(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return summary(rows, time.perf_counter() - t0)


async def http_load(url: str, route: str, clients: int, per_client: int, tokens: int) -> dict:
    """``clients`` httpx clients sending ``per_client`` requests each to ``route``, back to back."""
    common.still_client()  # no full GC collection inside the timed part
    import httpx

    rows: list[tuple[float, int, str, float]] = []

    async def one(c: httpx.AsyncClient) -> tuple[float, int, str, float]:
        t0 = time.perf_counter()
        if route == "/reply":
            r = await c.post("/reply", json=body(tokens))
            r.raise_for_status()
            done = r.json()
        else:
            done = await read_stream(c, tokens)
        dt = time.perf_counter() - t0
        return dt, done["usage"]["completion_tokens"], done["reply"], done["latency_s"] + done["queue_s"]

    async def client(c: httpx.AsyncClient) -> None:
        for _ in range(per_client):
            rows.append(await one(c))

    limits = httpx.Limits(max_connections=clients + 2, max_keepalive_connections=clients + 2)
    async with httpx.AsyncClient(base_url=url, timeout=900, limits=limits) as c:
        await one(c)  # warm-up
        t0 = time.perf_counter()
        await asyncio.gather(*(client(c) for _ in range(clients)))
        wall = time.perf_counter() - t0
    return summary(rows, wall)


async def read_stream(c: Any, tokens: int) -> dict:
    """``/reply/stream`` read to its end; the ``done`` frame's body (it carries the whole reply)."""
    event = ""
    async with c.stream("POST", "/reply/stream", json=body(tokens)) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event in ("done", "error"):
                if event == "error":
                    raise RuntimeError(f"the stream ended with an error: {line[6:200]}")
                return json.loads(line[6:])
    raise RuntimeError("the stream ended without a done frame")


def summary(rows: list[tuple[float, int, str, float]], wall: float) -> dict:
    lat = [r[0] for r in rows]
    return {
        "replies": len(rows),
        "tokens_per_s": sum(r[1] for r in rows) / wall,
        "p50_ms": 1000 * statistics.median(lat),
        "inside_p50_ms": 1000 * statistics.median(r[3] for r in rows),
        "outside_p50_ms": 1000 * statistics.median(r[0] - r[3] for r in rows),
        "tokens": sorted({r[1] for r in rows}),
        "texts": sorted({r[2] for r in rows}),
    }


def one_round(local: InProcess, url: str, levels: list[int], requests: int, tokens: int, turn: int) -> dict:
    """Every path at every client count, in a rotated order."""
    out: dict[str, dict] = {}
    order = PATHS[turn % 3 :] + PATHS[: turn % 3]
    for clients in levels:
        per = max(1, requests // clients)
        for path in order:
            if path == "in process":
                row = local.load(clients, per, tokens)
            else:
                row = asyncio.run(http_load(url, path, clients, per, tokens))
            out[f"{path}|{clients}"] = row
            print(f"  {path:14s} {clients:2d} clients: {row['tokens_per_s']:8.2f} tokens/s, "
                  f"p50 {row['p50_ms']:8.1f} ms", flush=True)  # fmt: skip
    return out


def combine(rounds: list[dict], levels: list[int]) -> dict:
    """Medians over rounds, and each HTTP path's overhead per reply over the in-process path."""
    table: dict[str, dict] = {}
    for key in rounds[0]:
        rows = [r[key] for r in rounds]
        table[key] = {
            f: statistics.median(r[f] for r in rows)
            for f in ("tokens_per_s", "p50_ms", "inside_p50_ms", "outside_p50_ms")
        }
        table[key]["rounds_tokens_per_s"] = [round(r["tokens_per_s"], 2) for r in rows]
    for clients in levels:
        local = [r[f"in process|{clients}"]["p50_ms"] for r in rounds]
        for path in PATHS[1:]:
            served = [r[f"{path}|{clients}"]["p50_ms"] for r in rounds]
            per_round = [s - i for s, i in zip(served, local, strict=True)]
            table[f"{path}|{clients}"]["overhead_ms"] = statistics.median(per_round)
            table[f"{path}|{clients}"]["rounds_overhead_ms"] = [round(x, 1) for x in per_round]
    texts = {t for r in rounds for row in r.values() for t in row["texts"]}
    return {"table": table, "same_text": len(texts) == 1}


def markdown(res: dict, levels: list[int]) -> str:
    m = res["meta"]
    lines = [
        f"{m['base']} at {m['dtype']}, {m['tokens']} tokens forced, max-batch {m['max_batch']}, "
        f"{m['rounds']} rounds (medians); replies identical in process and over HTTP: "
        f"{'yes' if res['same_text'] else 'NO'}",
        "",
        "| path | clients | tokens/s | p50 ms / reply | server overhead ms / reply | HTTP − inside ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for clients in levels:
        for path in PATHS:
            row = res["table"][f"{path}|{clients}"]
            over = f"{row['overhead_ms']:.1f}" if "overhead_ms" in row else "—"
            outside = f"{row['outside_p50_ms']:.1f}"
            lines.append(
                f"| {path} | {clients} | {row['tokens_per_s']:.2f} | {row['p50_ms']:.1f} | {over} | {outside} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench.serve_overhead", description=__doc__.splitlines()[0])
    ap.add_argument("--base", choices=("llama", "falcon", "qwen05"), default="llama",
                    help="tiny llama/falcon, or qwen05: random weights in Qwen2.5-0.5B's shape")  # fmt: skip
    ap.add_argument("--work", type=Path, required=True, help="work dir (models are kept and reused)")
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    ap.add_argument("--tokens", type=int, default=64, help="new tokens per reply (forced)")
    ap.add_argument("--clients", default="1,8", help="client counts")
    ap.add_argument("--requests", type=int, default=16, help="replies per path and client count per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument("--quick", action="store_true", help="smoke size: 8 tokens, 4 replies, 1 round")
    a = ap.parse_args(argv)
    if a.quick:
        a.tokens, a.requests, a.rounds = 8, 4, 1
    from bench.llama_cpp_peer import twin_server

    a.work.mkdir(parents=True, exist_ok=True)
    levels = [int(c) for c in a.clients.split(",") if c.strip()]
    base, adapter = workdir(a.base, a.work)
    local = InProcess(base, adapter, a.dtype, a.max_batch, threads=1)  # as twin_server's --threads 1
    rounds = []
    with twin_server(base, [("twin", adapter)], max_batch=a.max_batch, dtype=a.dtype) as url:
        for turn in range(a.rounds):
            print(f"round {turn + 1}:", flush=True)
            rounds.append(one_round(local, url, levels, a.requests, a.tokens, turn))
    meta = {"base": a.base, "dtype": a.dtype, "tokens": a.tokens, "rounds": a.rounds, "max_batch": a.max_batch,
            "requests": a.requests, "threads": 1}  # fmt: skip
    res = {"meta": meta, **combine(rounds, levels)}
    print(markdown(res, levels))
    (a.work / f"serve_overhead-{a.base}.json").write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
