"""Deterministic chat-like training examples, for when the prepare stage's output is not at hand.

The comparison benchmarks prefer real pipeline output (generated export -> import -> prepare);
this fallback keeps ``compare_train`` runnable on its own. Examples follow the prepare format
(``twin/prompt.py`` renders them), with replies and contexts of varied length so batches need padding.
"""

from __future__ import annotations

import random
from pathlib import Path

from twin.fileio import atomic_write_jsonl

_VOCABULARY = (
    "hey ok sure yes no maybe later today tomorrow tonight dinner lunch coffee work home call "
    "text send photos trip game movie bus train late sorry thanks great cool fine tired busy "
    "free where when what why how see you soon love it haha lol wait come go meet station park "
    "office plan привет как дела нормально давай завтра вечером хорошо спасибо занят перезвоню позже"
)
_WORDS = tuple(_VOCABULARY.split())
_CONTACTS = ("Alice", "Bob", "Мама", "Dmitry", None)


def _line(rng: random.Random, lo: int, hi: int) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(lo, hi))]
    end = rng.choice(("", "", "!", "?", " :)", "."))
    return " ".join(words) + end


def make_examples(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        dialog = 1000 + i % 40
        turns = [
            {"role": "them" if k % 2 == 0 else "me", "text": _line(rng, 1, 14)}
            for k in range(rng.randint(0, 6))
        ]
        out.append(
            {
                "dialog_id": dialog,
                "session": f"{dialog}-{i}",
                "contact": rng.choice(_CONTACTS),
                "context": turns,
                "instruction": _line(rng, 1, 12),
                "response": _line(rng, 1, 24),
            }
        )
    return out


def write_dataset(out_dir: Path, n_train: int, n_val: int, seed: int = 0) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = make_examples(n_train + n_val, seed)
    atomic_write_jsonl(out_dir / "train.jsonl", rows[:n_train])
    atomic_write_jsonl(out_dir / "val.jsonl", rows[n_train:])
    return out_dir
