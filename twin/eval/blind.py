"""The blind test's score: how often the owner took the twin's reply for their own.

The chat page's "Is it me?" tab appends one line per round to ``checkpoints/runs/<run>/blind.jsonl``:
``{"run", "prompt", "session", "adapter", "real": "A"|"B", "pick": "A"|"B"|"unsure", "seconds", "at"}``
(ids, sides and timing; no chat text). A pick of the side that was not ``real`` took the twin for
the owner. "Can't tell" counts as half a pick for each side, so the rate is what a coin flip would
give: 50% means the owner cannot tell the twin from themselves, 0% that they always can.
"""

from __future__ import annotations

import html
from pathlib import Path

from twin.errors import TwinError
from twin.eval.intervals import wilson_interval
from twin.fileio import iter_jsonl

POSITIONS = ("A", "B")  # where the real reply was shown: left (A) or right (B)
PICKS = ("A", "B", "unsure")


def read_blind(path: Path) -> list[dict]:
    """The rounds in ``blind.jsonl``; a malformed line is a TwinError naming the file and line."""
    rounds = []
    for n, row in iter_jsonl(path, hint="delete that line and run again"):
        if not isinstance(row, dict) or row.get("real") not in POSITIONS or row.get("pick") not in PICKS:
            raise TwinError(
                f"{path}:{n}: needs 'real' in A/B and 'pick' in A/B/unsure; delete that line to go on"
            )
        rounds.append(row)
    return rounds


def blind_score(path: str | Path) -> dict | None:
    """Rate at which the twin was picked as the real one, with a 95% Wilson interval; None: no test yet."""
    path = Path(path)
    if not path.is_file():
        return None
    rounds = read_blind(path)
    unsure = sum(r["pick"] == "unsure" for r in rounds)
    real = sum(r["pick"] == r["real"] for r in rounds)
    twin = len(rounds) - unsure - real
    score = twin + unsure / 2
    low, high = wilson_interval(score, len(rounds))
    return {
        "rounds": len(rounds),
        "twin_picked": twin,
        "real_picked": real,
        "unsure": unsure,
        "rate": score / len(rounds) if rounds else None,
        "low": low,
        "high": high,
        "median_seconds": _median([float(r.get("seconds") or 0) for r in rounds]),
    }


def _median(xs: list[float]) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2


def blind_sentence(score: dict | None, run: str) -> str:
    """One line for the log and the report."""
    if not score or not score["rounds"]:
        return (
            'no blind test yet: take it in the chat page\'s "Is it me?" tab (make chat), '
            # `twin eval --run NAME` alone is refused (--adapter is required): the make target finds both
            f"then run `make eval RUN={run}` again"
        )
    return (
        f"blind test: the twin was taken for you in {score['rate']:.0%} of {score['rounds']} rounds "
        f"(95% interval {score['low']:.0%}-{score['high']:.0%}; 50% = indistinguishable); "
        f"picked twin {score['twin_picked']}, yours {score['real_picked']}, can't tell {score['unsure']}"
    )


def blind_section(score: dict | None, run: str) -> str:
    """The report's "Is it me?" section (HTML, numbers only)."""
    return f"<p>{html.escape(blind_sentence(score, run))}.</p>"
