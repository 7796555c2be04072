"""Prepare-stage benchmark: raw messages -> sessions, scrub, examples, split, written files.

    .venv/bin/python -m bench.bench_prepare            # 1,000,000 messages, 2 workers
    .venv/bin/python -m bench.bench_prepare --quick    # smoke: 20,000 messages

Raw records are generated once (deterministic, chat-like EN/RU text with ~2% PII, media-only
messages, bursts and session gaps) and cached under ``bench/out/prepare-raw-<n>/``. Reports the
end-to-end rate of ``run_prepare`` (the real stage, both cores), the peak RSS of the parent and of
the largest worker, and a single-process profile of where the time goes per phase.
Results: a table on stdout and ``bench/out/prepare.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"

PHRASES_EN = [
    "hey, free tomorrow?",
    "sounds good 👍",
    "what time?",
    "at 7:30 near the park",
    "lol",
    "ok",
    "did you see the game yesterday? crazy second half",
    "i'll be there in 10 minutes",
    "no worries",
    "can you review the PR today? the client asked about it",
    "tickets are $45 each",
    "haha same",
    "running late, order #48213 still not here",
    "updated to v2.3.1 and it works now",
    "tbh i forgot 😅",
    "let's do lunch on friday at 12:30",
    "how was your trip?",
    "it was amazing, photos later",
]
PHRASES_RU = [
    "привет! как дела?",
    "норм, ты как?",
    "давай в 19:30 у метро",
    "ну такое",
    "короче, я опоздаю",
    "ок, понял 👌",
    "скинь фотки",
    "вышло 1500 ₽ на двоих",
    "заказ №12345678 так и не пришёл",
    "ахах",
    "завтра созвон в 11:00, не забудь",
    "обновись до 1.14.0, там починили",
    "давай)",
    "спасибо!",
]
PII = [
    "my email is alex.{n}@example.com",
    "call me +7 916 {a}-{b}-{c}",
    "пароль: Kotik{n}!",
    "card 4111 1111 1111 1111",
    "server 10.0.{b}.{c}",
    "token ghp_{tok}",
    "код из смс {n}{n}",
]


def generate_raw(root: Path, n_messages: int, seed: int = 0) -> Path:
    """``root/telegram/<dialog>.jsonl``, ~2,500 messages per dialog (cached by size + seed)."""
    from twin.records import dumps_record, iso_utc

    stamp = root / ".complete"
    if stamp.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    (root / "telegram").mkdir(parents=True)
    rng = random.Random(seed)
    per_dialog = 2500
    n_dialogs = max(1, n_messages // per_dialog)
    for d in range(n_dialogs):
        did = 100000 + d
        name = f"Contact {d}"
        t = 1_700_000_000 + rng.randint(0, 86400)
        lines = []
        out = rng.random() < 0.5
        count = per_dialog if d < n_dialogs - 1 else n_messages - per_dialog * (n_dialogs - 1)
        phrases = PHRASES_RU if d % 2 else PHRASES_EN
        for i in range(count):
            if rng.random() < 0.08:
                t += rng.randint(30 * 3600, 96 * 3600)  # a new session
            else:
                t += rng.randint(5, 900)
            if rng.random() < 0.55:
                out = not out
            r = rng.random()
            media = None
            if r < 0.05:
                text, media = "", rng.choice(["photo", "sticker", "voice"])
            elif r < 0.07:
                text = rng.choice(PII).format(
                    n=rng.randint(1000, 9999), a=rng.randint(100, 999), b=rng.randint(10, 99),
                    c=rng.randint(10, 99), tok="".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=36)),
                )  # fmt: skip
            else:
                text = rng.choice(phrases)
                if rng.random() < 0.3:
                    text += " " + rng.choice(phrases)
            rec = {
                "source": "telegram", "dialog_id": did, "dialog_name": name, "id": i + 1, "date": iso_utc(t),
                "out": out, "text": text, "reply_to": None, "forwarded": rng.random() < 0.01, "media": media,
            }  # fmt: skip
            lines.append(dumps_record(rec))
        (root / "telegram" / f"{did}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    stamp.touch()
    return root


def profile_phases(raw: Path, max_messages: int) -> dict:
    """Single-process time per phase over the first dialogs (up to ``max_messages`` messages)."""
    from twin.prepare.config import PrepareConfig
    from twin.prepare.pipeline import dumps_line, read_records
    from twin.prepare.session_examples import session_examples
    from twin.text.scrub import Scrubber
    from twin.text.sessions import build_sessions

    cfg = PrepareConfig()
    files = sorted((raw / "telegram").glob("*.jsonl"))
    clock = time.process_time  # CPU time: on a shared machine wall time mostly measures the neighbours
    t = dict.fromkeys(
        ("read+validate", "sessions+turns", "scrub", "examples (fit_context)", "serialize"), 0.0
    )
    n = 0
    for f in files:
        if n >= max_messages:
            break
        t0 = clock()
        recs = read_records(f)
        t1 = clock()
        scrubber = Scrubber(cfg.region)
        for r in recs:
            if r["text"]:
                r["text"] = scrubber.scrub(r["text"])
        t2 = clock()
        sessions = build_sessions(recs, cfg.gap_hours)
        t3 = clock()
        exs = [e for s in sessions for e in session_examples(s, contact="x", budget=cfg.context_budget)]
        t4 = clock()
        for e in exs:
            dumps_line(e)
        t5 = clock()
        t["read+validate"] += t1 - t0
        t["scrub"] += t2 - t1
        t["sessions+turns"] += t3 - t2
        t["examples (fit_context)"] += t4 - t3
        t["serialize"] += t5 - t4
        n += len(recs)
    total = sum(t.values())
    return {
        "messages": n,
        "seconds": round(total, 3),
        "phases": {
            k: {"us_per_message": round(v / n * 1e6, 2), "share": round(v / total, 3)} for k, v in t.items()
        },
    }


def peak_rss_mb() -> dict:
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"parent_mb": round(self_kb / 1024, 1), "largest_worker_mb": round(child_kb / 1024, 1)}


def _cpu_seconds() -> tuple[float, float]:
    """User + system CPU time of (this process, its finished children = the pool's workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="bench.bench_prepare", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20,000 messages (smoke)")
    ap.add_argument("--messages", type=int, default=None)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=OUT / "prepare.json")
    ap.add_argument("--cache", type=Path, default=OUT)
    return ap.parse_args(argv)


