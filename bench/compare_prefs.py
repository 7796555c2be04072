"""SFT alone vs SFT + the preference stage (DPO) on the bundled sample, same base, data and seed.

    .venv/bin/python -m bench.compare_prefs --workdir DIR [--examples 200] [--set prefs.steps=60 ...]

Needs ``twin demo --serve 0 --workdir DIR`` first (its base, data and SFT adapter ``demo``). Runs
the preference stage from the ``demo`` adapter into ``demo-prefs`` (the SFT adapter is left as it
is), evaluates both with the demo's eval settings on the same ``--examples`` val prompts (same
sampling seeds), and compares them row by row: the share of twin replies the authorship verifier
judges "owner" with the paired difference (prefs - SFT) and its Newcombe interval, ROC AUC of
real vs twin replies (0.5 = the verifier cannot tell them apart), loss of the real replies,
reply length and style, and wall times. Writes ``bench/out/compare_prefs.json`` and prints a
markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
REPO = Path(__file__).resolve().parents[1]


def run_prefs(workdir: Path, sft: str, run: str, overrides: list[str]) -> dict:
    from twin.config import deep_merge, load_config, parse_overrides
    from twin.train.config import TrainConfig
    from twin.train.prefs import train_prefs

    ck = workdir / "checkpoints"
    flags = {"base": str(ck / "tiny-falcon"), "run": run, "out_dir": str(ck),
             "data": {"dir": str(workdir / "data" / "processed")}, "prefs": {"init": sft}}  # fmt: skip
    cfg = load_config(
        TrainConfig, REPO / "pipelines" / "tiny.yaml", deep_merge(flags, parse_overrides(overrides))
    )
    started = time.perf_counter()
    record = train_prefs(cfg)
    record["wall_s"] = time.perf_counter() - started
    return record


def evaluate(workdir: Path, run: str, examples: int, reuse: bool = False) -> tuple[dict, list[dict]]:
    from twin.demo import EVAL_NEW_TOKENS
    from twin.eval.run import EvalConfig, run_eval

    ck = workdir / "checkpoints"
    done = ck / "runs" / f"cmp-{run}" / "eval.json"
    if reuse and done.is_file() and json.loads(done.read_text())["examples"] == examples:
        rows = [json.loads(x) for x in (done.parent / "eval_samples.jsonl").read_text().splitlines()]
        return json.loads(done.read_text()), rows
    # base given: twin.json records it relative to the directory the demo ran in, not this one
    cfg = EvalConfig(adapter=str(ck / "adapters" / run), base=str(ck / "tiny-falcon"),
                     data=str(workdir / "data" / "processed"),
                     run=f"cmp-{run}", out_dir=str(ck), max_examples=examples, max_new_tokens=EVAL_NEW_TOKENS)  # fmt: skip
    result = run_eval(cfg, progress=False)
    rows = [
        json.loads(x) for x in (ck / "runs" / f"cmp-{run}" / "eval_samples.jsonl").read_text().splitlines()
    ]
    return result, rows


def auc(real: list[float], other: list[float]) -> float:
    """ROC AUC of P(owner) separating real replies (positive) from generated ones."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score([1] * len(real) + [0] * len(other), [*real, *other]))


def side(result: dict, rows: list[dict]) -> dict:
    from twin.eval.metrics import style_stats

    p = [r["authorship"]["twin"] for r in rows]
    a = result["authorship"]
    return {
        "judged_owner": a["twin"]["share"],
        "interval": [a["twin"]["low"], a["twin"]["high"]],
        "base_judged_owner": a["base"]["share"],
        "mean_p_owner": sum(p) / len(p),
        "auc_real_vs_twin": auc([r["authorship"]["real"] for r in rows], p),
        "auc_real_vs_base": auc(
            [r["authorship"]["real"] for r in rows], [r["authorship"]["base"] for r in rows]
        ),
        "loss_real": result["loss"]["twin"]["loss"],
        "style": style_stats([r["twin"] for r in rows]),
        "eval_s": result["seconds"]["total"],
    }


