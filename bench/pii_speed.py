"""Scrub-only CPU time per text: the prepare benchmark's chat lines (alone, in dialogs) and the ordinary lines.

    .venv/bin/python bench/pii_speed.py --raw bench/out/prepare-raw-1000000     # this tree
    PYTHONPATH=/tmp/old .venv/bin/python bench/pii_speed.py --raw ...          # an exported older tree

Run by path, the script takes ``twin`` from ``PYTHONPATH``, so the same command times an older tree
(``git archive <commit> | tar -x -C /tmp/old``) against this one; alternate the two a few times on a
shared machine. CPU time (``time.process_time``), the best of ``--reps`` passes; one ``Scrubber``
per dialog as ``twin prepare`` uses it. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "pii"


def chat_dialogs(raw: Path, limit: int) -> list[list[str]]:
    """The non-empty texts of the first dialogs of a ``bench_prepare`` raw set, up to ``limit`` records."""
    dialogs, seen = [], 0
    for f in sorted((raw / "telegram").glob("*.jsonl")):
        recs = [json.loads(ln) for ln in f.read_text(encoding="utf-8").splitlines() if ln.strip()]
        dialogs.append([r["text"] for r in recs if r.get("text")])
        seen += len(recs)
        if seen >= limit:
            break
    return dialogs


def ordinary_dialogs(copies: int) -> list[list[str]]:
    """``ordinary.txt`` + ``clean.txt`` (digit-heavy: nearly every line passes the fast trigger)."""
    lines = [
        ln
        for name in ("ordinary.txt", "clean.txt")
        for ln in (CORPUS / name).read_text(encoding="utf-8").splitlines()
        if ln.strip()
    ]
    return [lines] * copies


def us_per_text(dialogs: list[list[str]], reps: int) -> float:
    from twin.text.scrub import Scrubber

    n = sum(map(len, dialogs))
    best = float("inf")
    for _ in range(reps):
        t0 = time.process_time()
        for texts in dialogs:
            scrub = Scrubber("US,RU").scrub
            for t in texts:
                scrub(t)
        best = min(best, time.process_time() - t0)
    return round(best / n * 1e6, 2)


def us_per_text_in_dialogs(dialogs: list[list[str]], reps: int) -> float:
    """The same through ``scrub_messages``, as ``twin prepare`` calls it: each text with the one
    before it in view (answers to a question, numbers typed over several messages)."""
    from twin.text.scrub import Scrubber, scrub_messages

    n = sum(map(len, dialogs))
    best = float("inf")
    for _ in range(reps):
        t0 = time.process_time()
        for texts in dialogs:
            scrub_messages(texts, Scrubber("US,RU"))
        best = min(best, time.process_time() - t0)
    return round(best / n * 1e6, 2)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="bench/pii_speed.py", description=__doc__.splitlines()[0])
    ap.add_argument("--raw", type=Path, help="a bench_prepare raw set (bench/out/prepare-raw-<n>)")
    ap.add_argument("--messages", type=int, default=300_000, help="records of --raw to scrub")
    ap.add_argument("--copies", type=int, default=20, help="passes over the ordinary lines per rep")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    import twin

    out: dict = {"twin": str(Path(twin.__file__).parent.parent)}
    if args.raw is not None:
        if not (args.raw / "telegram").is_dir():
            print(
                f"--raw {args.raw}: no telegram/ folder; run python -m bench.bench_prepare first",
                file=sys.stderr,
            )
            raise SystemExit(2)
        chats = chat_dialogs(args.raw, args.messages)
        out["chat_texts"] = sum(map(len, chats))
        out["chat_us_per_text"] = us_per_text(chats, args.reps)
        out["chat_us_per_text_in_dialogs"] = us_per_text_in_dialogs(chats, args.reps)
    ordinary = ordinary_dialogs(args.copies)
    out["ordinary_lines"] = sum(map(len, ordinary))
    out["ordinary_us_per_line"] = us_per_text(ordinary, args.reps)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
