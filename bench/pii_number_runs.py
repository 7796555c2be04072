"""PII scrubber on runs of numbers: false positives on random scores/lists, recall on real phone formats.

    .venv/bin/python bench/pii_number_runs.py                  # this tree
    PYTHONPATH=/tmp/old .venv/bin/python bench/pii_number_runs.py     # an exported older tree

Two seeded sets of chat lines with no PII: runs of 4-10 one- and two-digit numbers ("score 20 15 30
45 67": scores, counts, lists) and runs of 3-6 numbers of which ~40% have three digits ("98 34 547
97 834"), each after "score", "счёт", "рахунок", before "баллов" or alone; counted changed under
the regions ``tests/test_scrub_adversarial.py`` uses. And the example numbers ``phonenumbers`` gives
for every region of ``pii_phones.WORLD`` (mobile and fixed line), in the forms people type them:
national in its own region, national after a phone word (default regions), international with "+",
and international without the "+" in its own region. Run by path, the script takes ``twin`` from
``PYTHONPATH``. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import sys

CONTEXTS = ("score {}", "{} баллов", "счёт {}", "рахунок {} ok", "{}")
REGIONS = (("US,RU", ()), ("US", ()), ("GB,DE", ()), ("US,RU", ("UA", "LK")))


def number_runs(n: int, seed: int = 1) -> tuple[list[str], list[str]]:
    """``n`` lines of small-number runs and ``n`` of mixed runs (with three-digit numbers)."""
    rng = random.Random(seed)

    def run(k: int, big: float) -> str:
        nums = (
            rng.randint(100, 999) if rng.random() < big else rng.randint(0, 99 if rng.random() < 0.6 else 9)
            for _ in range(k)
        )
        return rng.choice(CONTEXTS).format(" ".join(map(str, nums)))

    small = [run(rng.randint(4, 10), 0.0) for _ in range(n)]
    mixed = [run(rng.randint(3, 6), 0.4) for _ in range(n)]
    return small, mixed


def false_positives(small: list[str], mixed: list[str]) -> dict:
    from twin.text.scrub import Scrubber

    out = {}
    for region, extra in REGIONS:
        s = Scrubber(region, extra=extra)
        name = region + ("+" + ",".join(extra) if extra else "")
        out[name] = {
            "small": sum(s.scrub(t) != t for t in small),
            "mixed": sum(s.scrub(t) != t for t in mixed),
        }
    return out


def phone_recall() -> dict:
    import phonenumbers as pn

    from twin.text.pii_phones import WORLD
    from twin.text.scrub import Scrubber

    caught = {"national, own region": 0, "national after a phone word": 0, "+international": 0}
    caught["international without +, own region"] = 0
    n = 0
    for region in WORLD:
        own = Scrubber(region)
        for kind in (pn.PhoneNumberType.MOBILE, pn.PhoneNumberType.FIXED_LINE):
            num = pn.example_number_for_type(region, kind)
            if num is None:
                continue
            n += 1
            nat = pn.format_number(num, pn.PhoneNumberFormat.NATIONAL)
            intl = pn.format_number(num, pn.PhoneNumberFormat.INTERNATIONAL)
            caught["national, own region"] += "[PHONE]" in own.scrub(f"here {nat} ok")
            caught["national after a phone word"] += "[PHONE]" in Scrubber().scrub(f"my number {nat} ok")
            caught["+international"] += "[PHONE]" in Scrubber().scrub(f"here {intl} ok")
            caught["international without +, own region"] += "[PHONE]" in own.scrub(f"here {intl[1:]} ok")
    return {"phones": n, **caught}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="bench/pii_number_runs.py", description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=3000, help="lines of each kind of run")
    args = ap.parse_args(argv)
    small, mixed = number_runs(args.lines)
    out = {
        "lines_each": args.lines,
        "changed": false_positives(small, mixed),
        "phones_caught": phone_recall(),
    }
    print(json.dumps(out, ensure_ascii=False))
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
