"""Import benchmark: `twin export desktop` on a generated whole-account Telegram Desktop export.

    .venv/bin/python -m bench.bench_import            # 1,000,000 messages; appends a row to RESULTS.md
    .venv/bin/python -m bench.bench_import --quick    # smoke: 20,000 messages, writes nothing to RESULTS.md

The export comes from ``bench/gen_export.py`` (deterministic; cached as
``bench/out/import-export-<n>-s<seed>.json``). Each measured run is the real command, pinned to one
core with ``taskset`` (the target is "on one core"), in its own process so its peak RSS
(``ru_maxrss``, exact) is its own:

1. fresh import into an empty ``--out`` (``--rounds`` times; median reported);
2. re-import of the same file into the filled ``--out`` (reads, merges, writes nothing);
3. ``import_desktop`` called in a fresh process, with its own phase timings (read, parse,
   convert + encode, merge with what is on disk, write).

Results: a table on stdout, raw numbers in ``bench/out/import.json``, and on a full run one row
appended to the import section of ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
RESULTS = REPO / "bench" / "RESULTS.md"
SECTION = "<!-- section: import (owner: export) -->"
ROWS_BEGIN, ROWS_END = "<!-- import:rows -->", "<!-- /import:rows -->"
TARGET_S, TARGET_MB = 15.0, 3072.0

# Runs in a fresh interpreter: import_desktop itself (no CLI start-up), with its own phase timings.
PROFILE = r"""
import json, resource, sys, time
from twin.sources.telegram_desktop import import_desktop
t0 = time.perf_counter()
summary = import_desktop(sys.argv[1], sys.argv[2])
wall = time.perf_counter() - t0
print(json.dumps({"wall_s": wall, "phases": summary["seconds"], "messages": summary["messages"],
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def cached_export(n: int, seed: int, cache: Path) -> Path:
    from bench.gen_export import generate_export

    path = cache / f"import-export-{n}-s{seed}.json"
    if not path.exists():  # generate_export writes atomically: an existing file is complete
        t0 = time.perf_counter()
        print(f"generating {n:,}-message export -> {path} ...", flush=True)
        generate_export(path, n, seed)
        print(f"  done in {time.perf_counter() - t0:.0f}s, {path.stat().st_size / 2**20:.0f} MiB", flush=True)
    return path


def one_core() -> list[str]:
    """``taskset -c N`` on the last allowed core, or nothing where taskset is missing."""
    if shutil.which("taskset") and hasattr(os, "sched_getaffinity"):
        return ["taskset", "-c", str(max(os.sched_getaffinity(0)))]
    return []


def measure_cli(export: Path, out: Path, log: Path) -> dict:
    from bench.baselines.common import run_measured

    twin = str(Path(sys.executable).parent / "twin")
    cmd = [*one_core(), twin, "export", "desktop", str(export), "--out", str(out)]
    t_cpu = os.times()
    res = run_measured(cmd, log=log)
    t_end = os.times()
    res["cpu_s"] = (t_end.children_user - t_cpu.children_user) + (
        t_end.children_system - t_cpu.children_system
    )
    return res


def write_results_row(row: str) -> None:
    """Append ``row`` to the table between the import rows markers inside this module's section."""
    from twin.fileio import atomic_write_text

    text = RESULTS.read_text(encoding="utf-8")
    if SECTION not in text:
        raise SystemExit(f"{RESULTS}: the section marker {SECTION!r} is missing; not writing")
    start = text.index(SECTION) + len(SECTION)
    nxt = text.find("<!-- section:", start)
    end = len(text) if nxt == -1 else nxt
    section = text[start:end]
    header = (
        "| date | messages (export) | wall s | CPU s | peak RSS | re-import wall s | re-import peak RSS | load avg |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    if ROWS_BEGIN in section and ROWS_END in section:
        section = section.replace(ROWS_END, f"{row}\n{ROWS_END}", 1)
    else:
        section = section.rstrip("\n") + f"\n\n{ROWS_BEGIN}\n{header}{row}\n{ROWS_END}\n\n"
    atomic_write_text(RESULTS, text[:start] + section + text[end:])


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench.bench_import", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20,000 messages, 1 round, no RESULTS.md (smoke)")
    ap.add_argument("--messages", type=int, default=None, help="default 1,000,000 (20,000 with --quick)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--rounds", type=int, default=None, help="fresh imports to run (default 2; 1 with --quick)"
    )
    ap.add_argument("--cache", type=Path, default=OUT, help="where the generated export is kept")
    ap.add_argument("--out", type=Path, default=OUT / "import.json", help="raw numbers (JSON)")
    ap.add_argument("--write", action=argparse.BooleanOptionalAction, default=None,
                    help="append a row to bench/RESULTS.md (default: yes unless --quick)")  # fmt: skip
    return ap.parse_args(argv)


def _fresh_imports(export: Path, work: Path, rounds: int) -> list[dict]:
    """Step 1: ``rounds`` imports into an empty ``--out`` each."""
    fresh = []
    for r in range(rounds):
        out = work / f"raw{r}"
        res = measure_cli(export, out, work / f"fresh{r}.log")
        res["files"] = len(list((out / "telegram").glob("*.jsonl")))
        res["records"] = sum(1 for p in (out / "telegram").glob("*.jsonl") for _ in p.open("rb"))
        fresh.append(res)
        print(f"fresh import {r + 1}: {res['wall_s']:.1f}s wall, {res['cpu_s']:.1f}s CPU, "
              f"{res['max_rss_mb']:.0f} MiB peak", flush=True)  # fmt: skip
    return fresh


def _profile(export: Path, out: Path) -> dict:
    """Step 3: ``import_desktop`` in a fresh process, with its phase timings."""
    import subprocess

    proc = subprocess.run(
        [*one_core(), sys.executable, "-c", PROFILE, str(export), str(out)],
        capture_output=True, text=True, cwd=REPO, check=True,
    )  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _print_table(report: dict) -> None:
    n, size_mb, rounds = report["messages"], report["export_mb"], len(report["rounds"])
    wall, cpu, rss = report["wall_s"], report["cpu_s"], report["max_rss_mb"]
    again, profile, first = report["reimport"], report["profile"], report["rounds"][0]
    print(f"\nimport of a {n:,}-message Desktop export ({size_mb:.0f} MiB), one core, {report['machine']}")
    print("| measure | value |\n|---|---:|")
    print(f"| fresh import wall (median of {rounds}) | {wall:.1f} s |")
    print(f"| fresh import CPU | {cpu:.1f} s |")
    print(f"| messages/s | {n / wall:,.0f} |")
    print(f"| peak RSS | {rss:,.0f} MiB |")
    print(f"| re-import wall / peak RSS | {again['wall_s']:.1f} s / {again['max_rss_mb']:,.0f} MiB |")
    print(f"| records written / dialog files | {first['records']:,} / {first['files']} |")
    print(f"| in-process import_desktop (no CLI start-up) | {profile['wall_s']:.1f} s |")
    for phase, secs in profile["phases"].items():
        print(f"| phase: {phase} | {secs:.2f} s |")
    print(
        f"targets (< {TARGET_S:.0f} s, < {TARGET_MB / 1024:.0f} GB): {'met' if report['targets']['met'] else 'NOT met'}"
    )


def _results_row(report: dict) -> str:
    again, (load_before, load_after) = report["reimport"], report["load_avg"]
    return (
        f"| {report['date']} | {report['messages']:,} ({report['export_mb']:.0f} MiB) | {report['wall_s']:.1f} | "
        f"{report['cpu_s']:.1f} | {report['max_rss_mb']:,.0f} MiB | "
        f"{again['wall_s']:.1f} | {again['max_rss_mb']:,.0f} MiB | {load_before:.1f} / {load_after:.1f} |"
    )


def main(argv: list[str] | None = None) -> dict:
    a = _parse_args(argv)
    n = a.messages or (20_000 if a.quick else 1_000_000)
    rounds = a.rounds or (1 if a.quick else 2)
    write = (not a.quick) if a.write is None else a.write
    sys.path.insert(0, str(REPO))
    from bench.baselines.common import machine, median, today

    a.cache.mkdir(parents=True, exist_ok=True)
    export = cached_export(n, a.seed, a.cache)
    load_before = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="twin-bench-import-", dir=a.cache))
    try:
        fresh = _fresh_imports(export, work, rounds)
        again = measure_cli(export, work / "raw0", work / "again.log")  # step 2: re-import
        print(f"re-import: {again['wall_s']:.1f}s wall, {again['max_rss_mb']:.0f} MiB peak", flush=True)
        profile = _profile(export, work / "profile")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()[0]

    wall = median([r["wall_s"] for r in fresh])
    rss = max(r["max_rss_mb"] for r in fresh)
    report = {
        "command": "python -m bench.bench_import" + (" --quick" if a.quick else ""),
        "date": today(),
        "machine": machine(),
        "messages": n,
        "export_mb": export.stat().st_size / 2**20,
        "records_written": fresh[0]["records"],
        "dialog_files": fresh[0]["files"],
        "rounds": fresh,
        "wall_s": wall,
        "cpu_s": median([r["cpu_s"] for r in fresh]),
        "max_rss_mb": rss,
        "messages_per_s": n / wall,
        "reimport": again,
        "profile": profile,
        "load_avg": [load_before, load_after],
        "targets": {"wall_s": TARGET_S, "max_rss_mb": TARGET_MB, "met": wall < TARGET_S and rss < TARGET_MB},
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    _print_table(report)
    if write:
        write_results_row(_results_row(report))
        print(f"row appended to {RESULTS.relative_to(REPO)}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
