"""Training data: read examples, render them with THE prompt template, tokenize once, batch by length.

Each example becomes ``prompt_ids + completion_ids + [eos]``; the loss is taken on the completion
and EOS only (prompt positions and padding are labelled -100), so the model learns to reply and
to stop, never to write the prompt. Everything here runs before the model is loaded, so bad data
or a too-small ``max_seq_length`` fails in a second, not after minutes of loading.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twin.errors import TwinError
from twin.prompt import build_training_pair

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
_REQUIRED = ("context", "instruction", "response")


def read_examples(path: str | Path) -> list[dict]:
    """Examples from a prepare JSONL file; TwinError naming file:line for anything malformed."""
    p = Path(path)
    if not p.is_file():
        raise TwinError(f"{p}: not found; run `twin prepare` first (or pass --data DIR)")
    rows: list[dict] = []
    with p.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise TwinError(f"{p}:{lineno}: not valid JSON ({e}); re-run `twin prepare`") from None
            if not isinstance(row, dict):
                raise TwinError(f"{p}:{lineno}: expected a JSON object per line")
            missing = [k for k in _REQUIRED if k not in row]
            if missing:
                raise TwinError(f"{p}:{lineno}: missing field(s) {', '.join(missing)}; re-run `twin prepare`")
            if not isinstance(row["context"], list) or not isinstance(row["response"], str):
                raise TwinError(f"{p}:{lineno}: 'context' must be a list and 'response' a string")
            rows.append(row)
    if not rows:
        raise TwinError(f"{p}: no examples; export more chats or check `twin prepare`'s summary")
    return rows


def read_with_memory(
    path: str | Path, data_dir: str | Path, k: int, train_file: str = "train.jsonl"
) -> list[dict]:
    """``read_examples`` plus, when ``k`` > 0, each example's ``memory`` (the index is built if missing)."""
    examples = read_examples(path)
    if k <= 0:
        return examples
    from twin.memory import Memory, ensure_memory

    return Memory.open(ensure_memory(data_dir, train_file)).attach(examples, k)


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


@dataclass
class Encoded:
    """Tokenized examples: ``ids[i]`` is prompt + completion (+ EOS); the first ``prompt_lens[i]`` are masked."""

    ids: list[list[int]]
    prompt_lens: list[int]
    stats: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def lengths(self) -> list[int]:
        return [len(x) for x in self.ids]


