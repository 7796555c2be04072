"""Training: twin train vs transformers Trainer + peft vs litgpt finetune_lora, side by side.

    .venv/bin/python -m bench.compare_train            # both models, 3 rounds x 49 steps, writes RESULTS.md
    .venv/bin/python -m bench.compare_train --quick    # smoke: 1 round x 2 steps, nothing written
    .venv/bin/python -m bench.compare_train --models llama --tools twin,trainer+best

Two tiny bases built by ``twin model tiny``'s builder: Falcon (Falcon-7B's architecture, prompts
by ``plain-v1``) and Llama (Llama 3's architecture and chat template, prompts by ``chat-v1``). Per
model, the same data (a generated export through twin's import + prepare, each example's context
cut once by twin's rule so no tool has to cut prompts its own way: see ``fit_data``), the same
prompt text and token ids (checked: the Trainer's tokenization and litgpt's ``SFTDataset`` must
give twin's ids and reply masks), the same LoRA targets (an explicit list, not any tool's default),
sequence length, micro-batch, gradient accumulation, fp32, steps, AdamW and warmup+cosine schedule
— read from ``pipelines/tiny.yaml``. litgpt gets each base through its own converter, checked
against the Hugging Face logits.

Each peer runs with its defaults and at its best for this data on CPU (``+best``: the settings a
speed-minded user sets, same recipe; see ``PEER_BEST``). The tools run alternately (twin, Trainer,
litgpt, ..., then reversed) so machine noise hits all of them; each run is its own process (peak
RSS is that run's alone).

Figures per tool (medians over rounds): real (non-padding) tokens/s in the training loop, the
process wall time (start-up, tokenization, model load and saving included), peak RSS, and the val
loss of the trained weights by one evaluator (``bench/baselines/evaluate.py``), so speed is never
bought with quality. What each tool does differently by design is listed in bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.baselines import common

log = logging.getLogger("bench.compare_train")
TOOLS = ("twin", "trainer", "litgpt")
PEERS = TOOLS[1:]
# "+best": each peer's speed settings for this data on CPU (same recipe), the strongest found in
# bench/README.md#training (what was tried and why these). "+passive": OMP_WAIT_POLICY=PASSIVE, the
# setting twin's CLI makes for itself, separating what twin gains from that variable from the rest.
PEER_BEST = {
    "trainer": ("--sampling", "group_by_length"),
    "litgpt": ("--data.num_workers", "0"),
}
# twin's own thread policy forced either way ("+passive", "+active"): twin picks one by the load.
VARIANTS = tuple(f"{t}+{v}" for t in PEERS for v in ("best", "passive", "best+passive")) + (
    "twin+passive",
    "twin+active",
    "twin+cached",  # twin's tokenization cache kept from an earlier run (plain "twin": always cold)
    "twin+t1",  # one torch thread instead of one per core
    "twin+ddp2",  # two processes of one thread each (data parallel over the 2 cores) instead of 2 threads
)
DEFAULT_TOOLS = ("twin", "trainer", "trainer+best", "trainer+best+passive", "litgpt", "litgpt+best",
                 "litgpt+best+passive")  # fmt: skip
# Environment twin's own CLI sets for itself: never leak it from this process into the baselines.
_TWIN_ONLY_ENV = ("OMP_WAIT_POLICY", "TOKENIZERS_PARALLELISM")


@dataclass(frozen=True)
class Model:
    """One tiny base of the comparison: its family, prompt template and LoRA targets for all tools."""

    arch: str
    template: str
    targets: tuple[str, ...]
    lit_name: str  # litgpt's config name: it selects litgpt's weight map (see litgpt_driver)
    lit_lora: tuple[str, ...]  # litgpt's --lora_query/key/value switches for the same targets


MODELS = {
    # Falcon's fused query_key_value, all of it: litgpt's q, k and v switches together.
    "falcon": Model("falcon", "plain-v1", ("query_key_value",), "falcon-7b-twin-tiny", ("query", "key", "value")),
    "llama": Model("llama", "chat-v1", ("q_proj", "v_proj"), "Llama-3-twin-tiny", ("query", "value")),
}  # fmt: skip


def settings(config: Path, steps: int, model: Model) -> dict:
    """The shared recipe, from the twin config every tool is held to."""
    from twin.config import load_config
    from twin.train.config import TrainConfig
    from twin.train.schedules import warmup_steps

    cfg = load_config(TrainConfig, config, None)
    if cfg.schedule.name != "cosine" or cfg.precision not in ("auto", "32-true"):
        raise SystemExit(f"{config}: the comparison mirrors cosine + 32-true only (litgpt's schedule, CPU)")
    return {
        "steps": steps,
        "micro_batch": cfg.micro_batch_size,
        "batch": cfg.batch_size,
        "max_seq_length": cfg.data.max_seq_length,
        "lr": cfg.optim.lr,
        "weight_decay": cfg.optim.weight_decay,
        "max_grad_norm": cfg.optim.max_grad_norm,
        "warmup_ratio": cfg.schedule.warmup_ratio,
        "warmup_steps": max(1, warmup_steps(steps, cfg.schedule.warmup_ratio)),
        "lora_r": cfg.lora.r,
        "lora_alpha": cfg.lora.alpha,
        "lora_dropout": cfg.lora.dropout,
        "targets": list(model.targets),
        "template": model.template,
        "seed": cfg.seed,
        "precision": "32-true",  # every tool, twin included (--set below)
    }


# --------------------------------------------------------------------------------------------
# Setup: data, base model, the examples every tool trains on, litgpt checkpoint


def make_data(work: Path, n_messages: int, seed: int = 0) -> tuple[Path, str]:
    """train/val.jsonl from a generated export through the real import + prepare."""
    out = work / "processed"
    from bench.gen_export import generate_export
    from twin.prepare.config import PrepareConfig
    from twin.prepare.pipeline import run_prepare
    from twin.sources.telegram_desktop import import_desktop

    export = work / "export" / "result.json"
    export.parent.mkdir(parents=True, exist_ok=True)
    generate_export(export, n_messages, seed)
    import_desktop(export, out_root=str(work / "raw"))
    run_prepare(PrepareConfig(raw=str(work / "raw"), out=str(out)))
    return out, f"generated export of {n_messages:,} messages -> twin import -> twin prepare"


def make_base(work: Path, data: Path, pretrain_steps: int, arch: str) -> Path:
    from twin.model.tiny import build_tiny, texts_from_dir

    return build_tiny(work / "base", texts_from_dir(data), arch=arch, pretrain_steps=pretrain_steps, seed=0)


def fit_data(data: Path, out: Path, tokenizer, template: str, max_len: int) -> dict[str, int]:
    """Copy of ``data`` whose prompts all fit ``max_len``: context cut by twin's rule, once, for all.

    twin drops a too-long prompt's oldest turns (as serving does); a tutorial-style baseline cuts the
    sequence's end instead. Cutting the context here, where every tool reads its examples, makes
    the prompt/completion pairs identical for all (replies still run to ``max_len``, cut at the end
    by every tool alike). Examples whose prompt cannot fit are left out, as twin leaves them out.
    """
    from twin.examples import read_examples
    from twin.prompt import build_training_pair

    def prompt_len(row: dict) -> int:
        prompt, _ = build_training_pair(row, template=template, tokenizer=tokenizer)
        return len(tokenizer(prompt, add_special_tokens=False)["input_ids"])

    out.mkdir(parents=True, exist_ok=True)
    counts = {"examples": 0, "context_cut": 0, "left_out": 0}
    for split in ("train", "val"):
        kept = []
        for row in read_examples(data / f"{split}.jsonl"):
            counts["examples"] += 1
            cut = dict(row)
            while prompt_len(cut) + 1 > max_len and cut["context"]:
                cut["context"] = cut["context"][1:]
            if prompt_len(cut) + 1 > max_len:
                counts["left_out"] += 1
                continue
            counts["context_cut"] += cut["context"] != row["context"]
            kept.append(json.dumps(cut, ensure_ascii=False))
        (out / f"{split}.jsonl").write_text("\n".join(kept) + "\n", encoding="utf-8")
    if (data / "stats.json").is_file():  # prepare's settings, which twin copies into twin.json
        shutil.copy2(data / "stats.json", out / "stats.json")
    return counts


def twin_encoding(data: Path, tokenizer, s: dict):
    """twin's own encoding of the fitted train split (ids + prompt lengths): the reference."""
    from twin.examples import encode_examples, read_examples

    enc = encode_examples(read_examples(data / "train.jsonl"), tokenizer, s["template"], s["max_seq_length"])
    if enc.stats["context_trimmed"] or enc.stats["dropped_prompt_too_long"]:
        raise SystemExit(f"fit_data left prompts twin would cut: {enc.stats}")
    return enc


