"""An ``eval_samples.jsonl`` as `twin eval` writes it, for the chat page's blind tab."""

from __future__ import annotations

import json
from pathlib import Path


def write_eval_samples(runs: Path, run: str, processed: Path) -> list[dict]:
    """``<runs>/<run>/eval_samples.jsonl`` as `twin eval` writes it, from the val examples."""
    rows = [
        {"session": ex["session"], "contact": ex["contact"], "context": ex["context"],
         "message": ex["instruction"], "real": ex["response"], "base": "b", "twin": "t"}
        for ex in map(json.loads, (processed / "val.jsonl").read_text(encoding="utf-8").splitlines())
    ]  # fmt: skip
    (runs / run).mkdir(parents=True)
    (runs / run / "eval_samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows
