"""Other fine-tuning tools' formats of ``twin prepare``'s examples (``--format alpaca|sharegpt``):
one row per example, and LLaMA-Factory's ``dataset_info.json`` for the files written (pure functions).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from twin.prompt import system_prompt


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
        "system": system_prompt(ex.get("contact"), bool(ex.get("group"))),
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
    return {"conversations": conv, "system": system_prompt(ex.get("contact"), bool(ex.get("group")))}


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