def check_trainer_pairs(data: Path, tokenizer, s: dict, enc) -> str:
    """The Trainer baseline's token ids and reply masks must be twin's, example by example."""
    from bench.baselines.hf_trainer import IGNORE, tokenize_examples

    rows = [json.loads(x) for x in (data / "train.jsonl").open(encoding="utf-8") if x.strip()]
    mine = tokenize_examples(rows, tokenizer, s["max_seq_length"], s["template"])
    for i, ex in enumerate(mine):
        masked = sum(1 for x in ex["labels"] if x == IGNORE)
        if ex["input_ids"] != enc.ids[i] or masked != enc.prompt_lens[i]:
            raise SystemExit(f"Trainer baseline example {i}: token ids or prompt mask differ from twin's")
    return f"Trainer token ids and reply masks = twin's for all {len(mine)} train examples"


def bench_python() -> Path | None:
    py = common.BENCH_VENV / "bin" / "python"
    return py if py.exists() else None


def _driver(*args: str) -> list[str]:
    return [str(bench_python()), str(Path(__file__).parent / "baselines" / "litgpt_driver.py"), *args]


def setup_litgpt(work: Path, base: Path, data: Path, model: Model, s: dict, enc) -> tuple[Path | None, str]:
    """Convert the base with litgpt's converter, verify logits and tokens, write litgpt's JSON data."""
    if bench_python() is None:
        return None, "not run: .venv-bench missing (run `python -m bench setup`)"
    ckpt = work / model.lit_name
    common.run_measured(_driver("convert", "--hf", str(base), "--out", str(ckpt)), log=work / "convert.log")
    diff = _litgpt_logit_diff(work, base, ckpt)
    if diff > 1e-3:
        return None, f"not run: litgpt's conversion differs from the HF model (max |logit diff| {diff:.2g})"
    from transformers import AutoTokenizer

    from twin.prompt import build_training_pair

    tokenizer = AutoTokenizer.from_pretrained(base)
    lit_data = work / "litgpt-data"
    lit_data.mkdir(exist_ok=True)
    for split in ("train", "val"):
        rows = [json.loads(x) for x in (data / f"{split}.jsonl").open(encoding="utf-8") if x.strip()]
        pairs = [build_training_pair(r, template=s["template"], tokenizer=tokenizer) for r in rows]
        # litgpt appends the end token itself, and drops it when the text already ends with it
        # (Tokenizer.encode(eos=True) on "...<|eot_id|>"): the chat template's marker goes.
        recs = [{"instruction": p, "output": c.removesuffix(tokenizer.eos_token)} for p, c in pairs]
        (lit_data / f"{split}.json").write_text(json.dumps(recs, ensure_ascii=False), encoding="utf-8")
    mismatch = _litgpt_token_mismatch(work, ckpt, lit_data / "train.json", s, enc)
    if mismatch:
        return None, f"not run: litgpt tokenizes the examples differently from twin ({mismatch})"
    return ckpt, (
        f"converted by litgpt's convert_hf_checkpoint, max |logit diff| vs HF {diff:.1e}; "
        f"its SFTDataset token ids and reply masks = twin's for all {len(enc)} train examples"
    )


