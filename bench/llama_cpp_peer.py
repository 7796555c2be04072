"""llama.cpp next to twin's engine, on the same merged weights (part of ``python -m bench.compare_generate``).

The peer is llama-cpp-python's OpenAI-compatible server (``python -m llama_cpp.server``) on the GGUF
that ``twin publish gguf --type f32`` writes from the merged adapter; twin is ``twin serve`` on the
base + adapter. Same prompt (twin renders it; llama.cpp gets the rendered text on /v1/completions),
greedy, no repetition penalty (llama.cpp's looks back 64 tokens only, twin's over the whole
sequence), the same new tokens forced (``min_tokens``), one thread each. Aggregate tokens/s over all
clients, and the servers' memory summed over their processes, as RSS and as PSS (proportional set
size, ``/proc/PID/smaps_rollup``: a page shared by k processes counts 1/k in each, so processes that
mmap the same GGUF are not counted k times; the memory goal is judged on PSS):

- one adapter, 1 and 8 clients: llama-cpp-python's server answers one request at a time;
- 8 clients each with their own adapter: twin serves all 8 from one base in one batch; llama.cpp
  needs one process per adapter (its server cannot batch different LoRA configurations): either one
  merged GGUF per adapter (``merged``), or the base GGUF, mmapped and so shared by all 8, plus each
  process's own LoRA GGUF (``lora``: ``twin publish gguf --adapter``, applied by llama.cpp at run time).

``python -m bench.llama_cpp_peer --base llama|qwen05 --work DIR`` runs it alone on the tiny Llama or
on a randomly initialised model of Qwen2.5-0.5B's shape (:mod:`bench.qwen_shape`; compute-bound).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.baselines import common

ADAPTERS = 8


def available() -> str | None:
    """None when llama-cpp-python's server can run here, else why not."""
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError as e:
        return f"llama-cpp-python[server] is not installed ({type(e).__name__}); build it as the Makefile's llama-cpp"
    return None


def merged_gguf(base: Path, adapter: Path, out: Path) -> Path:
    from twin.publish.gguf import export_gguf
    from twin.publish.merge import merge_adapter

    merged = merge_adapter(base, adapter, out / "merged", dtype="float32", force=True)
    return Path(export_gguf(merged, out / "gguf", outtype="f32", name="twin")["gguf"])


def rendered_prompt(adapter: Path) -> str:
    from bench.bench_serve import HISTORY, MESSAGE
    from twin.adapter_meta import read_meta
    from twin.inference.generate import build_reply_prompt
    from twin.model.load import load_tokenizer

    meta = read_meta(adapter)
    return build_reply_prompt(meta, load_tokenizer(adapter), HISTORY, MESSAGE, None)


def rss_mb(pids: list[int]) -> float:
    return memory_mb(pids)["rss"]


def memory_mb(pids: list[int]) -> dict[str, float]:
    """RSS and PSS (MiB) summed over ``pids`` (PSS shares each page among the processes mapping it)."""
    total = {"rss": 0.0, "pss": 0.0}
    for pid in pids:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("Rss", "Pss"):
                total[key.lower()] += int(rest.split()[0]) / 1024  # kB
    return total


async def clients(targets: list[tuple[str, str, dict]], per_client: int) -> dict:
    """One client per ``(url, path, body)``, ``per_client`` requests each back to back: tokens/s."""
    import httpx

    tokens = 0

    async def client(c: httpx.AsyncClient, url: str, path: str, body: dict) -> None:
        nonlocal tokens
        for _ in range(per_client):
            r = await c.post(url + path, json=body)
            r.raise_for_status()
            tokens += r.json()["usage"]["completion_tokens"]

    async with httpx.AsyncClient(timeout=900) as c:
        await asyncio.gather(*(c.post(u + p, json=b) for u, p, b in targets[:1]))  # warm-up
        t0 = time.perf_counter()
        await asyncio.gather(*(client(c, *t) for t in targets))
        wall = time.perf_counter() - t0
    return {"tokens_per_s": tokens / wall, "tokens": tokens, "seconds": wall}


