"""Data: twin import + prepare vs the reference recipe's preparation, on one generated export.

    .venv/bin/python -m bench.compare_data            # 1,000,000 messages, 3 alternating rounds
    .venv/bin/python -m bench.compare_data --quick    # smoke: 5,000 messages, 1 round, nothing written

The export is a Telegram Desktop ``result.json`` from ``bench/gen_export.py`` (helper of the import
benchmark). twin: ``twin export desktop`` then ``twin prepare`` (two processes, as a user runs
them; PII scrubbing on, the default), and once more with ``--no-scrub`` to show what scrubbing
costs. Baseline: ``bench/baselines/reference_prep.py`` (documented there and in bench/README.md).
Each run is its own process; figures are messages/s over the whole path (export file in,
train/val examples out) and peak RSS, medians over rounds, plus a check that both produce the same
example counts.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

from bench.baselines import common

log = logging.getLogger("bench.compare_data")
CONTENDERS = ("twin", "twin --no-scrub", "reference")


def run_twin(export: Path, work: Path, scrub: bool) -> dict:
    twin = str(Path(sys.executable).parent / "twin")
    raw, out = work / "raw", work / "processed"
    for d in (raw, out):
        shutil.rmtree(d, ignore_errors=True)
    imp = common.run_measured(
        [twin, "export", "desktop", str(export), "--out", str(raw)], log=work / "import.log"
    )
    cmd = [twin, "prepare", "--raw", str(raw), "--out", str(out)] + ([] if scrub else ["--no-scrub"])
    prep = common.run_measured(cmd, log=work / "prepare.log")
    counts = json.loads((out / "stats.json").read_text(encoding="utf-8"))["counts"]
    return {
        "wall_s": imp["wall_s"] + prep["wall_s"],
        "import_s": imp["wall_s"],
        "prepare_s": prep["wall_s"],
        "max_rss_mb": max(imp["max_rss_mb"], prep["max_rss_mb"]),
        "tree_rss_mb": max(imp["tree_rss_mb"], prep["tree_rss_mb"]),
        "examples": counts["examples"],
        "train": counts["train"],
        "val": counts["val"],
    }


def run_reference(export: Path, work: Path) -> dict:
    out = work / "reference"
    shutil.rmtree(out, ignore_errors=True)
    meas = common.run_measured(
        [sys.executable, "-m", "bench.baselines.reference_prep", str(export), str(out)],
        log=work / "reference.log",
        cwd=common.ROOT,
    )
    counts = json.loads((work / "reference.log").read_text().strip().splitlines()[-1])
    return {**meas, "examples": counts["examples"], "train": counts["train"], "val": counts["val"]}


def markdown(summary: dict, meta: dict) -> str:
    ref = summary.get("reference", {})
    lines = [
        "### Data: twin import + prepare vs the reference recipe's preparation",
        "",
        f"`{meta['command']}` — {meta['date']}, {meta['machine']}.",
        f"Input: generated Desktop export, {meta['messages']:,} messages ({meta['export_mb']:.0f} MB). "
        f"Alternating rounds: {meta['rounds']}; medians shown. Examples produced: {meta['counts']}.",
        "",
        "| contender | runs | messages/s | ÷ reference | wall s (import + prepare) | peak RSS MiB (largest process / tree) | examples |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in summary.items():
        r = common.ratio(row["messages_per_s"], ref.get("messages_per_s"))
        split = (
            f" ({common.fmt(row.get('import_s'))} + {common.fmt(row.get('prepare_s'))})"
            if row.get("import_s")
            else ""
        )
        lines.append(
            f"| {name} | {row['runs']} | {common.fmt(row['messages_per_s'], 0)} | {common.fmt(r, 2)}x | "
            f"{common.fmt(row['wall_s'])}{split} | {common.fmt(row['max_rss_mb'], 0)} / {common.fmt(row['tree_rss_mb'], 0)} | "
            f"{row['examples']:,} |"
        )
    lines.append(
        "\ntwin writes raw records per dialog (the import), then reads them back in a process pool "
        "(prepare, PII scrubbing on by default); the reference loads the whole export in one process "
        "and keeps everything in memory, no scrubbing. Baseline: bench/README.md#data."
    )
    return "\n".join(lines)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.compare_data", description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="smoke run: 5,000 messages, 1 round, nothing written"
    )
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--contenders", default=",".join(CONTENDERS), help=f"from {', '.join(CONTENDERS)}")
    ap.add_argument("--work", type=Path, help="keep work files here (default: a temp dir, removed)")
    ap.add_argument("--write", action=argparse.BooleanOptionalAction, default=None,
                    help="update bench/RESULTS.md (default: yes unless --quick)")  # fmt: skip
    ap.add_argument("--json", type=Path, default=common.ROOT / "bench" / "out" / "compare_data.json")
    a = ap.parse_args(argv)
    if a.quick:
        a.messages, a.rounds = 5_000, 1
    return a


def _measure(export: Path, work: Path, names: list[str], rounds: int, messages: int) -> dict[str, list[dict]]:
    """Each contender's runs, the order alternating between rounds so machine noise hits all."""
    runs: dict[str, list[dict]] = {n: [] for n in names}
    for rnd in range(rounds):
        order = names if rnd % 2 == 0 else names[::-1]
        # The no-scrub variant only shows what scrubbing costs: one run is enough for that.
        for name in [n for n in order if rnd == 0 or n != "twin --no-scrub"]:
            d = work / name.replace(" ", "").replace("-", "")
            d.mkdir(exist_ok=True)
            res = (
                run_reference(export, d)
                if name == "reference"
                else run_twin(export, d, "no-scrub" not in name)
            )
            res["messages_per_s"] = messages / res["wall_s"]
            runs[name].append(res)
            log.info("round %d %-16s %9.0f msg/s  wall %6.1fs  rss %5.0f MiB  examples %d",
                     rnd + 1, name, res["messages_per_s"], res["wall_s"], res["max_rss_mb"], res["examples"])  # fmt: skip
    return runs