def _litgpt_logit_diff(work: Path, base: Path, ckpt: Path) -> float:
    """The conversion must be exact, or the comparison is of two different models."""
    import torch
    from transformers import AutoModelForCausalLM

    ids = torch.randint(0, 200, (2, 24), generator=torch.Generator().manual_seed(0))
    torch.save(ids, work / "ids.pt")
    ref = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
    with torch.no_grad():
        want = ref(ids).logits
    cmd = _driver("logits", "--ckpt", str(ckpt), "--ids", str(work / "ids.pt"), "--out", str(work / "lit.pt"))
    common.run_measured(cmd, log=work / "logits.log")
    return float((torch.load(work / "lit.pt", weights_only=True) - want).abs().max())


def _litgpt_token_mismatch(work: Path, ckpt: Path, train_json: Path, s: dict, enc) -> str:
    """'' when litgpt's SFTDataset gives twin's token ids and prompt masks, else the first difference."""
    out = work / "lit-tokens.json"
    cmd = _driver("tokens", "--ckpt", str(ckpt), "--json", str(train_json),
                  "--max-seq-length", str(s["max_seq_length"]), "--out", str(out))  # fmt: skip
    common.run_measured(cmd, log=work / "tokens.log")
    lit = json.loads(out.read_text(encoding="utf-8"))
    if len(lit) != len(enc):
        return f"{len(lit)} examples vs {len(enc)}"
    for i, ex in enumerate(lit):
        if ex["ids"] != enc.ids[i] or ex["prompt_len"] != enc.prompt_lens[i]:
            return f"example {i}: {len(ex['ids'])} ids, prompt {ex['prompt_len']} vs {len(enc.ids[i])}, {enc.prompt_lens[i]}"
    return ""


# --------------------------------------------------------------------------------------------
# One run per tool


