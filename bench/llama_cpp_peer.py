"""llama.cpp next to twin's engine, on the same merged weights (part of ``python -m bench.compare_generate``).

The peer is llama-cpp-python's OpenAI-compatible server (``python -m llama_cpp.server``) on the GGUF
that ``twin publish gguf --type f32`` writes from the merged adapter; twin is ``twin serve`` on the
base + adapter. Same prompt (twin renders it; llama.cpp gets the rendered text on /v1/completions),
greedy, no repetition penalty (llama.cpp's looks back 64 tokens only, twin's over the whole
sequence), the same new tokens forced (twin: ``min_new_tokens``; llama.cpp: EOS banned by
``logit_bias``, see :func:`forced_bias`), one thread each. Aggregate tokens/s over all
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
IDLE_S = 2.0  # memory is read this long after the last reply (an idle server)
# --dtype: twin serve's --dtype -> the GGUF type llama.cpp gets. `twin publish gguf` writes no bf16,
# so twin's bf16 is set beside llama.cpp's f16: the same 2 bytes per weight (memory), not the same numbers.
GGUF_TYPE = {"float32": "f32", "bfloat16": "f16"}


def available() -> str | None:
    """None when llama-cpp-python's server can run here, else why not."""
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError as e:
        return f"llama-cpp-python[server] is not installed ({type(e).__name__}); build it as the Makefile's llama-cpp"
    return None


def merged_gguf(base: Path, adapter: Path, out: Path, outtype: str = "f32") -> Path:
    from twin.publish.gguf import export_gguf
    from twin.publish.merge import merge_adapter

    found = sorted((out / "gguf").glob(f"*-{outtype}.gguf"))
    if found:
        return found[0]
    merged = merge_adapter(base, adapter, out / "merged", dtype="float32", force=True)
    return Path(export_gguf(merged, out / "gguf", outtype=outtype, name="twin")["gguf"])


def rendered_prompt(adapter: Path) -> str:
    from bench.bench_serve import HISTORY, MESSAGE
    from twin.adapter_meta import read_meta
    from twin.inference.generate import Conversation, build_reply_prompt
    from twin.model.load import load_tokenizer

    meta = read_meta(adapter)
    return build_reply_prompt(meta, load_tokenizer(adapter), Conversation(HISTORY, MESSAGE))


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
    common.still_client()  # no full GC collection inside the timed part
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


def bodies(tokens: int, prompt: str, model: str, bias: dict[str, float] | None = None) -> tuple[dict, dict]:
    """``(twin's /reply body, llama.cpp's /v1/completions body)`` for the same greedy request of
    ``tokens`` new tokens, forced; ``bias``: llama.cpp's ``logit_bias`` from :func:`forced_bias`."""
    from bench.bench_serve import HISTORY, MESSAGE
    from twin.prompt import STOP_STRINGS

    twin = {"message": MESSAGE, "history": HISTORY, "temperature": 0, "repetition_penalty": 1.0,
            "max_new_tokens": tokens, "min_new_tokens": tokens, "adapter": model}  # fmt: skip
    peer = {"model": model, "prompt": prompt, "max_tokens": tokens, "temperature": 0,
            "repeat_penalty": 1.0, "top_k": 0, "min_p": 0.0, "stop": list(STOP_STRINGS),
            "logit_bias": bias or {}}  # fmt: skip
    return twin, peer


def _byte_chars() -> dict[str, int]:
    """GPT-2's byte-level alphabet: the character a byte-level BPE token uses for each byte."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


def holds_back(token: bytes) -> bool:
    """Whether a reply ending in ``token`` is held back by llama-cpp-python as an incomplete UTF-8
    character: its own test (``_create_completion``) on the token's last three bytes."""
    tail = token[-3:]
    return any(
        num > k and pattern & byte == pattern
        for k, byte in zip(range(len(tail), 0, -1), tail, strict=True)
        for num, pattern in ((2, 0xC0), (3, 0xE0), (4, 0xF0))
    )