def _report(a: argparse.Namespace, runs: dict[str, list[dict]], export: Path) -> dict:
    """Medians per contender, the run's description, and whether all produced the same examples."""
    counts = {n: rs[0]["examples"] for n, rs in runs.items()}
    same = len(set(counts.values())) == 1
    keys = ("messages_per_s", "wall_s", "import_s", "prepare_s", "max_rss_mb", "tree_rss_mb")
    summary = {
        n: {k: common.median([r.get(k) for r in rs]) for k in keys}
        | {"examples": rs[0]["examples"], "runs": len(rs)}
        for n, rs in runs.items()
    }
    meta = {
        "command": "python -m bench.compare_data" + (" --quick" if a.quick else ""),
        "date": common.today(),
        "machine": common.machine(),
        "messages": a.messages,
        "export_mb": export.stat().st_size / 2**20,
        "rounds": a.rounds,
        "counts": "identical" if same else f"DIFFER {counts}",
    }
    return {"meta": meta, "summary": summary, "runs": runs, "same_counts": same}


def main(argv: list[str] | None = None) -> dict:
    a = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    write = (not a.quick) if a.write is None else a.write
    names = [c.strip() for c in a.contenders.split(",") if c.strip()]
    if set(names) - set(CONTENDERS):
        raise SystemExit(f"--contenders: choose from {', '.join(CONTENDERS)}")
    from bench.gen_export import generate_export

    work = a.work or Path(tempfile.mkdtemp(prefix="twin-compare-data-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        export = work / "result.json"
        log.info("generating a %s-message export ...", f"{a.messages:,}")
        generate_export(export, a.messages, 0)
        report = _report(a, _measure(export, work, names, a.rounds, a.messages), export)
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        md = markdown(report["summary"], report["meta"])
        print(md)
        if write:
            common.write_block("data", md)
        if not report["same_counts"]:
            counts = {n: rs[0]["examples"] for n, rs in report["runs"].items()}
            log.warning("example counts differ between contenders: %s", counts)
        return report
    finally:
        if a.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