def twin_command(s: dict, base: Path, data: Path, out: Path, config: Path) -> list[str]:
    return [
        str(Path(sys.executable).parent / "twin"), "train", "--config", str(config), "--data", str(data),
        "--base", str(base), "--run", "cmp", "--max-steps", str(s["steps"]),
        "--set", f"out_dir={out}", "--set", "eval.every_steps=0", "--set", "checkpoint_every_steps=0",
        "--set", f"precision={s['precision']}", "--set", f"data.template={s['template']}",
        "--set", f"lora.target_modules=[{','.join(s['targets'])}]",
        "--set", "lora.train_embeddings=false",  # the peers train the LoRA only: the same parameters
        "--set", "data.reply_tokens=1",  # prompts up to max_seq_length - 1, as the peers see them
    ]  # fmt: skip


def trainer_command(s: dict, base: Path, data: Path, out: Path, extra: tuple[str, ...] = ()) -> list[str]:
    return [
        sys.executable, "-m", "bench.baselines.hf_trainer", "--base", str(base), "--data", str(data),
        "--out", str(out), "--steps", str(s["steps"]), "--micro-batch", str(s["micro_batch"]),
        "--batch", str(s["batch"]), "--max-seq-length", str(s["max_seq_length"]), "--lr", str(s["lr"]),
        "--weight-decay", str(s["weight_decay"]), "--max-grad-norm", str(s["max_grad_norm"] or 0),
        "--warmup-ratio", str(s["warmup_ratio"]), "--lora-r", str(s["lora_r"]),
        "--lora-alpha", str(s["lora_alpha"]), "--lora-dropout", str(s["lora_dropout"]), "--seed", str(s["seed"]),
        "--target-modules", ",".join(s["targets"]), "--template", s["template"], *extra,
    ]  # fmt: skip


def litgpt_command(
    s: dict, ckpt: Path, lit_data: Path, out: Path, lora: tuple[str, ...], extra: tuple[str, ...] = ()
) -> list[str]:
    """``litgpt finetune_lora`` with the shared recipe (run through the driver for the prompt style)."""
    optimizer = {
        "class_path": "torch.optim.AdamW",
        "init_args": {"lr": s["lr"], "weight_decay": s["weight_decay"]},
    }
    switches = [
        x for part in ("query", "key", "value") for x in (f"--lora_{part}", str(part in lora).lower())
    ]
    return _driver(
        "cli", "finetune_lora", str(ckpt), "--out_dir", str(out), "--precision", s["precision"], "--devices", "1",
        "--lora_r", str(s["lora_r"]), "--lora_alpha", str(int(s["lora_alpha"])),
        "--lora_dropout", str(s["lora_dropout"]), *switches,
        "--data", "JSON", "--data.json_path", str(lit_data), "--data.prompt_style", "default",
        "--data.mask_prompt", "true",
        "--train.global_batch_size", str(s["batch"]), "--train.micro_batch_size", str(s["micro_batch"]),
        "--train.max_steps", str(s["steps"]), "--train.epochs", "1000",
        "--train.max_seq_length", str(s["max_seq_length"]), "--train.lr_warmup_steps", str(s["warmup_steps"]),
        "--train.save_interval", "1000000", "--train.log_interval", "1",
        "--eval.interval", "1000000", "--eval.initial_validation", "false", "--eval.final_validation", "false",
        "--optimizer", json.dumps(optimizer), "--logger_name", "csv", "--seed", str(s["seed"]), *extra,
    )  # fmt: skip


def _twin_result(out: Path) -> dict:
    m = json.loads((out / "adapters" / "cmp" / "twin.json").read_text(encoding="utf-8"))["metrics"]
    first = re.search(r"first optimizer step at ([0-9.]+) s", (out / "run.log").read_text(errors="replace"))
    return {
        "first_step_s": float(first.group(1)) if first else None,
        "real_tokens": m["tokens"],
        "loop_seconds": m["tokens"] / m["tokens_per_s"],
        "tokens_per_s": m["tokens_per_s"],
        "train_loss": m["train_loss"],
        "adapter": str(out / "adapters" / "cmp"),
    }


def _trainer_result(out: Path) -> dict:
    res = json.loads((out / "result.json").read_text(encoding="utf-8"))
    return {**res, "adapter": str(out / "adapter")}