def bodies(tokens: int, prompt: str, model: str) -> tuple[dict, dict]:
    """``(twin's /reply body, llama.cpp's /v1/completions body)`` for the same greedy request."""
    from bench.bench_serve import HISTORY, MESSAGE
    from twin.prompt import STOP_STRINGS

    twin = {"message": MESSAGE, "history": HISTORY, "temperature": 0, "repetition_penalty": 1.0,
            "max_new_tokens": tokens, "adapter": model}  # fmt: skip
    peer = {"model": model, "prompt": prompt, "max_tokens": tokens, "min_tokens": tokens, "temperature": 0,
            "repeat_penalty": 1.0, "top_k": 0, "min_p": 0.0, "stop": list(STOP_STRINGS)}  # fmt: skip
    return twin, peer


def twin_server(base: Path, adapters: list[tuple[str, Path]], max_batch: int = 8) -> Any:
    import os

    from devkit.live_server import twin_process

    args = ["--base", str(base), "--threads", "1", "--queue-size", "64", "--max-batch", str(max_batch),
            "--dtype", "float32"]  # fmt: skip
    for name, path in adapters:
        args += ["--adapter", f"{name}={path}"]
    return twin_process(
        "serve", *args, health="/healthz", env={**os.environ, "TWIN_API_TOKEN": ""}, timeout=900
    )


def pid_of(url: str) -> int:
    """The pid listening on ``url``'s port (twin_process does not expose its Popen)."""
    import psutil

    port = int(url.rsplit(":", 1)[1])
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
            return conn.pid
    raise RuntimeError(f"nothing listens on {url}")


