"""The owner's edits of ``twin drafts`` suggestions: one record per suggestion, what was then sent.

``twin drafts`` writes them, ``twin eval`` reads them for the acceptance figures, ``twin train``
for preference pairs (chosen = what the owner sent, rejected = the twin's draft). The files:

``<dir>/<dialog_id>.jsonl`` (default ``data/feedback/``), mode 0600 in a 0700 directory, one object
a line: ``ts`` (UTC ISO 8601 ``Z``, when the suggestion was written), ``dialog_id``, ``contact``,
``context`` ([{role, text}], as in examples), ``instruction`` (the message replied to), ``draft``
(the suggestion), ``sent`` (what the owner sent, or null), ``outcome`` (``unchanged`` | ``edited`` |
``other`` | ``none``) and ``edit_distance`` (characters, Levenshtein, or null). Every text in them is
scrubbed by the writer (:mod:`twin.text.scrub`); this module never sees raw chat text from disk.
"""

from __future__ import annotations

import os
import statistics
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from twin.errors import TwinError
from twin.fileio import atomic_open, iter_jsonl

DEFAULT_DIR = Path("data/feedback")
OUTCOMES = ("unchanged", "edited", "other", "none")
KEYS = ("ts", "dialog_id", "contact", "context", "instruction", "draft", "sent", "outcome", "edit_distance")
EDITED_MAX_SHARE = 0.5  # at most this share of the longer text changed: an edit of the draft, else "other"
MAX_DISTANCE_CHARS = 2000  # texts are cut to this before the quadratic distance


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance in characters (insert, delete, substitute), two rows of memory."""
    a, b = a[:MAX_DISTANCE_CHARS], b[:MAX_DISTANCE_CHARS]
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def outcome(draft: str, sent: str | None, answered: bool) -> tuple[str, int | None]:
    """``(outcome, edit_distance)`` of a suggestion: ``sent`` is the owner's text (None: no text).

    ``answered`` without text (a photo, a location) is "other"; no answer at all is "none".
    """
    if sent is None:
        return ("other" if answered else "none"), None
    d = edit_distance(draft.strip(), sent.strip())
    if d == 0:
        return "unchanged", 0
    longer = max(len(draft.strip()), len(sent.strip()))
    return ("edited" if d <= EDITED_MAX_SHARE * longer else "other"), d


def check_dir(directory: str | os.PathLike) -> Path:
    """Create ``directory`` 0700 (and chmod it so, on purpose) or say in one line why it cannot be."""
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path, 0o700)
    except OSError as e:
        raise TwinError(
            f"{path}: cannot use it for drafts feedback ({e.strerror}); "
            "choose another with --feedback-dir or turn it off with --no-feedback"
        ) from None
    return path


def append_record(directory: str | os.PathLike, record: dict) -> Path:
    """Add one record to its dialog's file: the whole file rewritten atomically, mode 0600."""
    missing = [k for k in KEYS if k not in record]
    if missing or record["outcome"] not in OUTCOMES:
        raise ValueError(f"feedback record: missing {missing} or bad outcome")
    path = check_dir(directory) / f"{int(record['dialog_id'])}.jsonl"
    import orjson

    old = path.read_bytes() if path.is_file() else b""
    if old and not old.endswith(b"\n"):
        old += b"\n"
    with atomic_open(path, "wb") as f:
        os.fchmod(f.fileno(), 0o600)  # chat-derived: the owner's only, whatever the umask
        f.write(old + orjson.dumps({k: record[k] for k in KEYS}) + b"\n")
    return path


def read_feedback(directory: str | os.PathLike) -> list[dict]:
    """Every record under ``directory`` (``<dialog_id>.jsonl`` files), oldest first; [] if none.
    A record that breaks the contract is a TwinError naming ``file:line``."""
    path = Path(directory)
    if not path.is_dir():
        return []
    out: list[dict] = []
    for file in sorted(path.glob("*.jsonl")):
        for lineno, obj in iter_jsonl(file, hint="it should hold drafts feedback written by `twin drafts`"):
            problem = _contract_problem(obj)
            if problem:
                raise TwinError(f"{file}:{lineno}: {problem}; fix or delete that line")
            out.append(obj)
    return sorted(out, key=lambda r: r["ts"])


def _contract_problem(obj: object) -> str | None:
    """What makes ``obj`` not a feedback record, or None."""
    if not isinstance(obj, dict):
        return "expected a JSON object per line"
    missing = [k for k in KEYS if k not in obj]
    if missing:
        return f"not a drafts feedback record: missing field(s) {', '.join(missing)}"
    if obj["outcome"] not in OUTCOMES or not isinstance(obj["ts"], str):
        return f"not a drafts feedback record: outcome must be one of {', '.join(OUTCOMES)} and ts a string"
    context = obj["context"]
    if not isinstance(context, list) or not all(
        isinstance(t, dict) and isinstance(t.get("text"), str) for t in context
    ):
        return "'context' must be a list of {role, text}"
    return None


def week_of(ts: str) -> str:
    """The ISO week of a ``Z`` timestamp, e.g. ``2026-W49``."""
    year, week, _ = datetime.fromisoformat(ts.replace("Z", "+00:00")).isocalendar()
    return f"{year}-W{week:02d}"


def acceptance_by_week(records: Iterable[dict]) -> list[dict]:
    """Per ISO week, oldest first: ``week``, ``n`` suggestions, each outcome's count, ``share_unchanged``
    (sent as suggested, of all suggestions) and ``median_edit_distance`` (over those the owner
    answered with text: unchanged, edited or other; null when none)."""
    weeks: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        weeks[week_of(r["ts"])].append(r)
    out = []
    for week in sorted(weeks):
        rows = weeks[week]
        counts = {o: sum(r["outcome"] == o for r in rows) for o in OUTCOMES}
        distances = [r["edit_distance"] for r in rows if r.get("edit_distance") is not None]
        out.append({
            "week": week, "n": len(rows), **counts, "share_unchanged": counts["unchanged"] / len(rows),
            "median_edit_distance": statistics.median(distances) if distances else None,
        })  # fmt: skip
    return out


def acceptance(records: list[dict]) -> dict | None:
    """``eval.json``'s ``acceptance``: overall ``n``, ``share_unchanged``, ``median_edit_distance``
    and ``weeks`` (:func:`acceptance_by_week`); None without records."""
    if not records:
        return None
    distances = [r["edit_distance"] for r in records if r.get("edit_distance") is not None]
    return {
        "n": len(records),
        "share_unchanged": sum(r["outcome"] == "unchanged" for r in records) / len(records),
        "median_edit_distance": statistics.median(distances) if distances else None,
        "weeks": acceptance_by_week(records),
    }


def preference_pairs(records: Iterable[dict]) -> list[dict]:
    """Pairs for the preference stage where the owner rewrote a suggestion (edited or other):
    chosen = what they sent, rejected = the draft."""
    pairs = []
    for r in records:
        sent, draft = (r.get("sent") or "").strip(), (r.get("draft") or "").strip()
        if r["outcome"] in ("edited", "other") and sent and draft and sent != draft:
            prompt = {
                "contact": r.get("contact"),
                **({"group": True, "members": r.get("members") or []} if r.get("group") else {}),
                "context": r.get("context") or [],
                "instruction": r.get("instruction"),
            }
            pairs.append({**prompt, "chosen": sent, "rejected": draft})
    return pairs
