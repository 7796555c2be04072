"""CPU time per generated token of the in-process batch scheduler: 8 mixed rows vs the same 8 one by one.

Less sensitive to a shared machine than wall time (CPU time is what this process itself spent, not
what it waited for a core): two adapters and the bare base cycled over 8 greedy requests, forced to
``--tokens`` new tokens each, repetition penalty 1.1, one torch thread. ``--profile`` adds a
cProfile of the scheduler thread during the batched run (top functions by own time).

``--scoring-vocab 2048,151936`` times token choice alone for 8 greedy rows (EOS block, repetition
penalty, argmax) on random logits of each vocabulary size; run with ``PYTHONPATH`` on an older checkout
(before ``greedy_tokens``) it times that checkout's row-by-row scoring, for a before/after.

``python -m bench.batch_cpu --archs falcon,llama [--profile] [--scoring-vocab N,...] [--work DIR]``
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ADAPTERS = ["a", None, "b", "a", None, "b", "a", "b"]
MESSAGES = ["are we still on for dinner tonight?", "did you see the game", "ok", "call me when you land",
            "where are the keys?? not in the kitchen", "lol", "what time is dinner", "send me the photos pls"]  # fmt: skip


def scheduler(base: Path, adapters: dict[str, Path]) -> Any:
    import torch
    from peft import PeftModel

    from twin.inference.batch import Scheduler
    from twin.model.load import load_base

    torch.set_num_threads(1)
    model, tok = load_base(base)
    names = list(adapters)
    model = PeftModel.from_pretrained(model, str(adapters[names[0]]), adapter_name=names[0])
    for name in names[1:]:
        model.load_adapter(str(adapters[name]), adapter_name=name)
    return Scheduler(model.eval(), tok, max_batch=8)


def requests(sched: Any, tokens: int) -> list:
    from twin.inference.batch import Request
    from twin.inference.generate import GenParams

    out = []
    for i, (name, msg) in enumerate(zip(ADAPTERS, MESSAGES, strict=True)):
        ids = sched.tokenizer(f"Alice: {msg}\nMe:" if i % 2 else f"Me: hi\nAlice: {msg}\nMe:",
                              add_special_tokens=False)["input_ids"]  # fmt: skip
        params = GenParams(
            max_new_tokens=tokens, min_new_tokens=tokens, temperature=0, repetition_penalty=1.1
        )
        out.append(Request(ids, params, adapter=name))
    return out


def timed(sched: Any, tokens: int, together: bool) -> dict:
    reqs = requests(sched, tokens)
    c0, w0 = time.process_time(), time.perf_counter()
    if together:
        results = [f.result() for f in [sched.submit(r) for r in reqs]]
    else:
        results = [sched.submit(r).result() for r in reqs]
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    n = sum(g.completion_tokens for g in results)
    return {"tokens": n, "cpu_ms_per_token": 1000 * cpu / n, "wall_ms_per_token": 1000 * wall / n,
            "texts": [g.text for g in results]}  # fmt: skip


def profiled(sched: Any, tokens: int) -> str:
    """cProfile of the scheduler thread's work (prefill and decode steps, not its idle waits)."""
    prof = cProfile.Profile()
    for name in ("_prefill", "_step"):

        def run(*args: Any, _orig: Any = getattr(sched, name)) -> Any:
            prof.enable()
            try:
                return _orig(*args)
            finally:
                prof.disable()

        setattr(sched, name, run)
    timed(sched, tokens, True)
    for name in ("_prefill", "_step"):
        delattr(sched, name)
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(30)
    return buf.getvalue()


def workdir(work: Path, arch: str) -> tuple[Path, dict[str, Path]]:
    from bench.compare_generate import arch_workdir
    from devkit.adapters import write_random_lora

    base, first = arch_workdir(work, arch)
    second = first.parent / "adapter-b"
    if not (second / "twin.json").is_file():
        write_random_lora(base, second, seed=1, r=8, alpha=16)
    return base, {"a": first, "b": second}


