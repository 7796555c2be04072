"""`make bench-7b`: the Falcon-7B path measured on this CPU, with random weights (issue 13, part 1).

    nice .venv/bin/python -m bench.bench_7b                 # everything: 2/4-layer train+eval, 32-layer serve+merge
    nice .venv/bin/python -m bench.bench_7b --only build    # only build (or find) the random bases
    nice .venv/bin/python -m bench.bench_7b --layers 2 --skip-full
    .venv/bin/python -m bench.bench_7b --only small --layers 2 --precision 32-true bf16-true --tag r2  # a round
    .venv/bin/python -m bench.bench_7b --only full --skip-merge --tag r2   # 32-layer serve, r2's adapter
    .venv/bin/python -m bench.bench_7b --quick              # toy width, whole flow (smoke size)

Falcon-7B's architecture (tiiuae/falcon-7b's config.json: hidden 4544, 71 heads, one shared key/value
head, 32 layers, vocabulary 65,024, parallel attention, rotary, no biases, tied embeddings) is built on
the meta device and written as random bf16 safetensors shard by shard, never as a float32 model:
each tensor is allocated in bf16 and initialised in place. The tokenizer is a byte-level BPE trained
here on the bundled sample's prepared text and padded to exactly 65,024 entries. Everything lives in
``bench/out/`` (git-ignored) and is reused when complete.

Every measured step is the real ``twin`` command in its own process, started by
``bench/baselines/rusage.py`` (so its peak RSS is its own ``ru_maxrss``). Not part of `make bench`'s
default run (14 GB of weights and ~30 min): ``python -m bench --only bench_7b`` or ``make bench-7b``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
GiB = 1024**3
# tiiuae/falcon-7b config.json, architecture fields (bos/eos 11 = "<|endoftext|>", as there).
FALCON_7B: dict[str, Any] = {
    "vocab_size": 65024,
    "hidden_size": 4544,
    "num_attention_heads": 71,
    "num_hidden_layers": 32,
    "multi_query": True,
    "parallel_attn": True,
    "new_decoder_architecture": False,
    "alibi": False,
    "bias": False,
    "layer_norm_epsilon": 1e-5,
    "initializer_range": 0.02,
    "apply_residual_connection_post_layernorm": False,
    "bos_token_id": 11,
    "eos_token_id": 11,
}
# --quick: the same switches at toy width (71 heads of 4 dims), so the flow runs in seconds.
QUICK: dict[str, Any] = {"hidden_size": 284, "vocab_size": 4096}
# Falcon's own first 12 tokens, so "<|endoftext|>" is id 11 as in the real tokenizer.
SPECIAL = (
    ">>TITLE<<", ">>ABSTRACT<<", ">>INTRODUCTION<<", ">>SUMMARY<<", ">>COMMENT<<", ">>ANSWER<<",
    ">>QUESTION<<", ">>DOMAIN<<", ">>PREFIX<<", ">>SUFFIX<<", ">>MIDDLE<<", "<|endoftext|>",
)  # fmt: skip
STAMP = "bench_7b.json"
# Random values come from one pool of N(0, 0.02) bf16 draws (64 MiB), copied in at a random offset per
# tensor: drawing 6.9 billion fresh normals takes torch ~4-5 minutes on 2 cores, copying ~seconds.
# The values never matter here (speed and memory do), only their scale.
POOL = 1 << 25


def falcon_config(layers: int, overrides: dict[str, Any] | None = None) -> Any:
    from transformers import FalconConfig

    fields = {**FALCON_7B, **(overrides or {}), "num_hidden_layers": layers}
    cfg = FalconConfig(**fields)
    cfg.dtype = "bfloat16"
    return cfg


def build_tokenizer(out: Path, texts: list[str], vocab_size: int) -> Any:
    """Byte-level BPE trained on ``texts`` with Falcon-7B's special tokens (eos at its id), padded with
    unused entries to ``vocab_size`` (:func:`twin.model.tiny.train_tokenizer`), saved to ``out``."""
    from twin.model.chat_templates import TokenizerFamily
    from twin.model.tiny import train_tokenizer

    eos = "<|endoftext|>"
    falcon_7b = TokenizerFamily(special=SPECIAL, eos=eos, pad=None, bos=None, chat_template=None, stop=(eos,))
    fast = train_tokenizer(texts, vocab_size, 2048, pad_vocab_to=vocab_size, family=falcon_7b)
    if len(fast) != vocab_size:
        raise RuntimeError(f"tokenizer has {len(fast)} entries, wanted {vocab_size}")
    fast.save_pretrained(out)
    return fast


def tensor_plan(cfg: Any) -> list[tuple[str, tuple[int, ...], str]]:
    """``(name, shape, init)`` of every stored tensor, from a model built on the meta device (no memory).

    ``init``: ``normal`` (linear and embedding weights), ``ones`` / ``zeros`` (layer norms). A tied
    ``lm_head.weight`` is the embedding itself and is not stored, as in Falcon-7B's own files.
    """
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    norms = {n for n, m in model.named_modules() if isinstance(m, torch.nn.LayerNorm)}
    plan = []
    for name, p in model.named_parameters():  # shared (tied) parameters are listed once
        owner, _, leaf = name.rpartition(".")
        init = ("ones" if leaf == "weight" else "zeros") if owner in norms else "normal"
        plan.append((name, tuple(p.shape), init))
    return plan


def shard_groups(plan: list, max_bytes: int) -> list[list]:
    groups: list[list] = [[]]
    size = 0
    for entry in plan:
        n = 2 * _numel(entry[1])
        if groups[-1] and size + n > max_bytes:
            groups.append([])
            size = 0
        groups[-1].append(entry)
        size += n
    return groups


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def fill_from_pool(t: Any, pool: Any, offset: int) -> None:
    """Copy ``pool`` (wrapping around, from ``offset``) into ``t``: memory speed, no RNG per element."""
    flat, n, done = t.view(-1), t.numel(), 0
    while done < n:
        m = min(n - done, pool.numel() - offset)
        flat[done : done + m].copy_(pool[offset : offset + m])
        done, offset = done + m, 0


def write_random_weights(cfg: Any, out: Path, max_shard_bytes: int, seed: int = 0) -> int:
    """Random bf16 safetensors shards + index; at most one shard is in memory. Returns the parameter count."""
    import torch
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(seed)
    plan = tensor_plan(cfg)
    size = min(POOL, max(_numel(shape) for _, shape, _ in plan))
    pool = torch.empty(size, dtype=torch.bfloat16).normal_(0.0, cfg.initializer_range, generator=gen)
    groups = shard_groups(plan, max_shard_bytes)
    weight_map, total = {}, 0
    for i, group in enumerate(groups, 1):
        fname = f"model-{i:05d}-of-{len(groups):05d}.safetensors"
        tensors = {}
        for name, shape, init in group:
            t = torch.empty(shape, dtype=torch.bfloat16)  # allocated in bf16, filled in place
            if init == "normal":
                fill_from_pool(t, pool, int(torch.randint(size, (1,), generator=gen)))
            else:
                t.fill_(1.0 if init == "ones" else 0.0)
            tensors[name] = t
            weight_map[name] = fname
            total += t.numel()
        save_file(tensors, out / fname, metadata={"format": "pt"})
        del tensors
    index = {"metadata": {"total_size": 2 * total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return total


def build_base(out: Path, layers: int, tokenizer_dir: Path, *, overrides: dict | None = None,
               max_shard_bytes: int = 4 * GiB) -> dict:  # fmt: skip
    """A random-weight Falcon-7B-architecture dir at ``out`` (reused when its stamp says complete)."""
    stamp = out / STAMP
    if stamp.is_file():
        return json.loads(stamp.read_text())
    from transformers import GenerationConfig

    t0 = time.perf_counter()
    cfg = falcon_config(layers, overrides)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cfg.save_pretrained(tmp)
    GenerationConfig(bos_token_id=cfg.bos_token_id, eos_token_id=cfg.eos_token_id).save_pretrained(tmp)
    for f in tokenizer_dir.iterdir():
        shutil.copy2(f, tmp / f.name)
    params = write_random_weights(cfg, tmp, max_shard_bytes)
    info = {"layers": layers, "parameters": params, "bytes": 2 * params,
            "build_s": round(time.perf_counter() - t0, 1)}  # fmt: skip
    (tmp / STAMP).write_text(json.dumps(info, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return info


def twin_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "twin.cli", *args]


def run_measured(cmd: list[str], name: str, work: Path) -> dict:
    """Run ``cmd`` to the end in its own process; wall time and its own peak RSS (reused if done before)."""
    done = work / f"{name}.row.json"
    if done.is_file() and json.loads(done.read_text()).get("exit") == 0:
        print(f"{name}: measured before, reused ({done})", flush=True)
        return json.loads(done.read_text())
    rss = work / f"{name}.rss.json"
    log = work / f"{name}.log"
    t0 = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.call(
            [sys.executable, str(BENCH / "baselines" / "rusage.py"), str(rss), "--", *cmd],
            stdout=f, stderr=subprocess.STDOUT, env=_env(), cwd=ROOT,
        )  # fmt: skip
    wall = time.perf_counter() - t0
    ru = json.loads(rss.read_text()) if rss.is_file() else {}
    row = {"step": name, "exit": rc, "wall_s": round(wall, 1), "cpu_s": _cpu(ru),
           "peak_rss_gib": _gib(ru["max_rss_kib"] * 1024) if ru else None}  # fmt: skip
    print(json.dumps(row), flush=True)
    done.write_text(json.dumps(row) + "\n")
    if rc != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        print(f"  failed; last lines of {log}:\n" + "\n".join(tail), flush=True)
    return row


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("TWIN_API_TOKEN", None)  # the bench's own loopback server: no bearer token
    return env


def _cpu(ru: dict) -> float | None:
    """User + system CPU seconds: on a shared machine a steadier figure than the wall time."""
    return round(ru["user_s"] + ru["sys_s"], 1) if "user_s" in ru else None


def _gib(n: float | None) -> float | None:
    return None if n is None else round(n / GiB, 2)


def prepare_data(work: Path) -> Path:
    """The bundled sample through the real `twin export desktop` and `twin prepare` (shared by every run)."""
    work = OUT / "bench_7b_data"
    work.mkdir(parents=True, exist_ok=True)
    processed = work / "processed"
    if (processed / "train.jsonl").is_file():
        return processed
    raw = work / "raw"
    for name, cmd in (
        ("export", twin_cmd("export", "desktop", str(ROOT / "data/sample/result.json"), "--out", str(raw))),
        ("prepare", twin_cmd("prepare", "--raw", str(raw), "--out", str(processed))),
    ):
        if run_measured(cmd, name, work)["exit"] != 0:
            raise SystemExit(f"bench_7b: {name} failed")
    return processed


def train_row(base: Path, data: Path, work: Path, layers: int, precision: str, seq: int, steps: int = 2,
              tag: str = "") -> dict:  # fmt: skip
    run = f"{layers}l-{precision}" + (f"-{tag}" if tag else "")
    cmd = twin_cmd(
        "train", "--config", str(ROOT / "pipelines/falcon-7b.yaml"), "--base", str(base),
        "--data", str(data), "--run", run, "--max-steps", str(steps), "--precision", precision,
        "--set", "batch_size=1", "--set", "micro_batch_size=1", "--set", f"data.max_seq_length={seq}",
        "--set", f"out_dir={work / 'checkpoints'}", "--set", "eval.every_steps=0",
        "--set", "eval.max_batches=2", "--set", "checkpoint_every_steps=0",
    )  # fmt: skip
    row = run_measured(cmd, f"train-{run}", work)
    adapter = work / "checkpoints" / "adapters" / run
    row.update(adapter_stats(adapter), steps=step_stats(work / "checkpoints" / "runs" / run))
    row["adapter"] = str(adapter)
    return row


def adapter_stats(adapter: Path) -> dict:
    f = adapter / "adapter_model.safetensors"
    if not f.is_file():
        return {}
    from safetensors import safe_open

    with safe_open(str(f), "pt") as st:
        n = sum(_numel(tuple(st.get_slice(k).get_shape())) for k in st.keys())  # noqa: SIM118 (safe_open is not a dict)
    return {"adapter_params": n, "adapter_mb": round(f.stat().st_size / 1e6, 1)}


def step_stats(run_dir: Path) -> list[dict]:
    f = run_dir / "metrics.csv"
    if not f.is_file():
        return []
    with open(f) as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("train_loss")]
    out, last = [], 0.0
    for r in rows:
        el = float(r["elapsed_s"])
        out.append(
            {"step": int(r["step"]), "s": round(el - last, 1), "tokens_per_s": float(r["tokens_per_s"])}
        )
        last = el
    return out


def eval_row(adapter: Path, data: Path, work: Path, name: str, new_tokens: int) -> dict:
    cmd = twin_cmd("eval", "--adapter", str(adapter), "--data", str(data), "--run", name,
                   "--out-dir", str(work / "checkpoints"), "--max-examples", "2",
                   "--max-new-tokens", str(new_tokens))  # fmt: skip
    return run_measured(cmd, f"eval-{name}", work)


def merge_row(adapter: Path, base: Path, work: Path, name: str) -> dict:
    out = work / "merged" / name
    cmd = twin_cmd("publish", "merge", "--adapter", str(adapter), "--base", str(base), "--out", str(out),
                   "--force")  # fmt: skip
    row = run_measured(cmd, f"merge-{name}", work)
    row["out_gb"] = round(sum(f.stat().st_size for f in out.glob("*.safetensors")) / 1e9, 2)
    shutil.rmtree(out, ignore_errors=True)  # 14 GB: measured, not kept
    return row


def serve_row(adapter: Path, base: Path, work: Path, name: str, port: int = 8797) -> dict:
    """`twin serve` until /healthz answers, one /reply of 4 tokens, then Ctrl-C (SIGINT); RSS of the server."""
    import psutil

    rss = work / f"serve-{name}.rss.json"
    cmd = twin_cmd("serve", "--adapter", str(adapter), "--base", str(base), "--port", str(port))
    row: dict[str, Any] = {"step": f"serve-{name}"}
    t0 = time.perf_counter()
    with open(work / f"serve-{name}.log", "w") as log:
        wrapper = subprocess.Popen([sys.executable, str(BENCH / "baselines" / "rusage.py"), str(rss), "--", *cmd],
                                   stdout=log, stderr=subprocess.STDOUT, env=_env(), cwd=ROOT)  # fmt: skip
        try:
            row["ready_s"] = round(wait_ready(f"http://127.0.0.1:{port}", wrapper) - t0, 1)
            row.update(one_reply(f"http://127.0.0.1:{port}"))
        finally:
            for child in psutil.Process(wrapper.pid).children():
                child.send_signal(signal.SIGINT)  # as Ctrl-C
            row["exit"] = wrapper.wait(timeout=120)
    ru = json.loads(rss.read_text()) if rss.is_file() else {}
    row.update(cpu_s=_cpu(ru), peak_rss_gib=_gib(ru["max_rss_kib"] * 1024) if ru else None)
    print(json.dumps(row), flush=True)
    return row


def one_reply(url: str) -> dict:
    """POST /reply for 4 greedy tokens; its wall time and what the server reports."""
    import httpx

    t1 = time.perf_counter()
    r = httpx.post(url + "/reply", timeout=1800,
                   json={"message": "привет, как дела?", "max_new_tokens": 4, "temperature": 0})  # fmt: skip
    row: dict[str, Any] = {"reply_s": round(time.perf_counter() - t1, 1), "reply_status": r.status_code}
    if r.status_code == 200:
        body = r.json()
        row.update(completion_tokens=body["usage"]["completion_tokens"], tokens_per_s=body["tokens_per_s"],
                   prompt_tokens=body["usage"]["prompt_tokens"])  # fmt: skip
    return row


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 1800) -> float:
    import httpx

    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"twin serve exited with {proc.returncode} before it was ready")
        try:
            if httpx.get(url + "/healthz", timeout=5).status_code == 200:
                return time.perf_counter()
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError("twin serve did not become ready")


def extrapolate(rows: list[dict], key: str, layers_key: str = "layers", to: int = 32) -> dict | None:
    """Linear fit through the 2- and 4-layer figures: per-layer cost and the 32-layer estimate."""
    pts = {r[layers_key]: r[key] for r in rows if r.get(key) is not None}
    if len(pts) < 2:
        return None
    (l1, v1), (l2, v2) = sorted(pts.items())[:2]
    per_layer = (v2 - v1) / (l2 - l1)
    return {"per_layer": round(per_layer, 3), "fixed": round(v1 - per_layer * l1, 3),
            f"at_{to}": round(v1 + per_layer * (to - l1), 2)}  # fmt: skip


def check_memory(need_gib: float) -> None:
    import psutil

    avail = psutil.virtual_memory().available / GiB
    if avail < need_gib:
        raise SystemExit(
            f"bench_7b: {avail:.1f} GiB available, this step needs {need_gib:.0f} GiB; try later"
        )


def small_runs(args: argparse.Namespace, work: Path, data: Path, bases: dict[int, Path]) -> list[dict]:
    rows = []
    for layers in args.layers:
        for precision in args.precision:
            row = train_row(bases[layers], data, work, layers, precision, args.seq, args.steps, args.tag)
            row.update(layers=layers, precision=precision, weight_gib=_gib(2 * bases_params(bases[layers])))
            if row["exit"] == 0:
                name = f"{layers}l-{precision}" + (f"-{args.tag}" if args.tag else "")
                row["eval"] = eval_row(Path(row["adapter"]), data, work, name, args.eval_tokens)
            rows.append(row)
    return rows


def auto_precision(bases: dict[int, Path]) -> dict[str, dict]:
    """What ``--precision auto`` would pick for each base on this machine, and the reason it logs."""
    from twin.model.precision import choose_precision

    picks = {}
    for layers, base in bases.items():
        choice = choose_precision(base)
        picks[str(layers)] = {"precision": choice.precision, "reason": choice.reason, "slow": choice.slow}
        print(json.dumps({"step": f"auto-{layers}l", **picks[str(layers)]}), flush=True)
    return picks


def bases_params(base: Path) -> int:
    return json.loads((base / STAMP).read_text())["parameters"]


def full_runs(work: Path, base: Path, adapter_src: Path, merge: bool = True) -> list[dict]:
    """Serve and merge at 32 layers, with an adapter trained on the 2-layer cut (same qkv shapes).

    The adapter's 2 layers of LoRA weights apply to layers 0-1 of the full model: peft loads it
    with the 32-layer base recorded, so it is re-pointed with ``--base`` and a copied twin.json.
    """
    adapter = work / "adapter-32l"
    shutil.rmtree(adapter, ignore_errors=True)
    shutil.copytree(adapter_src, adapter)
    from twin.adapter_meta import BaseRecord, read_meta
    from twin.model.load import base_fingerprint

    meta = read_meta(adapter)
    record = BaseRecord(
        path=str(base), fingerprint=base_fingerprint(base), model_type=meta.base_model.model_type
    )
    meta.model_copy(update={"base_model": record}).write(adapter)
    weights = 2 * bases_params(base)
    check_memory(weights / GiB + 3)
    rows = [serve_row(adapter, base, work, "32l")]
    if merge:
        check_memory(weights / GiB + 3)
        rows.append(merge_row(adapter, base, work, "32l"))
    for r in rows:
        r.update(layers=32, weight_gib=_gib(weights))
    return rows


def main(argv: list[str] | None = None) -> dict | None:
    p = argparse.ArgumentParser(prog="bench_7b", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="toy width, 2 layers: the whole flow in seconds")
    p.add_argument("--only", choices=["build", "small", "full"], help="run one part only")
    p.add_argument("--layers", type=int, nargs="+", default=[2, 4])
    p.add_argument("--precision", nargs="+", default=["bf16-true", "32-true"])
    p.add_argument("--seq", type=int, default=256, help="data.max_seq_length")
    p.add_argument("--steps", type=int, default=2, help="twin train --max-steps")
    p.add_argument("--tag", default="", help="suffix of the run names: a repeated round measures afresh")
    p.add_argument("--eval-tokens", type=int, default=8, help="twin eval --max-new-tokens (its default: 48)")
    p.add_argument("--skip-full", action="store_true", help="no 32-layer serve/merge")
    p.add_argument("--skip-merge", action="store_true", help="32 layers: serve only, no merge")
    args = p.parse_args(argv)
    overrides = QUICK if args.quick else None
    work = OUT / ("bench_7b_quick" if args.quick else "bench_7b")
    work.mkdir(parents=True, exist_ok=True)
    data = prepare_data(work)
    bases = build_bases(args, work, data, overrides)
    result: dict[str, Any] = {
        "bases": {str(k): json.loads((v / STAMP).read_text()) for k, v in bases.items()},
        "auto_precision": auto_precision(bases),
    }
    if args.only in (None, "small"):
        key = "small" + (f"-{args.tag}" if args.tag else "")  # a tagged round keeps the others' rows
        result[key] = small_runs(args, work, data, bases)
        result["extrapolated" + key[5:]] = extrapolations(result[key])
    if args.only in (None, "full") and not args.skip_full and not args.quick:
        run = f"{min(args.layers)}l-bf16-true" + (f"-{args.tag}" if args.tag else "")
        result["full"] = full_runs(
            work, bases[32], work / "checkpoints" / "adapters" / run, not args.skip_merge
        )
    out = OUT / ("bench_7b_quick.json" if args.quick else "bench_7b.json")
    before = json.loads(out.read_text()) if out.is_file() else {}  # one part at a time adds to it
    out.write_text(
        json.dumps({**before, **result, "bases": {**before.get("bases", {}), **result["bases"]}}, indent=2)
    )
    print(json.dumps({k: v for k, v in result.items() if k.startswith("extrapolated")}, indent=2))
    return result


def build_bases(args: argparse.Namespace, work: Path, data: Path, overrides: dict | None) -> dict[int, Path]:
    from twin.model.tiny import texts_from_dir

    vocab = (overrides or FALCON_7B).get("vocab_size", FALCON_7B["vocab_size"])
    tok_dir = work / "tokenizer"
    if not (tok_dir / "tokenizer.json").is_file():
        build_tokenizer(tok_dir, texts_from_dir(data), vocab)
    suffix = "-quick" if args.quick else ""
    wanted = sorted({*args.layers, *(() if args.skip_full or args.quick else (32,))})
    bases = {}
    for layers in wanted:
        name = "falcon-7b-random" if layers == 32 else f"falcon-7b-random-{layers}l"
        t0 = time.perf_counter()
        info = build_base(OUT / (name + suffix), layers, tok_dir, overrides=overrides)
        wall = round(time.perf_counter() - t0, 1)
        rss = _gib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # this process, so far
        print(json.dumps({"step": f"build-{layers}l", **info, "wall_s": wall, "bench_peak_rss_gib": rss}))
        bases[layers] = OUT / (name + suffix)
    return bases


def extrapolations(rows: list[dict]) -> dict:
    out = {}
    for precision in {r["precision"] for r in rows}:
        mine = [dict(r, step_s=_median_step(r)) for r in rows if r["precision"] == precision]
        out[precision] = {
            "step_s": extrapolate(mine, "step_s"),
            "train_peak_rss_gib": extrapolate(mine, "peak_rss_gib"),
        }
    return out


def _median_step(row: dict) -> float | None:
    steps = sorted(s["s"] for s in row.get("steps", []))
    return steps[len(steps) // 2] if steps else None


if __name__ == "__main__":
    main(sys.argv[1:])