def one_adapter(base: Path, adapter: Path, gguf: Path, tokens: int, requests: int) -> dict:
    """twin and llama.cpp on one adapter, at 1 and 8 clients, measured in turn."""
    from devkit.live_server import llama_cpp_process

    twin_body, peer_body = bodies(tokens, rendered_prompt(adapter), "twin")
    out: dict[str, Any] = {}
    with twin_server(base, [("twin", adapter)]) as turl, llama_cpp_process(gguf, "twin") as (purl, proc):
        for n in (1, 8):
            per = max(1, requests // n)
            out[f"twin|{n}"] = asyncio.run(clients([(turl, "/reply", twin_body)] * n, per))
            out[f"llama.cpp|{n}"] = asyncio.run(clients([(purl, "/v1/completions", peer_body)] * n, per))
        out["twin_mem"], out["llama.cpp_mem"] = memory_mb([pid_of(turl)]), memory_mb([proc.pid])
        out["twin_rss_mb"], out["llama.cpp_rss_mb"] = out["twin_mem"]["rss"], out["llama.cpp_mem"]["rss"]
    return out


def eight_adapters(
    base: Path, work: Path, tokens: int, requests: int, *, peer: str = "merged", base_gguf: Path | None = None
) -> dict:
    """8 clients, each on its own adapter: one twin server holding 8 vs 8 llama.cpp processes
    (``peer``: ``merged``, one merged GGUF each, or ``lora``, ``base_gguf`` + each one's LoRA GGUF)."""
    from devkit.live_server import llama_cpp_process

    pairs = random_adapters(base, work)
    if peer == "lora":
        from twin.publish.gguf import export_adapter_gguf

        models = [(base_gguf, Path(export_adapter_gguf(path, work / f"lora{k}", outtype="f32", name=name)["gguf"]))
                  for k, (name, path) in enumerate(pairs)]  # fmt: skip
    else:
        models = [(merged_gguf(base, path, work / f"peer{k}"), None) for k, (_, path) in enumerate(pairs)]
    prompt = rendered_prompt(pairs[0][1])
    out: dict[str, Any] = {"peer": peer}
    with twin_server(base, pairs) as turl:
        targets = [(turl, "/reply", bodies(tokens, prompt, name)[0]) for name, _ in pairs]
        out["twin"] = asyncio.run(clients(targets, requests))
        out["twin_mem"] = memory_mb([pid_of(turl)])
    with contextlib.ExitStack() as stack:
        peers = [stack.enter_context(llama_cpp_process(g, name, lora=lora, timeout=600))
                 for (g, lora), (name, _) in zip(models, pairs, strict=True)]  # fmt: skip
        targets = [
            (url, "/v1/completions", bodies(tokens, prompt, name)[1])
            for (url, _), (name, _) in zip(peers, pairs, strict=True)
        ]
        out["llama.cpp"] = asyncio.run(clients(targets, requests))
        out["llama.cpp_mem"] = memory_mb([p.pid for _, p in peers])
    out["twin_rss_mb"], out["llama.cpp_rss_mb"] = out["twin_mem"]["rss"], out["llama.cpp_mem"]["rss"]
    return out


def random_adapters(base: Path, work: Path) -> list[tuple[str, Path]]:
    """``ADAPTERS`` random LoRA adapters on ``base`` (built once in ``work``)."""
    from devkit.adapters import write_random_lora

    pairs = []
    for k in range(ADAPTERS):
        path = work / f"adapter{k}"
        if not (path / "twin.json").is_file():
            write_random_lora(base, path, seed=100 + k, r=8, alpha=16)
        pairs.append((f"a{k}", path))
    return pairs


def run(work: Path, workdirs: dict[str, tuple[Path, Path]], *, quick: bool, tokens: int) -> dict:
    """Every part for every tiny base in ``workdirs``; ``{"skipped": why}`` without llama-cpp-python."""
    why = available()
    if why:
        print(f"llama.cpp part skipped: {why}")
        return {"skipped": why}
    requests = 2 if quick else 8
    out: dict[str, Any] = {"tokens": tokens, "requests": requests}
    for arch, (base, adapter) in workdirs.items():
        peer_dir = work / f"llama-cpp-{arch}"
        gguf = merged_gguf(base, adapter, peer_dir)
        out[arch] = {"one": one_adapter(base, adapter, gguf, tokens, requests)}
        out[arch]["eight"] = eight_adapters(base, peer_dir, tokens, max(1, requests // 4))
        print(f"llama.cpp vs twin, tiny {arch}: {out[arch]}")
    return out


def markdown(peer: dict) -> str:
    lines = ["### Generation: twin vs llama.cpp on the same merged weights", ""]
    if "skipped" in peer:
        return "\n".join(lines + [f"Not measured in this run: {peer['skipped']}."])
    lines += [
        f"llama-cpp-python's server on `twin publish gguf --type f32` of the merged adapter vs `twin serve` "
        f"on base + adapter; greedy, {peer['tokens']} new tokens forced, no repetition penalty, 1 thread each, "
        "tiny models (Python and HTTP overhead dominate at this size; not a compute comparison).",
        "",
        "| base | clients | adapters | twin tokens/s | llama.cpp tokens/s | twin ÷ llama.cpp | twin RSS MiB | llama.cpp RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for arch, r in peer.items():
        if not isinstance(r, dict):
            continue
        one, eight = r["one"], r["eight"]
        for n in (1, 8):
            t, p = one[f"twin|{n}"]["tokens_per_s"], one[f"llama.cpp|{n}"]["tokens_per_s"]
            lines.append(f"| tiny {arch} | {n} | 1 | {t:.1f} | {p:.1f} | {t / p:.2f}x | "
                         f"{one['twin_rss_mb']:.0f} | {one['llama.cpp_rss_mb']:.0f} (1 process) |")  # fmt: skip
        t, p = eight["twin"]["tokens_per_s"], eight["llama.cpp"]["tokens_per_s"]
        lines.append(f"| tiny {arch} | 8 | 8 (one each) | {t:.1f} | {p:.1f} | {t / p:.2f}x | "
                     f"{eight['twin_rss_mb']:.0f} | {eight['llama.cpp_rss_mb']:.0f} ({ADAPTERS} processes) |")  # fmt: skip
    return "\n".join(lines + ["", f"Memory ratio is RSS; {common.machine()}."])


def shared_weights_memory(gguf: Path, prompt: str, tokens: int) -> dict:
    """Memory of ``ADAPTERS`` llama.cpp processes mmapping one GGUF, each after one request: the
    least 8 llama.cpp processes can take (llama-cpp-python reads the weights into private memory when
    given a LoRA, ``use_mmap = use_mmap and lora_path is None``; llama.cpp's own server keeps the mmap)."""
    from devkit.live_server import llama_cpp_process

    with contextlib.ExitStack() as stack:
        peers = [stack.enter_context(llama_cpp_process(gguf, f"a{k}", timeout=600)) for k in range(ADAPTERS)]
        targets = [
            (url, "/v1/completions", bodies(tokens, prompt, f"a{k}")[1]) for k, (url, _) in enumerate(peers)
        ]
        asyncio.run(clients(targets, 1))
        return memory_mb([p.pid for _, p in peers])


def base_gguf(base: Path, out: Path) -> Path:
    """``base`` itself (no adapter merged) as an f32 GGUF: what every ``lora`` peer process mmaps."""
    from twin.publish.gguf import export_gguf

    found = sorted(out.glob("*.gguf"))
    return found[0] if found else Path(export_gguf(base, out, outtype="f32", name="base")["gguf"])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench.llama_cpp_peer", description=__doc__.splitlines()[0])
    ap.add_argument("--base", choices=("llama", "falcon", "qwen05"), default="llama",
                    help="tiny llama/falcon, or qwen05: random weights in Qwen2.5-0.5B's shape")  # fmt: skip
    ap.add_argument(
        "--work", type=Path, required=True, help="work dir (models and GGUFs are kept and reused)"
    )
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument(
        "--requests", type=int, default=8, help="requests of the one-adapter part (8 clients: /8 each)"
    )
    ap.add_argument("--shared-only", action="store_true",
                    help="only the memory of 8 llama.cpp processes sharing the base GGUF's mmap")  # fmt: skip
    ap.add_argument("--peer", choices=("merged", "lora", "both"), default="both",
                    help="llama.cpp's 8 adapters: merged GGUFs, one base GGUF + LoRA GGUFs, or both")  # fmt: skip
    a = ap.parse_args(argv)
    a.work.mkdir(parents=True, exist_ok=True)
    if a.base == "qwen05":
        from bench import bench_serve, qwen_shape

        base = qwen_shape.build(a.work / "qwen05")
        base, adapter = bench_serve.make_workdir(a.work, base=base)
    else:
        from bench.compare_generate import arch_workdir

        base, adapter = arch_workdir(a.work, a.base)
    out: dict[str, Any] = {"base": a.base, "tokens": a.tokens, "requests": a.requests}
    if a.shared_only:
        shared = base_gguf(base, a.work / "base-gguf")
        out["shared_mmap"] = shared_weights_memory(shared, rendered_prompt(adapter), a.tokens)
        print(json.dumps(out), flush=True)
        return out
    out["one"] = one_adapter(base, adapter, merged_gguf(base, adapter, a.work / "peer"), a.tokens, a.requests)
    print(json.dumps(out["one"]), flush=True)
    for peer in ("merged", "lora") if a.peer == "both" else (a.peer,):
        shared = base_gguf(base, a.work / "base-gguf") if peer == "lora" else None
        out[peer] = eight_adapters(
            base, a.work, a.tokens, max(1, a.requests // 4), peer=peer, base_gguf=shared
        )
        print(json.dumps(out[peer]), flush=True)
    (a.work / f"llama_cpp_peer-{a.base}.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