def _litgpt_result(out: Path) -> dict:
    import csv

    rows = list(csv.DictReader((next((out / "logs").rglob("metrics.csv"))).open()))
    timed = [r for r in rows if r.get("time")]
    logged = [r for r in rows if r.get("tokens")]
    # `time` is seconds since the loop started (Fabric ThroughputMonitor), logged every iteration;
    # `tokens` counts prompt + reply tokens without padding.
    loop = float(timed[-1]["time"])
    tokens = int(float(logged[-1]["tokens"]))
    return {
        "real_tokens": tokens,
        "loop_seconds": loop,
        "tokens_per_s": tokens / loop,
        "train_loss": float(logged[-1]["loss"]),
        "lit_dir": str(out / "final"),
    }


def tool_command(name: str, ctx: dict, run_dir: Path) -> list[str]:
    tool, *variants = name.split("+")
    s = ctx["settings"]
    extra = PEER_BEST[tool] if "best" in variants else ()
    if tool == "twin":
        return (
            twin_command(s, ctx["base"], ctx["data"], run_dir, ctx["config"])
            + (["--set", "num_threads=1"] if "t1" in variants or "ddp2" in variants else [])
            + (["--devices", "2", "--strategy", "ddp"] if "ddp2" in variants else [])
        )
    if tool == "trainer":
        return trainer_command(s, ctx["base"], ctx["data"], run_dir, extra)
    return litgpt_command(s, ctx["lit_ckpt"], ctx["lit_data"], run_dir, ctx["model"].lit_lora, extra)


def run_tool(name: str, ctx: dict, run_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _TWIN_ONLY_ENV}
    env["PYTHONPATH"] = str(common.ROOT)
    tool, *variants = name.split("+")
    if "passive" in variants:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    elif "active" in variants:
        env["OMP_WAIT_POLICY"] = "ACTIVE"
    cmd = tool_command(name, ctx, run_dir)
    if tool == "twin" and "cached" not in variants:  # each twin run tokenizes, as the peers do
        from twin.train.data import CACHE_DIR

        shutil.rmtree(ctx["data"] / CACHE_DIR, ignore_errors=True)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    meas = common.run_measured(cmd, log=run_dir / "run.log", env=env, cwd=common.ROOT)
    res = {"twin": _twin_result, "trainer": _trainer_result, "litgpt": _litgpt_result}[tool](run_dir)
    return {**res, **meas, "tool": tool, "name": name}


def evaluate(res: dict, ctx: dict, run_dir: Path) -> float:
    s = ctx["settings"]
    cmd = [sys.executable, "-m", "bench.baselines.evaluate", "--base", str(ctx["base"]),
           "--val", str(ctx["data"] / "val.jsonl"), "--max-seq-length", str(s["max_seq_length"]),
           "--template", s["template"]]  # fmt: skip
    if res["tool"] == "litgpt":
        hf = run_dir / "hf"
        common.run_measured(
            _driver("to-hf", "--lit", res["lit_dir"], "--out", str(hf)), log=run_dir / "to-hf.log"
        )
        cmd += ["--state", str(hf / "model.pth")]
    else:
        cmd += ["--adapter", res["adapter"]]
    common.run_measured(cmd, log=run_dir / "eval.log", cwd=common.ROOT)
    last = (run_dir / "eval.log").read_text().strip().splitlines()[-1]
    return float(json.loads(last)["val_loss"])


# --------------------------------------------------------------------------------------------
# Profile, summary, report


def profile(ctx: dict, work: Path, tools: list[str]) -> dict[str, dict]:
    """One extra run of twin under py-spy (and of the Trainer with --profile-all): CPU share per phase."""
    from bench.baselines import profile_train

    py_spy = common.BENCH_VENV / "bin" / "py-spy"
    if not py_spy.exists():
        log.warning("py-spy not in .venv-bench: no profile (python -m bench setup --force installs it)")
        return {}
    out: dict[str, dict] = {}
    for tool in [t for t in ("twin", "trainer") if t in tools]:
        if tool == "trainer" and not ctx.get("profile_all"):
            continue
        run_dir = work / "profile" / tool
        shutil.rmtree(run_dir, ignore_errors=True)
        run_dir.mkdir(parents=True)
        raw = profile_train.record(tool_command(tool, ctx, run_dir), run_dir / "stacks.txt", py_spy)
        out[tool] = {"phases": profile_train.fold(raw), "top": profile_train.top_frames(raw, 12)}
    return out


def profile_markdown(prof: dict[str, dict]) -> str:
    phases = list(dict.fromkeys(p for r in prof.values() for p in r["phases"]))
    tools = list(prof)
    lines = [
        "",
        "Where the time goes (one extra run each under py-spy, share of busy CPU samples of the whole process):",
        "",
        "| phase | " + " | ".join(tools) + " |",
        "|---|" + "---:|" * len(tools),
    ]
    for ph in phases:
        lines.append(
            f"| {ph} | " + " | ".join(f"{100 * prof[t]['phases'].get(ph, 0):.1f}%" for t in tools) + " |"
        )
    return "\n".join(lines)