def measure(base: Path, adapters: dict[str, Path], tokens: int, reps: int, profile: bool) -> dict:
    sched = scheduler(base, adapters)
    timed(sched, 4, True)  # warm-up: builds the stacked adapters, first allocations
    serial, batched = [], []
    for _ in range(reps):
        serial.append(timed(sched, tokens, False))
        batched.append(timed(sched, tokens, True))
    if any(s["texts"] != b["texts"] for s, b in zip(serial, batched, strict=True)):
        raise RuntimeError("batched replies differ from replies decoded one by one")
    out = {
        "serial_cpu_ms": min(r["cpu_ms_per_token"] for r in serial),
        "batched_cpu_ms": min(r["cpu_ms_per_token"] for r in batched),
        "serial_wall_ms": min(r["wall_ms_per_token"] for r in serial),
        "batched_wall_ms": min(r["wall_ms_per_token"] for r in batched),
    }
    if profile:
        out["profile"] = profiled(sched, tokens)
    return out


def scoring_ms(base: Path, vocab: int, steps: int = 500) -> float:
    """CPU ms per step to pick 8 greedy rows' tokens from ``[8, vocab]`` logits (60 tokens into each reply)."""
    import torch

    from twin.inference.generate import Decoding, GenParams
    from twin.model.load import load_base

    torch.set_num_threads(1)
    model, tok = load_base(base)
    decs = []
    for i in range(8):
        ids = tok(f"Alice: message {i} about dinner tonight\nMe:", add_special_tokens=False)["input_ids"]
        params = GenParams(max_new_tokens=200, min_new_tokens=100, temperature=0, repetition_penalty=1.1)
        decs.append(dec := Decoding(model, tok, ids, params))
        for t in range(60):
            dec.accept(10 + (t * 7 + i) % 500)
    logits = torch.randn(8, vocab)
    try:
        from twin.inference.decoding import greedy_tokens

        def pick() -> list[int]:
            return greedy_tokens(decs, logits.clone())
    except ImportError:  # a checkout before greedy_tokens: each row scored alone, as its scheduler did

        def pick() -> list[int]:
            rows = [d.scores(logits[i : i + 1].clone()) for i, d in enumerate(decs)]
            return torch.cat(rows).argmax(-1).tolist()

    for _ in range(20):
        pick()
    c0 = time.process_time()
    for _ in range(steps):
        pick()
    return 1000 * (time.process_time() - c0) / steps


def scoring(arch: str, base: Path, vocabs: str) -> dict:
    out = {}
    for vocab in (int(v) for v in vocabs.split(",") if v.strip()):
        out[f"scoring_ms|{vocab}"] = ms = scoring_ms(base, vocab)
        print(f"{arch}: token choice for 8 greedy rows, vocabulary {vocab}: {ms:.3f} CPU ms per step")
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench.batch_cpu", description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default="falcon,llama")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3, help="rounds; the least CPU time of each side is kept")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument(
        "--scoring-vocab", default="", help="also time token choice alone at these vocabulary sizes"
    )
    ap.add_argument("--work", type=Path)
    a = ap.parse_args(argv)
    work = a.work or Path(tempfile.mkdtemp(prefix="twin-batch-cpu-"))
    report = {}
    for arch in a.archs.split(","):
        base, adapters = workdir(work, arch)
        r = report[arch] = {}
        if a.reps < 1:  # --reps 0: only --scoring-vocab
            r.update(scoring(arch, base, a.scoring_vocab))
            continue
        r.update(measure(base, adapters, a.tokens, a.reps, a.profile))
        print(f"{arch}: CPU ms per token, 8 mixed rows one by one {r['serial_cpu_ms']:.2f}, batched "
              f"{r['batched_cpu_ms']:.2f} ({r['serial_cpu_ms'] / r['batched_cpu_ms']:.2f}x); wall "
              f"{r['serial_wall_ms']:.2f} vs {r['batched_wall_ms']:.2f}")  # fmt: skip
        if a.profile:
            print(r["profile"])
        r.update(scoring(arch, base, a.scoring_vocab))
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