def _timed_prepare(raw: Path, work: Path, workers: int, quick: bool) -> dict:
    """One ``run_prepare`` of ``raw``: its stats, wall and CPU seconds, load average and peak RSS."""
    from twin.prepare import pipeline
    from twin.prepare.config import PrepareConfig

    if quick:
        pipeline._POOL_MIN_BYTES = 0  # exercise the pool even at smoke size
    cfg = PrepareConfig(raw=str(raw), out=str(work / "processed"), workers=workers)
    load_before = os.getloadavg()[0]
    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    stats = pipeline.run_prepare(cfg)
    wall = time.perf_counter() - t0
    cpu1 = _cpu_seconds()
    return {
        "stats": stats,
        "wall": wall,
        "cpu_parent": cpu1[0] - cpu0[0],
        "cpu_workers": cpu1[1] - cpu0[1],
        "load": (load_before, os.getloadavg()[0]),
        "rss": peak_rss_mb(),
    }


def _print_tables(report: dict, run: dict) -> None:
    n, wall, rss, prof = report["messages"], run["wall"], run["rss"], report["profile_single_process"]
    load_before, load_after = run["load"]
    print(
        "| messages | workers | wall s | messages/s | CPU s parent + workers | examples | PII hits "
        "| peak RSS parent / worker | load avg before / after |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {n:,} | {report['workers']} | {wall:.1f} | {n / wall:,.0f} | "
        f"{run['cpu_parent']:.1f} + {run['cpu_workers']:.1f} | {report['examples']:,} | "
        f"{report['pii_hits']:,} | {rss['parent_mb']:.0f} MB / {rss['largest_worker_mb']:.0f} MB "
        f"| {load_before:.1f} / {load_after:.1f} |"
    )
    print(f"\nsingle-process profile over {prof['messages']:,} messages ({prof['seconds']} s):")
    print("| phase | µs / message | share |\n|---|---:|---:|")
    for k, v in prof["phases"].items():
        print(f"| {k} | {v['us_per_message']} | {v['share']:.0%} |")


def main(argv: list[str] | None = None) -> dict:
    args = _parse_args(argv)
    n = args.messages or (20_000 if args.quick else 1_000_000)
    t0 = time.perf_counter()
    raw = generate_raw(args.cache / f"prepare-raw-{n}", n)
    gen_s = time.perf_counter() - t0
    raw_mb = sum(p.stat().st_size for p in (raw / "telegram").glob("*.jsonl")) / 1e6

    work = Path(tempfile.mkdtemp(prefix="bench-prepare-"))
    try:
        run = _timed_prepare(raw, work, args.workers, args.quick)
        prof = profile_phases(raw, min(n, 100_000))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    wall, cpu = run["wall"], run["cpu_parent"] + run["cpu_workers"]
    report = {
        "messages": n,
        "raw_mb": round(raw_mb, 1),
        "workers": args.workers,
        "seconds": round(wall, 2),
        "messages_per_s": round(n / wall),
        "cpu_seconds": round(cpu, 1),
        "cpu_seconds_parent_workers": [round(run["cpu_parent"], 1), round(run["cpu_workers"], 1)],
        "messages_per_cpu_s": round(n / cpu),
        "load_average_before_after": [round(x, 1) for x in run["load"]],
        "examples": run["stats"]["counts"]["examples"],
        "pii_hits": sum(run["stats"]["pii"].values()),
        "peak_rss": run["rss"],
        "profile_single_process": prof,
        "generate_seconds": round(gen_s, 1),
        "command": "python -m bench.bench_prepare" + (" --quick" if args.quick else ""),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    _print_tables(report, run)
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