def summarize(runs: dict[str, list[dict]]) -> dict[str, dict]:
    """Medians per tool, and twin's ratio to it: the median of per-round ratios (same load)."""
    keys = ("tokens_per_s", "real_tokens", "loop_seconds", "wall_s", "max_rss_mb", "tree_rss_mb", "val_loss",
            "train_loss", "first_step_s")  # fmt: skip
    twin = [r["tokens_per_s"] for r in runs.get("twin", [])]
    out = {}
    for t, rs in runs.items():
        if not rs:
            continue
        per_round = [tw / r["tokens_per_s"] for tw, r in zip(twin, rs, strict=False) if r["tokens_per_s"]]
        out[t] = {k: common.median([r.get(k) for r in rs]) for k in keys} | {"runs": len(rs)}
        out[t]["twin_ratio"] = common.median(per_round) if t != "twin" else None
    return out


def _twin_ratio(summary: dict[str, dict], name: str) -> float | None:
    row = summary[name]
    if row.get("twin_ratio") is not None:
        return row["twin_ratio"]
    return common.ratio(summary.get("twin", {}).get("tokens_per_s"), row["tokens_per_s"])


def strongest(summary: dict[str, dict]) -> dict[str, tuple[str, float]]:
    """Per peer, its fastest configuration in this run: {peer: (row name, tokens/s)}."""
    best: dict[str, tuple[str, float]] = {}
    for name, row in summary.items():
        peer = name.partition("+")[0]
        if peer != "twin" and row["tokens_per_s"] and row["tokens_per_s"] > best.get(peer, ("", 0.0))[1]:
            best[peer] = (name, row["tokens_per_s"])
    return best


def ratio_line(label: str, summary: dict[str, dict]) -> str:
    """One line: twin's tokens/s ÷ each peer's strongest configuration, strongest peer first."""
    tw = summary.get("twin", {}).get("tokens_per_s")
    best = sorted(strongest(summary).items(), key=lambda kv: -kv[1][1])
    if not tw or not best:
        return f"- **{label}**: no ratio (twin or every peer missing from this run)"
    parts = [f"{common.fmt(_twin_ratio(summary, name), 2)}x {peer} at its best (`{name}`, {common.fmt(tps, 0)} tok/s)"
             for peer, (name, tps) in best]  # fmt: skip
    return f"- **{label}: twin ({common.fmt(tw, 0)} tok/s) ÷ strongest peer = {parts[0]}**" + "".join(
        f"; {p}" for p in parts[1:]
    )


