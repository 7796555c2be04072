"""Instruction examples from sessions, the train/val split, and other tools' formats (pure functions).

For every turn of mine that follows a turn of theirs: ``instruction`` = their turn, ``response`` =
my turn, ``context`` = the earlier turns of the session, cut from the oldest side by
:func:`twin.prompt.fit_context`. A session that opens with my turn uses it as context only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

from twin.prompt import fit_context, system_prompt
from twin.text.sessions import Session, Turn


def session_examples(
    session: Session,
    *,
    contact: str | None,
    budget: int,
    count: Callable[[str], int] = len,
) -> list[dict]:
    """The examples of one session, in order; field order matches the documented format."""
    turns: Sequence[Turn] = session.turns
    all_ctx = [{"role": t.role, "text": t.text} for t in turns]
    out = []
    for i in range(1, len(turns)):
        if turns[i].role == "me" and turns[i - 1].role == "them":
            out.append(
                {
                    "dialog_id": session.dialog_id,
                    "session": session.id,
                    "contact": contact,
                    "context": fit_context(all_ctx[: i - 1], budget, count),
                    "instruction": turns[i - 1].text,
                    "response": turns[i].text,
                }
            )
    return out


def in_val(session_id: str, val_fraction: float, seed: int = 0) -> bool:
    """Deterministic split by session: a hash of the id, not a random draw, so reruns agree."""
    return val_fraction > 0 and session_hash(session_id, seed) / 2**64 < val_fraction


def session_hash(session_id: str, seed: int = 0) -> int:
    """A stable 64-bit hash of a session id (salted with ``seed``)."""
    return int.from_bytes(hashlib.blake2b(f"{seed}:{session_id}".encode(), digest_size=8).digest(), "big")


def _pairs(context: Sequence[dict]) -> list[tuple[str, str]]:
    """Context as (their turn, my reply) pairs; a lone leading turn of mine has no pair and is dropped."""
    pairs = []
    pending: str | None = None
    for t in context:
        if t["role"] == "them":
            pending = t["text"] if pending is None else pending + "\n" + t["text"]
        elif pending is not None:
            pairs.append((pending, t["text"]))
            pending = None
    return pairs


def to_alpaca(ex: dict) -> dict:
    """LLaMA-Factory / axolotl alpaca row: instruction, input, output, system, history [[q, a], ...]."""
    return {
        "instruction": ex["instruction"],
        "input": "",
        "output": ex["response"],
        "system": system_prompt(ex.get("contact")),
        "history": [list(p) for p in _pairs(ex["context"])],
    }


def to_sharegpt(ex: dict) -> dict:
    """ShareGPT row: conversations alternating human/gpt, ending with my reply."""
    conv = []
    for q, a in _pairs(ex["context"]):
        conv.append({"from": "human", "value": q})
        conv.append({"from": "gpt", "value": a})
    conv.append({"from": "human", "value": ex["instruction"]})
    conv.append({"from": "gpt", "value": ex["response"]})
    return {"conversations": conv, "system": system_prompt(ex.get("contact"))}


CONVERTERS: dict[str, Callable[[dict], dict]] = {"alpaca": to_alpaca, "sharegpt": to_sharegpt}


def dataset_info(formats: Iterable[str]) -> dict:
    """LLaMA-Factory's ``dataset_info.json`` entries for the files written (``dataset_dir`` = out)."""
    info = {}
    for fmt in formats:
        for split in ("train", "val"):
            entry: dict = {"file_name": f"{split}.{fmt}.jsonl", "formatting": fmt}
            if fmt == "alpaca":
                entry["columns"] = {
                    "prompt": "instruction",
                    "query": "input",
                    "response": "output",
                    "system": "system",
                    "history": "history",
                }
            else:
                entry["columns"] = {"messages": "conversations", "system": "system"}
                entry["tags"] = {
                    "role_tag": "from",
                    "content_tag": "value",
                    "user_tag": "human",
                    "assistant_tag": "gpt",
                }
            info[f"twin_{split}_{fmt}"] = entry
    return info