def word_judge(workdir: Path) -> object:
    """A second owner-vs-contacts classifier the stage never saw: word 1-2-grams instead of the
    verifier's character n-grams, same train split. If only the verifier the stage optimised against
    moved, this one would not."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from twin.examples import read_examples
    from twin.style import split_messages

    owner, contacts = split_messages(read_examples(workdir / "data" / "processed" / "train.jsonl"))
    judge = make_pipeline(TfidfVectorizer(analyzer="word", ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                          LogisticRegression(class_weight="balanced", max_iter=2000))  # fmt: skip
    judge.fit([*owner, *contacts], [1] * len(owner) + [0] * len(contacts))
    return judge


def judged(judge: object, rows: list[dict], key: str) -> list[float]:
    return [float(p >= 0.5) for p in judge.predict_proba([r[key] for r in rows])[:, 1]]


def paired(sft_rows: list[dict], prefs_rows: list[dict], judge: object | None = None) -> dict:
    """prefs - SFT share judged "owner" on the same prompts (the verifier's, or ``judge``'s)."""
    from twin.eval.intervals import paired_difference

    assert [r["message"] for r in sft_rows] == [r["message"] for r in prefs_rows], "not the same prompts"
    if judge is not None:
        a, b = judged(judge, sft_rows, "twin"), judged(judge, prefs_rows, "twin")
        return paired_difference(b, a) | {
            "sft": sum(a) / len(a), "prefs": sum(b) / len(b), "real": sum(judged(judge, sft_rows, "real")) / len(a)
        }  # fmt: skip
    return paired_difference([float(r["authorship"]["twin"] >= 0.5) for r in prefs_rows],
                             [float(r["authorship"]["twin"] >= 0.5) for r in sft_rows])  # fmt: skip


def eval_rows(workdir: Path, run: str) -> list[dict]:
    path = workdir / "checkpoints" / "runs" / f"cmp-{run}" / "eval_samples.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()]


def diff(workdir: Path, a: str, b: str) -> None:
    """``--diff A B``: B − A, paired, for two adapters this bench already evaluated (e.g. the stage
    with and without its DPO term), by the verifier and by the word judge."""
    ra, rb = eval_rows(workdir, a), eval_rows(workdir, b)
    for name, d in (("verifier", paired(ra, rb)), ("word judge", paired(ra, rb, word_judge(workdir)))):
        print(f"{b} − {a}, {name}: {d['share']:+.3f} ({d['low']:+.3f} to {d['high']:+.3f}), n = {d['n']}")


def table(rep: dict) -> str:
    s, p, d, w = rep["sft"], rep["prefs"], rep["paired"], rep["word_judge"]
    rows = [
        ("share judged \"owner\" (95% interval)", *(f"{x['judged_owner']:.3f} ({x['interval'][0]:.2f}-{x['interval'][1]:.2f})" for x in (s, p))),
        ("paired prefs − SFT (95% interval)", "", f"{d['share']:+.3f} ({d['low']:+.3f} to {d['high']:+.3f})"),
        ("word 1-2-gram judge: share \"owner\" (real: {:.2f})".format(w["real"]), f"{w['sft']:.3f}", f"{w['prefs']:.3f}, paired {w['share']:+.3f} ({w['low']:+.3f} to {w['high']:+.3f})"),
        ("mean P(owner) of twin replies", f"{s['mean_p_owner']:.3f}", f"{p['mean_p_owner']:.3f}"),
        ("ROC AUC real vs twin (0.5 = indistinguishable)", f"{s['auc_real_vs_twin']:.3f}", f"{p['auc_real_vs_twin']:.3f}"),
        ("loss of the real replies (eval)", f"{s['loss_real']:.4f}", f"{p['loss_real']:.4f} ({p['loss_real'] / s['loss_real'] - 1:+.1%})"),
        ("reply chars mean / median", f"{s['style']['chars_mean']:.1f} / {s['style']['chars_median']:.0f}", f"{p['style']['chars_mean']:.1f} / {p['style']['chars_median']:.0f}"),
        ("emoji rate / Cyrillic share", f"{s['style']['emoji_rate']:.2f} / {s['style']['script_share']['cyrillic']:.2f}", f"{p['style']['emoji_rate']:.2f} / {p['style']['script_share']['cyrillic']:.2f}"),
        ("wall time: train stage", f"{rep['sft_train_s']:.0f} s (SFT)", f"+{rep['prefs_record']['wall_s']:.0f} s (prefs)"),
    ]  # fmt: skip
    lines = ["| | SFT alone | SFT + prefs |", "|---|---:|---:|"]
    return "\n".join(lines + [f"| {a} | {b} | {c} |" for a, b, c in rows])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--examples", type=int, default=200)
    ap.add_argument("--reuse", action="store_true", help="keep an existing demo-prefs adapter")
    ap.add_argument(
        "--reuse-sft-eval", action="store_true", help="the SFT adapter's eval from a previous run"
    )
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="train config key=value")
    ap.add_argument("--sft", default="demo", help="the SFT adapter (a run under checkpoints/adapters)")
    ap.add_argument("--tag", default="", help="names the prefs run <sft>-prefs[-TAG] and the output json")
    ap.add_argument("--diff", nargs=2, metavar=("RUN_A", "RUN_B"), help="only compare two evaluated runs")
    a = ap.parse_args()
    if a.diff:
        return diff(a.workdir, *a.diff)
    ck = a.workdir / "checkpoints"
    run = f"{a.sft}-prefs" + (f"-{a.tag}" if a.tag else "")
    prefs_meta = ck / "adapters" / run / "twin.json"
    if a.reuse and prefs_meta.is_file():
        record = json.loads(prefs_meta.read_text())["prefs"]
        record.setdefault("wall_s", record["seconds"]["total"])
    else:
        record = run_prefs(a.workdir, a.sft, run, a.overrides)
    sft_res, sft_rows = evaluate(a.workdir, a.sft, a.examples, reuse=a.reuse_sft_eval)
    prefs_res, prefs_rows = evaluate(a.workdir, run, a.examples)
    sft_meta = json.loads((ck / "adapters" / a.sft / "twin.json").read_text())
    rep = {
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sft_run": a.sft,
        "prefs_run": run,
        "overrides": a.overrides,
        "cpu": platform.processor() or platform.machine(),
        "examples": len(sft_rows),
        "sft": side(sft_res, sft_rows),
        "prefs": side(prefs_res, prefs_rows),
        "paired": paired(sft_rows, prefs_rows),
        "word_judge": paired(sft_rows, prefs_rows, word_judge(a.workdir)),
        "sft_train_s": sft_meta["metrics"]["seconds"],
        "prefs_record": {k: v for k, v in record.items() if k != "config"} | {"config": record.get("config")},
        "verifier_accuracy": sft_res["authorship"].get("accuracy"),
    }
    OUT.mkdir(exist_ok=True)
    (OUT / f"compare_prefs{'-' + a.tag if a.tag else ''}.json").write_text(
        json.dumps(rep, indent=2, default=str)
    )
    print(table(rep))
    pr = rep["prefs_record"]
    print(f"\npairs {pr['pairs']} {pr['pair_sources']}, rejected P(owner) {pr['rejected_p_owner']}, margin "
          f"{pr['margin_before']} -> {pr['margin_after']}, val loss {pr['val_loss_before']} -> {pr['val_loss_after']}, guard {pr.get('guard')}")  # fmt: skip


if __name__ == "__main__":
    main()