def _tok(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    if not texts:
        return []
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def encode_examples(examples: Sequence[dict], tokenizer: Any, template: str, max_seq_length: int) -> Encoded:
    """Render (through ``twin.prompt``) and tokenize all examples, once.

    A prompt longer than ``max_seq_length`` loses its oldest context turns until it fits (what
    serving does with ``fit_context``); if it still does not fit the example is dropped. A reply
    running past the limit is cut (and gets no EOS: it did not end there). Counts go to ``stats``.
    """
    eos = tokenizer.eos_token_id
    # The template alone must fit with room for a reply, or no example can ever be trained on.
    header = _tok(
        tokenizer,
        [
            build_training_pair(
                {"context": [], "instruction": "", "response": ""}, template=template, tokenizer=tokenizer
            )[0]
        ],
    )[0]
    if len(header) + 2 > max_seq_length:
        raise TwinError(
            f"data.max_seq_length {max_seq_length} is smaller than the prompt template alone "
            f"({len(header)} tokens); raise it, e.g. --set data.max_seq_length=512"
        )
    pairs = [build_training_pair(ex, template=template, tokenizer=tokenizer) for ex in examples]
    prompts = _tok(tokenizer, [p for p, _ in pairs])
    completions = _tok(tokenizer, [c for _, c in pairs])
    stats = {"examples": len(examples), "context_trimmed": 0, "dropped_prompt_too_long": 0, "reply_cut": 0}
    out = Encoded([], [], stats)
    for ex, prompt_ids, comp_ids in zip(examples, prompts, completions, strict=True):
        if not comp_ids or comp_ids[-1] != eos:
            comp_ids = [*comp_ids, eos]
        if len(prompt_ids) + 1 > max_seq_length:
            prompt_ids = _refit_prompt(ex, tokenizer, template, max_seq_length)
            if prompt_ids is None:
                stats["dropped_prompt_too_long"] += 1
                continue
            stats["context_trimmed"] += 1
        room = max_seq_length - len(prompt_ids)
        if len(comp_ids) > room:
            comp_ids = comp_ids[:room]
            stats["reply_cut"] += 1
        out.ids.append(prompt_ids + comp_ids)
        out.prompt_lens.append(len(prompt_ids))
    if not out.ids:
        raise TwinError(
            f"data.max_seq_length {max_seq_length} is smaller than every prompt, so nothing is left to "
            "train on; raise data.max_seq_length or re-run `twin prepare` with a smaller context budget"
        )
    if stats["dropped_prompt_too_long"]:
        log.warning(
            "%d of %d examples dropped: their prompt alone is longer than data.max_seq_length=%d",
            stats["dropped_prompt_too_long"],
            len(examples),
            max_seq_length,
        )
    return out


def _refit_prompt(ex: dict, tokenizer: Any, template: str, max_seq_length: int) -> list[int] | None:
    """Drop the oldest context turns until the prompt leaves room for at least one reply token."""
    context = list(ex["context"])
    while context:
        context = context[1:]
        prompt, _ = build_training_pair({**ex, "context": context}, template=template, tokenizer=tokenizer)
        ids = _tok(tokenizer, [prompt])[0]
        if len(ids) + 1 <= max_seq_length:
            return ids
    return None


def make_batches(
    lengths: Sequence[int],
    micro_batch_size: int,
    *,
    seed: int,
    epoch: int,
    group_by_length: bool = True,
    pool: int = 64,
    world_size: int = 1,
) -> list[list[int]]:
    """The micro-batches (lists of example indices) of one epoch, in training order.

    Deterministic in (seed, epoch), which is what makes ``--resume`` replay the exact data order.
    With ``group_by_length``, shuffled indices are cut into pools of ``pool`` micro-batches, each
    pool sorted by length and cut into batches, and the batch order shuffled: similar lengths
    share a batch (little padding) while the order stays random. The batch count is trimmed to
    a multiple of ``world_size`` so every process runs the same number of steps.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    batches: list[list[int]] = []
    if group_by_length:
        size = micro_batch_size * pool
        for start in range(0, len(idx), size):
            chunk = sorted(idx[start : start + size], key=lambda i: lengths[i], reverse=True)
            batches.extend(chunk[j : j + micro_batch_size] for j in range(0, len(chunk), micro_batch_size))
        rng.shuffle(batches)
    else:
        batches = [idx[j : j + micro_batch_size] for j in range(0, len(idx), micro_batch_size)]
    if world_size > 1:
        keep = len(batches) - len(batches) % world_size
        if keep == 0:
            raise TwinError(
                f"only {len(batches)} micro-batch(es) for {world_size} devices; use fewer devices "
                "or a smaller micro_batch_size"
            )
        batches = batches[:keep]
    return batches


def padding_fraction(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Share of the tokens in padded batches that are padding."""
    real = padded = 0
    for b in batches:
        lens = [lengths[i] for i in b]
        real += sum(lens)
        padded += max(lens) * len(lens)
    return 1.0 - real / padded if padded else 0.0


def collate(data: Encoded, batch: Sequence[int], pad_id: int) -> dict[str, Any]:
    """Right-padded tensors for one micro-batch: input_ids, attention_mask, labels (-100 off-target)."""
    import torch

    width = max(len(data.ids[i]) for i in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, i in enumerate(batch):
        ids = data.ids[i]
        n, p = len(ids), data.prompt_lens[i]
        t = torch.tensor(ids, dtype=torch.long)
        input_ids[row, :n] = t
        labels[row, p:n] = t[p:]
        mask[row, :n] = 1
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def count_targets(data: Encoded, batch: Sequence[int]) -> int:
    """Number of loss-bearing tokens in a micro-batch (labels shift by one: position 0 never is)."""
    return sum(len(data.ids[i]) - max(data.prompt_lens[i], 1) for i in batch)