def forced_bias(tokenizer_dir: Path) -> dict[str, float]:
    """llama.cpp's ``logit_bias`` for a forced-length greedy reply: every EOS id banned, and every
    token after which llama-cpp-python would hold the text back (:func:`holds_back`).

    Why not ``min_tokens``: llama-cpp-python 0.3.36 drops the min_tokens processor as soon as a
    ``logit_bias`` is given (``logits_processor = logits_processor.extend(...)``, which returns None),
    so EOS is banned here instead, for the whole reply (the same as ``min_tokens`` = ``max_tokens``).
    Why the tokens: its completion loop holds back text that ends in an incomplete UTF-8 character
    and ``continue``s before its ``max_tokens`` check, so a greedy reply stuck repeating such a token
    never ends: it decodes until the context is full and answers 500, ``llama_decode returned 1``
    ("failed to find a memory slot"). A random adapter on the tiny Llama (seed 107) does exactly that
    after 30 tokens (token 186, the byte 0xF8); others ran a few tokens past ``max_tokens``. With
    random weights the text means nothing: only the reply's length must be what was asked.
    """
    import json

    from twin.model.load import load_tokenizer

    tok = load_tokenizer(tokenizer_dir)
    chars = _byte_chars()
    banned = {
        i
        for t, i in tok.get_vocab().items()
        if all(c in chars for c in t) and holds_back(bytes(chars[c] for c in t))
    }
    eos = tok.eos_token_id
    banned |= {eos} if isinstance(eos, int) else set()
    gen = Path(tokenizer_dir) / "generation_config.json"
    if gen.is_file():
        ids = json.loads(gen.read_text(encoding="utf-8")).get("eos_token_id")
        banned |= {ids} if isinstance(ids, int) else set(ids or [])
    return {str(i): -1e9 for i in sorted(banned)}


def twin_server(
    base: Path,
    adapters: list[tuple[str, Path]],
    max_batch: int = 8,
    dtype: str = "float32",
    env: dict | None = None,
) -> Any:
    import os

    from devkit.live_server import twin_process

    args = ["--base", str(base), "--threads", "1", "--queue-size", "64", "--max-batch", str(max_batch),
            "--dtype", dtype]  # fmt: skip
    for name, path in adapters:
        args += ["--adapter", f"{name}={path}"]
    return twin_process(
        "serve",
        *args,
        health="/healthz",
        env={**os.environ, "TWIN_API_TOKEN": "", **(env or {})},
        timeout=900,
    )


def pid_of(url: str) -> int:
    """The pid listening on ``url``'s port (twin_process does not expose its Popen)."""
    import psutil

    port = int(url.rsplit(":", 1)[1])
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
            return conn.pid
    raise RuntimeError(f"nothing listens on {url}")


