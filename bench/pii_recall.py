"""PII scrubber recall and false positives on the hand-written adversarial corpus.

    .venv/bin/python -m bench.pii_recall            # per-kind recall, changed ordinary lines

Cases: ``tests/data/pii/adversarial.jsonl`` (one case a line: its messages in order and the
values that must be gone from every scrubbed message), scrubbed the way ``twin prepare`` scrubs a
dialog (the default ``--region US,RU`` plus the regions inferred from the case's own text).
Ordinary lines: ``tests/data/pii/ordinary.txt`` and ``clean.txt``, each must come out unchanged.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "pii"


def load_cases(path: Path = CORPUS / "adversarial.jsonl") -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_ordinary(*names: str) -> list[str]:
    lines: list[str] = []
    for name in names or ("ordinary.txt", "clean.txt"):
        lines += [ln for ln in (CORPUS / name).read_text(encoding="utf-8").splitlines() if ln.strip()]
    return lines


def scrub_case(messages: list[str], region: str = "US,RU") -> list[str]:
    """The messages of one case as ``twin prepare`` leaves them."""
    from twin.text.scrub import Scrubber, infer_regions, scrub_messages

    return scrub_messages(messages, Scrubber(region, extra=infer_regions(messages)))


def leaked(case: dict, out: list[str]) -> list[str]:
    """The values of a case still present in its scrubbed messages."""
    return [v for v in case["values"] if any(v in text for text in out)]


def measure(region: str = "US,RU") -> dict:
    """Recall per kind and the ordinary lines changed (speed: ``python -m bench.bench_prepare``)."""
    from twin.text.scrub import Scrubber

    cases, ordinary = load_cases(), load_ordinary()
    total, caught, misses = Counter(), Counter(), []
    for case in cases:
        total[case["kind"]] += 1
        out = scrub_case(case["messages"], region)
        if leaked(case, out):
            misses.append((case["kind"], case["messages"], out))
        else:
            caught[case["kind"]] += 1
    scrubber = Scrubber(region)
    changed = [(ln, out) for ln in ordinary if (out := scrubber.scrub(ln)) != ln]
    return {
        "recall": {k: (caught[k], total[k]) for k in total},
        "cases": (sum(caught.values()), len(cases)),
        "ordinary_changed": (len(changed), len(ordinary)),
        "misses": misses,
        "changed": changed,
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="bench.pii_recall", description=__doc__.splitlines()[0])
    ap.add_argument("--region", default="US,RU")
    ap.add_argument("--show", action="store_true", help="print the misses and changed lines (test data only)")
    args = ap.parse_args(argv)
    r = measure(args.region)
    print("| kind | removed | cases |\n|---|---:|---:|")
    for kind, (c, t) in r["recall"].items():
        print(f"| {kind} | {c} | {t} |")
    c, t = r["cases"]
    n, m = r["ordinary_changed"]
    print(f"\nadversarial cases removed: {c}/{t} = {c / t:.1%}")
    print(f"ordinary lines changed: {n}/{m} = {n / m:.2%}")
    if args.show:
        for miss in r["misses"]:
            print("MISS", miss)
        for ch in r["changed"]:
            print("CHANGED", ch)
    return r


if __name__ == "__main__":
    main(sys.argv[1:])