def table(summary: dict[str, dict]) -> list[str]:
    lines = [
        "| tool | real tokens/s (loop) | twin ÷ tool (median of per-round ratios) | real tokens trained | process wall s | first step at s | peak RSS MiB (largest process / tree) | val loss (same evaluator) | last train loss |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for tool, row in summary.items():
        r = _twin_ratio(summary, tool)
        lines.append(
            f"| {tool} | {common.fmt(row['tokens_per_s'], 0)} | {common.fmt(r, 2) + 'x' if r is not None and tool != 'twin' else '—'} | "
            f"{common.fmt(row['real_tokens'], 0)} | "
            f"{common.fmt(row['wall_s'])} | {common.fmt(row.get('first_step_s'))} | {common.fmt(row['max_rss_mb'], 0)} / {common.fmt(row['tree_rss_mb'], 0)} | "
            f"{common.fmt(row['val_loss'], 4)} | {common.fmt(row['train_loss'], 4)} |"
        )
    return lines


def model_markdown(m: dict) -> list[str]:
    s, meta = m["settings"], m["meta"]
    fit = meta["fit"]
    return [
        "",
        f"#### Tiny {meta['arch'].capitalize()} ({meta['params']:,} params, pretrained {meta['pretrain_steps']} "
        f"steps), `{s['template']}`, LoRA on {', '.join(s['targets'])}",
        "",
        f"{meta['train_examples']} train / {meta['val_examples']} val examples; context cut to fit "
        f"{s['max_seq_length']} tokens (twin's rule, once for all tools) in {fit['context_cut']} of "
        f"{fit['examples']}, {fit['left_out']} left out. {meta['pairs']}. litgpt: {meta['litgpt']}.",
        "",
        *table(m["summary"]),
    ] + ([profile_markdown(m["profile"])] if m["profile"] else [])


def markdown(models: dict[str, dict], meta: dict) -> str:
    s = next(iter(models.values()))["settings"]
    best = "; ".join(f"`{p}+best` = `{' '.join(PEER_BEST[p])}`" for p in PEERS)
    lines = [
        "### Training: twin train vs Trainer + peft vs litgpt finetune_lora",
        "",
        f"`{meta['command']}` — {meta['date']}, {meta['machine']}; {meta['load']}.",
        f"Data: {meta['data']}. Each tool {s['steps']} optimizer steps x {s['batch']} examples (micro-batch "
        f"{s['micro_batch']}, accumulation {s['batch'] // s['micro_batch']}), max length {s['max_seq_length']}, "
        f"{s['precision']}, LoRA r={s['lora_r']} alpha={s['lora_alpha']:g}, AdamW lr {s['lr']:g}, "
        f"warmup {s['warmup_steps']} + cosine. Alternating rounds: {meta['rounds']}; medians shown.",
        f"Peers at their defaults and at their best for this data on CPU (same recipe, settings only): {best} "
        "(what else was tried: bench/README.md#training).",
        "",
        *(ratio_line(f"Tiny {arch.capitalize()}", m["summary"]) for arch, m in models.items()),
    ]
    for m in models.values():
        lines += model_markdown(m)
    lines.append(
        "\nReal tokens = prompt + reply + end token, padding excluded; loop = the training loop only "
        "(each tool's own clock: twin's metrics, a Trainer callback, litgpt's ThroughputMonitor `time`). "
        "Differences by design (not settings): bench/README.md#training."
    )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The steps of a run


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.compare_train", description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="smoke run: 1 round x 2 steps, tiny data, no RESULTS.md"
    )
    ap.add_argument("--steps", type=int, help="optimizer steps (default: one Trainer megabatch, ~49)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    ap.add_argument("--messages", type=int, default=20_000, help="size of the generated export")
    ap.add_argument("--pretrain-steps", type=int, default=40, help="brief pretraining of the tiny bases")
    ap.add_argument(
        "--tools",
        help=f"comma-separated, from {', '.join(TOOLS + VARIANTS)} "
        f"(default: {','.join(DEFAULT_TOOLS)}; --quick: twin,trainer,litgpt)",
    )
    ap.add_argument("--config", type=Path, default=common.ROOT / "pipelines" / "tiny.yaml")
    ap.add_argument("--data", type=Path, help="use this prepare output instead of generating one")
    ap.add_argument("--work", type=Path, help="keep work files here (default: a temp dir, removed)")
    ap.add_argument("--no-eval", action="store_true", help="skip the common val-loss evaluation")
    ap.add_argument("--profile-all", action="store_true", help="profile the Trainer run too")
    ap.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="profile twin (and the Trainer) with py-spy (default: yes unless --quick)",
    )
    ap.add_argument(
        "--write",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="update bench/RESULTS.md (default: yes unless --quick)",
    )
    ap.add_argument("--json", type=Path, default=common.ROOT / "bench" / "out" / "compare_train.json")
    a = ap.parse_args(argv)  # fmt: skip
    if a.quick:
        a.steps, a.rounds, a.messages, a.pretrain_steps = 2, 1, 2_000, 0
        a.no_eval = True
    a.write = (not a.quick) if a.write is None else a.write
    a.profile = (not a.quick) if a.profile is None else a.profile
    a.tools = [t for t in (a.tools or ",".join(TOOLS if a.quick else DEFAULT_TOOLS)).split(",") if t]
    a.models = [m for m in a.models.split(",") if m]
    bad = set(a.tools) - set(TOOLS + VARIANTS)
    if bad:
        raise SystemExit(f"--tools: unknown {sorted(bad)}; choose from {', '.join(TOOLS + VARIANTS)}")
    if set(a.models) - set(MODELS) or not a.models:
        raise SystemExit(f"--models: choose from {', '.join(MODELS)}")
    return a


