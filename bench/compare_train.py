"""Training: twin train vs transformers Trainer + peft vs litgpt finetune_lora, side by side.

    .venv/bin/python -m bench.compare_train            # 3 rounds x 60 optimizer steps, writes RESULTS.md
    .venv/bin/python -m bench.compare_train --quick    # smoke: 1 round x 2 steps, nothing written

Same data (a generated Desktop export through twin's import + prepare), same tiny Falcon (litgpt gets it through its own converter; the conversion is checked
against the Hugging Face logits), same prompt text and token ids, sequence length, micro-batch,
gradient accumulation, fp32, steps, AdamW and warmup+cosine schedule — all read from
``pipelines/tiny.yaml``. The tools run alternately (twin, Trainer, litgpt, twin, ...) so machine
noise hits all of them; each run is its own process (peak RSS is that run's alone).

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
import shutil
import sys
import tempfile
from pathlib import Path

from bench.baselines import common

log = logging.getLogger("bench.compare_train")
TOOLS = ("twin", "trainer", "litgpt")
# A baseline with "+passive" runs with OMP_WAIT_POLICY=PASSIVE, the setting twin's CLI makes for
# itself: it separates what twin gains from that one environment variable from the rest.
VARIANTS = tuple(f"{t}+passive" for t in TOOLS[1:])
LIT_NAME = "falcon-7b-twin-tiny"  # "falcon" + "7b": litgpt's Falcon-7B weight map (see litgpt_driver)
# Environment twin's own CLI sets for itself: never leak it from this process into the baselines.
_TWIN_ONLY_ENV = ("OMP_WAIT_POLICY", "TOKENIZERS_PARALLELISM")


def settings(config: Path, steps: int) -> dict:
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
        "seed": cfg.seed,
        "precision": "32-true",  # every tool, twin included (--set below)
    }


# --------------------------------------------------------------------------------------------
# Setup: data, base model, litgpt checkpoint


def make_data(work: Path, n_messages: int, seed: int = 0) -> tuple[Path, str]:
    """train/val.jsonl from a generated export through the real import + prepare."""
    out = work / "processed"
    from bench.gen_export import generate_export
    from twin.prepare.pipeline import run_prepare
    from twin.sources.telegram_desktop import import_desktop

    export = work / "export" / "result.json"
    export.parent.mkdir(parents=True, exist_ok=True)
    generate_export(export, n_messages, seed)
    import_desktop(export, out_root=str(work / "raw"))
    _run_prepare(run_prepare, work / "raw", out)
    return out, f"generated export of {n_messages:,} messages -> twin import -> twin prepare"


def _run_prepare(run_prepare, raw: Path, out: Path) -> None:
    from twin.prepare.config import PrepareConfig

    run_prepare(PrepareConfig(raw=str(raw), out=str(out)))


def make_base(work: Path, data: Path, pretrain_steps: int) -> Path:
    from twin.model.tiny import build_tiny, texts_from_dir

    return build_tiny(work / "base", texts_from_dir(data), pretrain_steps=pretrain_steps, seed=0)


def bench_python() -> Path | None:
    py = common.BENCH_VENV / "bin" / "python"
    return py if py.exists() else None


def setup_litgpt(work: Path, base: Path, data: Path) -> tuple[Path | None, str]:
    """Convert the base with litgpt's converter, verify it, write litgpt's JSON data. (dir, note)."""
    py = bench_python()
    if py is None:
        return None, "not run: .venv-bench missing (run `python -m bench setup`)"
    driver = str(Path(__file__).parent / "baselines" / "litgpt_driver.py")
    ckpt = work / LIT_NAME
    common.run_measured(
        [str(py), driver, "convert", "--hf", str(base), "--out", str(ckpt)], log=work / "convert.log"
    )
    # The conversion must be exact, or the comparison is of two different models.
    import torch
    from transformers import AutoModelForCausalLM

    ids = torch.randint(0, 200, (2, 24), generator=torch.Generator().manual_seed(0))
    torch.save(ids, work / "ids.pt")
    ref = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()
    with torch.no_grad():
        want = ref(ids).logits
    common.run_measured(
        [
            str(py),
            driver,
            "logits",
            "--ckpt",
            str(ckpt),
            "--ids",
            str(work / "ids.pt"),
            "--out",
            str(work / "lit.pt"),
        ],
        log=work / "logits.log",
    )
    diff = float((torch.load(work / "lit.pt", weights_only=True) - want).abs().max())
    if diff > 1e-3:
        return None, f"not run: litgpt's conversion differs from the HF model (max |logit diff| {diff:.2g})"
    from twin.prompt import build_training_pair

    lit_data = work / "litgpt-data"
    lit_data.mkdir(exist_ok=True)
    for split in ("train", "val"):
        rows = [json.loads(x) for x in (data / f"{split}.jsonl").open(encoding="utf-8") if x.strip()]
        recs = [dict(zip(("instruction", "output"), build_training_pair(r), strict=True)) for r in rows]
        (lit_data / f"{split}.json").write_text(json.dumps(recs, ensure_ascii=False), encoding="utf-8")
    return ckpt, f"converted by litgpt's convert_hf_checkpoint; max |logit diff| vs HF {diff:.1e}"


# --------------------------------------------------------------------------------------------
# One run per tool


def twin_command(s: dict, base: Path, data: Path, out: Path, config: Path) -> list[str]:
    return [
        str(Path(sys.executable).parent / "twin"), "train", "--config", str(config), "--data", str(data),
        "--base", str(base), "--run", "cmp", "--max-steps", str(s["steps"]),
        "--set", f"out_dir={out}", "--set", "eval.every_steps=0", "--set", "checkpoint_every_steps=0",
        "--set", f"precision={s['precision']}",
    ]  # fmt: skip


def trainer_command(s: dict, base: Path, data: Path, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "bench.baselines.hf_trainer", "--base", str(base), "--data", str(data),
        "--out", str(out), "--steps", str(s["steps"]), "--micro-batch", str(s["micro_batch"]),
        "--batch", str(s["batch"]), "--max-seq-length", str(s["max_seq_length"]), "--lr", str(s["lr"]),
        "--weight-decay", str(s["weight_decay"]), "--max-grad-norm", str(s["max_grad_norm"] or 0),
        "--warmup-ratio", str(s["warmup_ratio"]), "--lora-r", str(s["lora_r"]),
        "--lora-alpha", str(s["lora_alpha"]), "--lora-dropout", str(s["lora_dropout"]), "--seed", str(s["seed"]),
    ]  # fmt: skip


def litgpt_command(s: dict, ckpt: Path, lit_data: Path, out: Path) -> list[str]:
    """``litgpt finetune_lora`` with the shared recipe (run through the driver for the prompt style)."""
    optimizer = {
        "class_path": "torch.optim.AdamW",
        "init_args": {"lr": s["lr"], "weight_decay": s["weight_decay"]},
    }
    return [
        str(bench_python()), str(Path(__file__).parent / "baselines" / "litgpt_driver.py"), "cli",
        "finetune_lora", str(ckpt), "--out_dir", str(out), "--precision", s["precision"], "--devices", "1",
        "--lora_r", str(s["lora_r"]), "--lora_alpha", str(int(s["lora_alpha"])),
        "--lora_dropout", str(s["lora_dropout"]),
        # Falcon's fused query_key_value, all of it (as peft's target "query_key_value")
        "--lora_query", "true", "--lora_key", "true", "--lora_value", "true",
        "--data", "JSON", "--data.json_path", str(lit_data), "--data.prompt_style", "default",
        "--data.mask_prompt", "true",
        "--train.global_batch_size", str(s["batch"]), "--train.micro_batch_size", str(s["micro_batch"]),
        "--train.max_steps", str(s["steps"]), "--train.epochs", "1000",
        "--train.max_seq_length", str(s["max_seq_length"]), "--train.lr_warmup_steps", str(s["warmup_steps"]),
        "--train.save_interval", "1000000", "--train.log_interval", "1",
        "--eval.interval", "1000000", "--eval.initial_validation", "false", "--eval.final_validation", "false",
        "--optimizer", json.dumps(optimizer), "--logger_name", "csv", "--seed", str(s["seed"]),
    ]  # fmt: skip


def _twin_result(out: Path) -> dict:
    m = json.loads((out / "adapters" / "cmp" / "twin.json").read_text(encoding="utf-8"))["metrics"]
    return {
        "real_tokens": m["tokens"],
        "loop_seconds": m["tokens"] / m["tokens_per_s"],
        "tokens_per_s": m["tokens_per_s"],
        "train_loss": m["train_loss"],
        "adapter": str(out / "adapters" / "cmp"),
    }


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


def run_tool(name: str, s: dict, ctx: dict, run_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _TWIN_ONLY_ENV}
    env["PYTHONPATH"] = str(common.ROOT)
    tool, _, variant = name.partition("+")
    if variant == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    if tool == "twin":
        cmd = twin_command(s, ctx["base"], ctx["data"], run_dir, ctx["config"])
    elif tool == "trainer":
        cmd = trainer_command(s, ctx["base"], ctx["data"], run_dir)
    else:
        cmd = litgpt_command(s, ctx["lit_ckpt"], ctx["lit_data"], run_dir)
    meas = _measured(cmd, run_dir, env)
    if tool == "twin":
        res = _twin_result(run_dir)
    elif tool == "trainer":
        res = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
        res["adapter"] = str(run_dir / "adapter")
    else:
        res = _litgpt_result(run_dir)
    return {**res, **meas, "tool": tool, "name": name}


def _measured(cmd: list[str], run_dir: Path, env: dict) -> dict:
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    return common.run_measured(cmd, log=run_dir / "run.log", env=env, cwd=common.ROOT)


def evaluate(res: dict, ctx: dict, run_dir: Path) -> float:
    cmd = [sys.executable, "-m", "bench.baselines.evaluate", "--base", str(ctx["base"]),
           "--val", str(ctx["data"] / "val.jsonl"), "--max-seq-length", str(ctx["settings"]["max_seq_length"])]  # fmt: skip
    if res["tool"] == "litgpt":
        hf = run_dir / "hf"
        common.run_measured(
            [str(bench_python()), str(Path(__file__).parent / "baselines" / "litgpt_driver.py"), "to-hf",
             "--lit", res["lit_dir"], "--out", str(hf)],
            log=run_dir / "to-hf.log",
        )  # fmt: skip
        cmd += ["--state", str(hf / "model.pth")]
    else:
        cmd += ["--adapter", res["adapter"]]
    common.run_measured(cmd, log=run_dir / "eval.log", cwd=common.ROOT)
    last = (run_dir / "eval.log").read_text().strip().splitlines()[-1]
    return float(json.loads(last)["val_loss"])


# --------------------------------------------------------------------------------------------


def profile(ctx: dict, s: dict, work: Path, tools: list[str]) -> dict[str, dict]:
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
        if tool == "twin":
            cmd = twin_command(s, ctx["base"], ctx["data"], run_dir, ctx["config"])
        else:
            cmd = trainer_command(s, ctx["base"], ctx["data"], run_dir)
        raw = profile_train.record(cmd, run_dir / "stacks.txt", py_spy)
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
    keys = ("tokens_per_s", "loop_seconds", "wall_s", "max_rss_mb", "tree_rss_mb", "val_loss", "train_loss")
    return {
        t: {k: common.median([r.get(k) for r in rs]) for k in keys} | {"runs": len(rs)}
        for t, rs in runs.items()
        if rs
    }


def markdown(summary: dict, s: dict, meta: dict) -> str:
    tw = summary.get("twin", {})
    lines = [
        "### Training: twin train vs Trainer + peft vs litgpt finetune_lora",
        "",
        f"`{meta['command']}` — {meta['date']}, {meta['machine']}.",
        f"Data: {meta['data']} ({meta['train_examples']} train / {meta['val_examples']} val examples). "
        f"Tiny Falcon ({meta['params']:,} params, pretrained {meta['pretrain_steps']} steps); litgpt: {meta['litgpt']}.",
        f"Each tool {s['steps']} optimizer steps x {s['batch']} examples (micro-batch {s['micro_batch']}, "
        f"accumulation {s['batch'] // s['micro_batch']}), max length {s['max_seq_length']}, {s['precision']}, "
        f"LoRA r={s['lora_r']} alpha={s['lora_alpha']:g} on query_key_value, AdamW lr {s['lr']:g}, "
        f"warmup {s['warmup_steps']} + cosine. Alternating rounds: {meta['rounds']}; medians shown.",
        "",
        "| tool | real tokens/s (loop) | twin ÷ tool | process wall s | peak RSS MiB (largest process / tree) | val loss (same evaluator) | last train loss |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for tool, row in summary.items():
        r = common.ratio(tw.get("tokens_per_s"), row["tokens_per_s"])
        lines.append(
            f"| {tool} | {common.fmt(row['tokens_per_s'], 0)} | {common.fmt(r, 2) + 'x' if tool != 'twin' else '—'} | "
            f"{common.fmt(row['wall_s'])} | {common.fmt(row['max_rss_mb'], 0)} / {common.fmt(row['tree_rss_mb'], 0)} | "
            f"{common.fmt(row['val_loss'], 4)} | {common.fmt(row['train_loss'], 4)} |"
        )
    for note in meta.get("notes", []):
        lines.append(f"\n{note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench.compare_train", description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="smoke run: 1 round x 2 steps, tiny data, no RESULTS.md"
    )
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--messages", type=int, default=20_000, help="size of the generated export")
    ap.add_argument("--pretrain-steps", type=int, default=40, help="brief pretraining of the tiny base")
    ap.add_argument("--tools", help=f"comma-separated, from {', '.join(TOOLS + VARIANTS)} "
                    "(default: all; --quick: the three tools)")  # fmt: skip
    ap.add_argument("--config", type=Path, default=common.ROOT / "pipelines" / "tiny.yaml")
    ap.add_argument("--data", type=Path, help="use this prepare output instead of generating one")
    ap.add_argument("--work", type=Path, help="keep work files here (default: a temp dir, removed)")
    ap.add_argument("--no-eval", action="store_true", help="skip the common val-loss evaluation")
    ap.add_argument("--profile-all", action="store_true", help="profile the Trainer run too")
    ap.add_argument("--profile", action=argparse.BooleanOptionalAction, default=None,
                    help="profile twin and the Trainer with py-spy (default: yes unless --quick)")  # fmt: skip
    ap.add_argument("--write", action=argparse.BooleanOptionalAction, default=None,
                    help="update bench/RESULTS.md (default: yes unless --quick)")  # fmt: skip
    ap.add_argument("--json", type=Path, default=common.ROOT / "bench" / "out" / "compare_train.json")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if a.quick:
        a.steps, a.rounds, a.messages, a.pretrain_steps = 2, 1, 2_000, 0
        a.no_eval = True
    write = (not a.quick) if a.write is None else a.write
    tools = [t for t in (a.tools or ",".join(TOOLS if a.quick else TOOLS + VARIANTS)).split(",") if t]
    bad = set(tools) - set(TOOLS + VARIANTS)
    if bad:
        raise SystemExit(f"--tools: unknown {sorted(bad)}; choose from {', '.join(TOOLS + VARIANTS)}")

    work = a.work or Path(tempfile.mkdtemp(prefix="twin-compare-train-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        s = settings(a.config, a.steps)
        if a.data:
            data, data_note = a.data, f"{a.data}"
        else:
            data, data_note = make_data(work, a.messages)
        base = make_base(work, data, a.pretrain_steps)
        ctx = {"base": base, "data": data, "config": a.config, "settings": s, "profile_all": a.profile_all}
        lit_note = "not requested"
        if any(t.startswith("litgpt") for t in tools):
            ckpt, lit_note = setup_litgpt(work, base, data)
            if ckpt is None:
                tools = [t for t in tools if not t.startswith("litgpt")]
                log.warning("litgpt %s", lit_note)
            ctx.update(lit_ckpt=ckpt, lit_data=work / "litgpt-data")
        runs: dict[str, list[dict]] = {t: [] for t in tools}
        for rnd in range(a.rounds):
            order = tools if rnd % 2 == 0 else tools[::-1]  # A B C, C B A, ...: no tool always first
            for tool in order:
                run_dir = work / "runs" / f"{tool}-{rnd}"
                res = run_tool(tool, s, ctx, run_dir)
                # Same seed, same data, same steps: one evaluation per tool (round 1) is enough.
                if not a.no_eval and rnd == 0:
                    res["val_loss"] = evaluate(res, ctx, run_dir)
                runs[tool].append(res)
                log.info(
                    "round %d %-7s %8.0f tok/s  wall %5.1fs  rss %4.0f MiB  val %s",
                    rnd + 1, tool, res["tokens_per_s"], res["wall_s"], res["max_rss_mb"], res.get("val_loss"),
                )  # fmt: skip
        summary = summarize(runs)
        prof = profile(ctx, s, work, tools) if (a.profile if a.profile is not None else not a.quick) else {}
        n_train = sum(1 for x in (data / "train.jsonl").open() if x.strip())
        n_val = sum(1 for x in (data / "val.jsonl").open() if x.strip())
        tiny = json.loads((base / "tiny.json").read_text())
        meta = {
            "command": "python -m bench.compare_train" + (" --quick" if a.quick else ""),
            "date": common.today(),
            "machine": common.machine(),
            "data": data_note,
            "train_examples": n_train,
            "val_examples": n_val,
            "params": tiny["parameters"],
            "pretrain_steps": a.pretrain_steps,
            "litgpt": lit_note,
            "rounds": a.rounds,
            "notes": [
                "Real tokens = prompt + reply + EOS, padding excluded; loop = the training loop only "
                "(each tool's own clock: twin's metrics, a Trainer callback, litgpt's ThroughputMonitor `time`). "
                "Differences by design (not settings): bench/README.md#training."
            ],
        }
        report = {"settings": s, "meta": meta, "summary": summary, "runs": runs, "profile": prof}
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
        md = markdown(summary, s, meta) + (profile_markdown(prof) if prof else "")
        print(md)
        if write:
            common.write_block("train", md)
        for t, row in summary.items():
            if t != "twin" and row["tokens_per_s"] and "twin" in summary:
                r = summary["twin"]["tokens_per_s"] / row["tokens_per_s"]
                log.info("twin / %s tokens/s: %.2fx", t, r)
        return report
    finally:
        if a.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
