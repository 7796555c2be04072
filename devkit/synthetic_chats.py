"""Synthetic chats in the prepare output format, for tests and benchmarks (never for real training).

A small persona: "me" answers short and lowercase, with habits ("ok ok", "haha") a LoRA picks up in
a few steps, in English and Russian, across a few contacts. ``context_turns`` makes prompts longer
(real chats carry several previous turns), which is what makes padding and batching matter.
"""

from __future__ import annotations

import random
from pathlib import Path

_THEM = [
    "are you coming tonight?",
    "did you see the news?",
    "can you help me move on saturday?",
    "what time is the meeting?",
    "how was the trip?",
    "wanna grab coffee?",
    "привет, как дела?",
    "ты завтра свободен?",
    "happy birthday!!",
    "where did you park?",
]
_ME = [
    "ok ok, be there at 8",
    "haha yes, crazy stuff",
    "sure thing, ping me friday",
    "at 3 i think, ok ok",
    "amazing, so much sun haha",
    "yes!! usual place?",
    "норм, работаю. ты как?",
    "да, после шести",
    "thanks!! ok ok",
    "behind the shop, haha",
]
_CONTACTS = ["Alice", "Bob", "Мама", None]


def synthetic_examples(n: int, seed: int = 0, max_context_pairs: int = 3) -> list[dict]:
    """``n`` examples; each has 0..``max_context_pairs`` earlier them/me exchanges as context."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        k = rng.randrange(len(_THEM))
        ctx: list[dict] = []
        for _ in range(rng.randrange(0, max_context_pairs + 1)):
            j = rng.randrange(len(_THEM))
            ctx += [{"role": "them", "text": _THEM[j]}, {"role": "me", "text": _ME[j]}]
        dialog = 1000 + rng.randrange(len(_CONTACTS))
        rows.append(
            {
                "dialog_id": dialog,
                "session": f"{dialog}-{i}",
                "contact": _CONTACTS[dialog - 1000],
                "context": ctx[-2 * max_context_pairs :] if max_context_pairs else [],
                "instruction": _THEM[k],
                "response": _ME[k],
            }
        )
    return rows


def write_synthetic_processed(
    out: str | Path,
    n_train: int = 96,
    n_val: int = 16,
    seed: int = 0,
    *,
    max_context_pairs: int = 2,
    stats: bool = True,
) -> Path:
    """A ``data/processed``-style dir: train.jsonl, val.jsonl and (optionally) stats.json."""
    from twin.fileio import atomic_write_json, atomic_write_jsonl

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_jsonl(out / "train.jsonl", synthetic_examples(n_train, seed, max_context_pairs))
    atomic_write_jsonl(out / "val.jsonl", synthetic_examples(n_val, seed + 1, max_context_pairs))
    if stats:
        atomic_write_json(
            out / "stats.json",
            {
                "config": {
                    "max_context_tokens": 200,
                    "context_unit": "tokens",
                    "chars_per_token": 3.5,
                    "tokenizer": None,
                    "scrub": True,
                    "synthetic": True,
                },
                "counts": {"train": n_train, "val": n_val},
                "pii": {},
                "lengths": {},
            },
        )
    return out