def megabatch_steps(n_train: int, batch: int) -> int:
    """Optimizer steps in one of the Trainer's length-grouped megabatches (``get_length_grouped_indices``).

    ``group_by_length`` sorts each megabatch (a random sample of ``mult`` x ``batch`` examples)
    longest first, so a run shorter than one megabatch trains on the longest examples of it and
    flatters tokens/s; a whole megabatch is an unbiased sample again, like twin's and litgpt's.
    """
    return max(1, min(n_train // (batch * 4), 50))


def prepare_model(model: Model, a: argparse.Namespace, work: Path, data: Path) -> tuple[dict, list[str]]:
    """Base, fitted examples (checked identical across tools), litgpt checkpoint: (ctx, tools to run)."""
    from transformers import AutoTokenizer

    s = settings(a.config, a.steps or 1, model)
    base = make_base(work, data, a.pretrain_steps, model.arch)
    tokenizer = AutoTokenizer.from_pretrained(base)
    fitted = work / "data"
    fit = fit_data(data, fitted, tokenizer, s["template"], s["max_seq_length"])
    if a.steps is None:
        n_train = sum(1 for x in (fitted / "train.jsonl").open() if x.strip())
        s = settings(a.config, megabatch_steps(n_train, s["batch"]), model)
    enc = twin_encoding(fitted, tokenizer, s)
    ctx = {"model": model, "base": base, "data": fitted, "config": a.config, "settings": s,
           "profile_all": a.profile_all, "fit": fit, "pairs": check_trainer_pairs(fitted, tokenizer, s, enc),
           "litgpt": "not requested"}  # fmt: skip
    tools = list(a.tools)
    if any(t.startswith("litgpt") for t in tools):
        ckpt, ctx["litgpt"] = setup_litgpt(work, base, fitted, model, s, enc)
        if ckpt is None:
            tools = [t for t in tools if not t.startswith("litgpt")]
            log.warning("litgpt on %s: %s", model.arch, ctx["litgpt"])
        ctx.update(lit_ckpt=ckpt, lit_data=work / "litgpt-data")
    return ctx, tools


def run_rounds(ctx: dict, tools: list[str], a: argparse.Namespace, work: Path) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {t: [] for t in tools}
    for rnd in range(a.rounds):
        order = tools if rnd % 2 == 0 else tools[::-1]  # A B C, C B A, ...: no tool always first
        for tool in order:
            run_dir = work / "runs" / f"{tool}-{rnd}"
            res = run_tool(tool, ctx, run_dir)
            # Same seed, same data, same steps: one evaluation per tool (round 1) is enough.
            if not a.no_eval and rnd == 0:
                res["val_loss"] = evaluate(res, ctx, run_dir)
            runs[tool].append(res)
            log.info(
                "%s round %d %-15s %8.0f tok/s  wall %5.1fs  rss %4.0f MiB  val %s", ctx["model"].arch,
                rnd + 1, tool, res["tokens_per_s"], res["wall_s"], res["max_rss_mb"], res.get("val_loss"),
            )  # fmt: skip
    return runs


def compare_model(model: Model, a: argparse.Namespace, work: Path, data: Path) -> dict:
    """Everything for one tiny base: setup, alternating rounds, summary, profile."""
    ctx, tools = prepare_model(model, a, work, data)
    runs = run_rounds(ctx, tools, a, work)
    prof = profile(ctx, work, tools) if a.profile else {}
    tiny = json.loads((ctx["base"] / "tiny.json").read_text())
    meta = {
        "arch": model.arch,
        "params": tiny["parameters"],
        "pretrain_steps": a.pretrain_steps,
        "train_examples": sum(1 for x in (ctx["data"] / "train.jsonl").open() if x.strip()),
        "val_examples": sum(1 for x in (ctx["data"] / "val.jsonl").open() if x.strip()),
        "fit": ctx["fit"],
        "pairs": ctx["pairs"],
        "litgpt": ctx["litgpt"],
    }
    summary = summarize(runs)
    return {"settings": ctx["settings"], "meta": meta, "summary": summary, "runs": runs, "profile": prof}


def load_note(start: tuple[float, ...], end: tuple[float, ...]) -> str:
    return (
        f"1-minute load average {start[0]:.1f} at the start, {end[0]:.1f} at the end "
        f"({os.cpu_count()} cores, shared with other jobs: absolute figures are noisy, ratios are per round)"
    )


def main(argv: list[str] | None = None) -> dict:
    a = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # This process builds the bases (pretraining): as twin's CLI does; never passed to a baseline.
    omp_before = os.environ.get("OMP_WAIT_POLICY")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    work = a.work or Path(tempfile.mkdtemp(prefix="twin-compare-train-"))
    work.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    try:
        data, data_note = (a.data, str(a.data)) if a.data else make_data(work, a.messages)
        models = {m: compare_model(MODELS[m], a, work / m, data) for m in a.models}
        meta = {
            "command": "python -m bench.compare_train" + (" " + " ".join(argv) if argv else ""),
            "date": common.today(),
            "machine": common.machine(),
            "load": load_note(load_start, os.getloadavg()),
            "data": data_note,
            "rounds": a.rounds,
        }
        report = {"meta": meta, "models": models}
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
        md = markdown(models, meta)
        print(md)
        if a.write:
            common.write_block("train", md)
        return report
    finally:
        if omp_before is None:  # main() is also called in-process (tests): leave the env as found
            os.environ.pop("OMP_WAIT_POLICY", None)
        if a.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