def one_adapter(
    base: Path, adapter: Path, gguf: Path, tokens: int, requests: int, dtype: str = "float32"
) -> dict:
    """twin and llama.cpp on one adapter, at 1 and 8 clients, measured in turn."""
    from devkit.live_server import llama_cpp_process

    twin_body, peer_body = bodies(tokens, rendered_prompt(adapter), "twin", forced_bias(base))
    out: dict[str, Any] = {"dtype": dtype}
    with (
        twin_server(base, [("twin", adapter)], dtype=dtype) as turl,
        llama_cpp_process(gguf, "twin") as (purl, proc),
    ):
        for n in (1, 8):
            per = max(1, requests // n)
            out[f"twin|{n}"] = asyncio.run(clients([(turl, "/reply", twin_body)] * n, per))
            out[f"llama.cpp|{n}"] = asyncio.run(clients([(purl, "/v1/completions", peer_body)] * n, per))
        out["twin_mem"], out["llama.cpp_mem"] = memory_mb([pid_of(turl)]), memory_mb([proc.pid])
        out["twin_rss_mb"], out["llama.cpp_rss_mb"] = out["twin_mem"]["rss"], out["llama.cpp_mem"]["rss"]
    return out


def lora_ggufs(pairs: list[tuple[str, Path]], work: Path, outtype: str) -> list[Path]:
    """Each adapter as a llama.cpp LoRA GGUF (``twin publish gguf --adapter``), written once."""
    from twin.publish.gguf import export_adapter_gguf

    out = []
    for k, (name, path) in enumerate(pairs):
        found = sorted((work / f"lora{k}").glob(f"*-lora-{outtype}.gguf"))
        out.append(
            found[0]
            if found
            else Path(export_adapter_gguf(path, work / f"lora{k}", outtype=outtype, name=name)["gguf"])
        )
    return out


def eight_adapters(
    base: Path,
    work: Path,
    tokens: int,
    requests: int,
    *,
    peer: str = "merged",
    base_gguf: Path | None = None,
    dtype: str = "float32",
) -> dict:
    """8 clients, each on its own adapter: one twin server holding 8 vs 8 llama.cpp processes
    (``peer``: ``merged``, one merged GGUF each, or ``lora``, ``base_gguf`` + each one's LoRA GGUF)."""
    from devkit.live_server import llama_cpp_process

    pairs = random_adapters(base, work)
    outtype = GGUF_TYPE[dtype]
    if peer == "lora":
        models = list(zip([base_gguf] * len(pairs), lora_ggufs(pairs, work, outtype), strict=True))
    else:
        models = [
            (merged_gguf(base, path, work / f"peer{k}", outtype), None) for k, (_, path) in enumerate(pairs)
        ]
    prompt, bias = rendered_prompt(pairs[0][1]), forced_bias(base)
    out: dict[str, Any] = {"peer": peer, "dtype": dtype}
    with twin_server(base, pairs, dtype=dtype) as turl:
        targets = [(turl, "/reply", bodies(tokens, prompt, name)[0]) for name, _ in pairs]
        out["twin"] = asyncio.run(clients(targets, requests))
        out["twin_mem"] = memory_mb([pid_of(turl)])
    with contextlib.ExitStack() as stack:
        peers = [stack.enter_context(llama_cpp_process(g, name, lora=lora, timeout=600))
                 for (g, lora), (name, _) in zip(models, pairs, strict=True)]  # fmt: skip
        targets = [
            (url, "/v1/completions", bodies(tokens, prompt, name, bias)[1])
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


def shared_weights_memory(
    gguf: Path,
    prompt: str,
    tokens: int,
    bias: dict[str, float],
    loras: list[Path] | None = None,
    n_batch: int | None = None,
) -> dict:
    """Memory of ``ADAPTERS`` llama.cpp processes on one GGUF, each after one request. Without
    ``loras``, all 8 mmap it: the least 8 llama.cpp processes can take (llama-cpp-python reads the
    weights into private memory when given a LoRA, ``use_mmap = use_mmap and lora_path is None``;
    llama.cpp's own server keeps the mmap). With ``loras``, process k applies ``loras[k]``."""
    from devkit.live_server import llama_cpp_process

    loras = loras or [None] * ADAPTERS
    with contextlib.ExitStack() as stack:
        peers = [stack.enter_context(llama_cpp_process(gguf, f"a{k}", lora=loras[k], timeout=900, n_batch=n_batch))
                 for k in range(ADAPTERS)]  # fmt: skip
        targets = [
            (url, "/v1/completions", bodies(tokens, prompt, f"a{k}", bias)[1])
            for k, (url, _) in enumerate(peers)
        ]
        asyncio.run(clients(targets, 1))
        time.sleep(IDLE_S)
        return memory_mb([p.pid for _, p in peers])


def eight_adapters_memory(
    base: Path,
    work: Path,
    tokens: int,
    dtype: str,
    *,
    parts: tuple[str, ...] = ("twin", "shared", "small", "lora"),
) -> dict:
    """Memory (RSS, PSS) after one request on each of 8 adapters: one twin server holding all 8
    (``twin``), 8 llama.cpp processes mmapping one base GGUF (no adapter: the least they take;
    ``shared`` at llama.cpp's default 512-token batch, ``small`` at a 64-token one, whose compute
    buffer is 8x smaller), and 8 applying each its LoRA GGUF to that base (``lora``: what
    llama-cpp-python runs, the mmap turned off)."""
    pairs = random_adapters(base, work)
    prompt, bias = rendered_prompt(pairs[0][1]), forced_bias(base)
    out: dict[str, Any] = {"dtype": dtype}
    if "twin" in parts:
        with twin_server(base, pairs, dtype=dtype) as turl:
            asyncio.run(clients([(turl, "/reply", bodies(tokens, prompt, name)[0]) for name, _ in pairs], 1))
            out["twin_busy"] = memory_mb([pid_of(turl)])
            time.sleep(IDLE_S)  # both sides measured idle: twin's scheduler trims its heap after 1 s
            out["twin"] = memory_mb([pid_of(turl)])
        print(json.dumps(out), flush=True)
    shared = base_gguf(base, work / "base-gguf", GGUF_TYPE[dtype])
    for part, n_batch in (("shared", None), ("small", 64)):
        if part in parts:
            out[f"llama.cpp_{part}"] = shared_weights_memory(shared, prompt, tokens, bias, n_batch=n_batch)
            print(json.dumps(out), flush=True)
    if "lora" in parts:
        loras = lora_ggufs(pairs, work, GGUF_TYPE[dtype])
        out["llama.cpp_lora"] = shared_weights_memory(shared, prompt, tokens, bias, loras)
    return out


def base_gguf(base: Path, out: Path, outtype: str = "f32") -> Path:
    """``base`` itself (no adapter merged) as a GGUF: what every ``lora`` peer process mmaps."""
    from twin.publish.gguf import export_gguf

    found = sorted(out.glob(f"*-{outtype}.gguf"))
    return found[0] if found else Path(export_gguf(base, out, outtype=outtype, name="base")["gguf"])


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
    ap.add_argument("--dtype", choices=tuple(GGUF_TYPE), default="float32",
                    help="twin serve's --dtype; llama.cpp gets f32 for float32, f16 for bfloat16 (no bf16 GGUF)")  # fmt: skip
    ap.add_argument("--memory-only", action="store_true",
                    help="only the memory of 8 adapters: twin vs 8 llama.cpp processes (shared mmap, and base + LoRA)")  # fmt: skip
    ap.add_argument("--memory-parts", default="twin,shared,small,lora",
                    help="with --memory-only: which of twin, shared, small, lora to measure")  # fmt: skip
    a = ap.parse_args(argv)
    a.work.mkdir(parents=True, exist_ok=True)
    if a.base == "qwen05":
        from bench import bench_serve, qwen_shape

        base = qwen_shape.build(a.work / "qwen05")
        base, adapter = bench_serve.make_workdir(a.work, base=base)
    else:
        from bench.compare_generate import arch_workdir

        base, adapter = arch_workdir(a.work, a.base)
    out: dict[str, Any] = {"base": a.base, "tokens": a.tokens, "requests": a.requests, "dtype": a.dtype}
    outtype = GGUF_TYPE[a.dtype]
    if a.shared_only:
        shared = base_gguf(base, a.work / "base-gguf", outtype)
        out["shared_mmap"] = shared_weights_memory(
            shared, rendered_prompt(adapter), a.tokens, forced_bias(base)
        )
        print(json.dumps(out), flush=True)
        return out
    if a.memory_only:
        out["memory"] = eight_adapters_memory(
            base, a.work, a.tokens, a.dtype, parts=tuple(a.memory_parts.split(","))
        )
        print(json.dumps(out), flush=True)
        return out
    gguf = merged_gguf(base, adapter, a.work / "peer", outtype)
    out["one"] = one_adapter(base, adapter, gguf, a.tokens, a.requests, a.dtype)
    print(json.dumps(out["one"]), flush=True)
    for peer in ("merged", "lora") if a.peer == "both" else (a.peer,):
        shared = base_gguf(base, a.work / "base-gguf", outtype) if peer == "lora" else None
        out[peer] = eight_adapters(
            base, a.work, a.tokens, max(1, a.requests // 4), peer=peer, base_gguf=shared, dtype=a.dtype
        )
        print(json.dumps(out[peer]), flush=True)
    (a.work / f"llama_cpp_peer-{a.base}.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
