"""Examples: the format ``twin prepare`` writes and training and evaluation read.

One JSON object per line of ``data/processed/{train,val}.jsonl``: ``context`` (earlier turns,
``{"role": "me"|"them", "text"}``), ``instruction`` (their message), ``response`` (my reply), and
``contact``/``session``/``dialog_id``. Each example is rendered by THE prompt template
(:mod:`twin.prompt`) and tokenized once as ``prompt_ids + completion_ids + [eos]`` (a chat
template's completion ends in its own end-of-turn token instead of EOS); the loss is
taken on the completion and EOS only (prompt positions and padding are labelled -100), so the model
learns to reply and to stop, never to write the prompt. Reading and encoding run before any model
loads, so bad data or a too-small ``max_seq_length`` fails in a second.

:class:`ContextSettings` are the prepare settings that decided how much context an example kept at
most (a generous pre-cut: prepare runs before the base, and its tokenizer, may exist).
:class:`PromptBudget` is the one budget that decides, in tokens of the base actually trained: every
training prompt is fitted to it (:func:`twin.inference.generate.fit_prompt_ids`, oldest context turns
first), and ``twin.json`` records both so eval and serve cut a conversation exactly as training did.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, computed_field

from twin.config import StageConfig
from twin.errors import TwinError
from twin.fileio import iter_jsonl
from twin.prompt import CHAT_TEMPLATES, TurnEnd, build_training_pair, check_chat_template

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
_REQUIRED = ("context", "instruction", "response")
# Character budget per token when no tokenizer is given: ~4 characters per token is the usual figure
# for English with a BPE tokenizer; Russian with an English-centric tokenizer (Falcon) is ~2-2.5, so
# the character budget is generous there. `--tokenizer DIR` counts real tokens instead.
DEFAULT_CHARS_PER_TOKEN = 4.0


class ContextSettings(StageConfig):
    """How much earlier conversation an example keeps at most (``twin prepare``'s pre-cut).

    Generous on purpose (512 estimated tokens): the budget that decides is the base's
    :class:`PromptBudget`, applied at training time, when the base's tokenizer is known.
    """

    max_context_tokens: int = Field(512, ge=0, description="context kept per example, at most")
    chars_per_token: float = Field(DEFAULT_CHARS_PER_TOKEN, gt=0)
    tokenizer: str | None = Field(None, description="HF tokenizer dir: count context in real tokens")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def context_unit(self) -> Literal["tokens", "chars"]:
        """What the context budget counts: real tokens with a tokenizer, else characters."""
        return "tokens" if self.tokenizer else "chars"

    @property
    def context_budget(self) -> int:
        """The budget in ``context_unit`` units, as passed to :func:`twin.prompt.fit_context`."""
        if self.context_unit == "tokens":
            return self.max_context_tokens
        return int(self.max_context_tokens * self.chars_per_token)


class PromptBudget(StageConfig):
    """The one prompt budget, in tokens of the base's own tokenizer (train, eval and serve).

    A prompt keeps at most ``prompt_tokens`` = ``seq_tokens - reply_tokens`` tokens (the oldest
    context turns go first, then the head of the message), so a reply always has ``reply_tokens``
    of room before ``seq_tokens`` (training's ``data.max_seq_length``). Recorded in ``twin.json`` as
    ``"budget"`` (read back by :class:`twin.adapter_meta.AdapterMeta`, which checks ``prompt_tokens``).
    """

    unit: Literal["tokens"] = "tokens"
    seq_tokens: int = Field(ge=8)
    reply_tokens: int = Field(ge=1)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def prompt_tokens(self) -> int:
        return self.seq_tokens - self.reply_tokens


def read_examples(path: str | os.PathLike) -> list[dict]:
    """Examples from a prepare JSONL file; TwinError naming file:line for anything malformed."""
    p = Path(path)
    if not p.is_file():
        raise TwinError(f"{p}: not found; run `twin prepare` first (or pass --data DIR)")
    rows: list[dict] = []
    for lineno, row in iter_jsonl(p, hint="re-run `twin prepare`"):
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


def encode_examples(
    examples: Sequence[dict],
    tokenizer: Any,
    template: str,
    max_seq_length: int,
    *,
    reply_tokens: int | None = None,
) -> Encoded:
    """Render (through ``twin.prompt``) and tokenize all examples, once.

    With ``reply_tokens`` (training: the :class:`PromptBudget`), every prompt is fitted to
    ``max_seq_length - reply_tokens`` tokens exactly as eval and serve fit theirs
    (:func:`twin.inference.generate.fit_prompt_ids`: oldest context turns first, then the head of the
    message), so each reply has that much room. Without it (older callers), a prompt longer than
    ``max_seq_length`` loses its oldest context turns until it fits, or the example is dropped.
    A reply running past the limit is cut (and gets no EOS: it did not end there). Counts go to
    ``stats``: ``context_trimmed`` (prompts that lost context turns), ``message_cut``, ``reply_cut``,
    ``dropped_prompt_too_long``. A chat template's completion already ends in its end-of-turn token,
    so no EOS is appended.
    """
    eos = tokenizer.eos_token_id
    turn_end = check_chat_template(tokenizer) if template in CHAT_TEMPLATES else None
    append_eos = turn_end is None or not turn_end.ends_with_special
    prompt_limit = max_seq_length - reply_tokens if reply_tokens else max_seq_length - 1
    _check_header_fits(tokenizer, template, turn_end, max_seq_length, prompt_limit, reply_tokens)
    pairs = [
        build_training_pair(ex, template=template, tokenizer=tokenizer, turn_end=turn_end) for ex in examples
    ]
    prompts = _tok(tokenizer, [p for p, _ in pairs])
    completions = _tok(tokenizer, [c for _, c in pairs])
    stats = {"examples": len(examples), "context_trimmed": 0, "dropped_prompt_too_long": 0, "reply_cut": 0}
    if reply_tokens:
        stats["message_cut"] = 0  # only the budget's rule cuts a message
    out = Encoded([], [], stats)
    for ex, prompt_ids, comp_ids in zip(examples, prompts, completions, strict=True):
        if append_eos and (not comp_ids or comp_ids[-1] != eos):
            comp_ids = [*comp_ids, eos]
        if len(prompt_ids) > prompt_limit:
            prompt_ids = _fit_prompt(ex, tokenizer, template, prompt_limit, turn_end, reply_tokens, stats)
            if prompt_ids is None:
                stats["dropped_prompt_too_long"] += 1
                continue
        room = max_seq_length - len(prompt_ids)
        if len(comp_ids) > room:
            comp_ids = comp_ids[:room]
            stats["reply_cut"] += 1
        out.ids.append(prompt_ids + comp_ids)
        out.prompt_lens.append(len(prompt_ids))
    _check_kept(out, max_seq_length)
    return out


def _check_kept(out: Encoded, max_seq_length: int) -> None:
    """Refuse when no example is left to train on; say how many were dropped otherwise."""
    if not out.ids:
        raise TwinError(
            f"data.max_seq_length {max_seq_length} is smaller than every prompt, so nothing is left to "
            "train on; raise data.max_seq_length or re-run `twin prepare` with a smaller context budget"
        )
    if out.stats["dropped_prompt_too_long"]:
        log.warning(
            "%d of %d examples dropped: their prompt alone is longer than data.max_seq_length=%d",
            out.stats["dropped_prompt_too_long"],
            out.stats["examples"],
            max_seq_length,
        )


def _check_header_fits(
    tokenizer: Any,
    template: str,
    turn_end: TurnEnd | None,
    max_seq_length: int,
    prompt_limit: int,
    reply_tokens: int | None,
) -> None:
    """The template alone must fit with room for a reply, or no example can ever be trained on."""
    empty = {"context": [], "instruction": "", "response": ""}
    header = _tok(
        tokenizer, [build_training_pair(empty, template=template, tokenizer=tokenizer, turn_end=turn_end)[0]]
    )[0]
    if len(header) + 2 > max_seq_length:
        raise TwinError(
            f"data.max_seq_length {max_seq_length} is smaller than the prompt template alone "
            f"({len(header)} tokens); raise it, e.g. --set data.max_seq_length=512"
        )
    if reply_tokens and len(header) + 2 > prompt_limit:
        raise TwinError(
            f"data.max_seq_length {max_seq_length} - data.reply_tokens {reply_tokens} leaves {prompt_limit} "
            f"tokens for a prompt, less than the prompt template alone ({len(header)} tokens); "
            "lower data.reply_tokens or raise data.max_seq_length"
        )


def _fit_prompt(
    ex: dict,
    tokenizer: Any,
    template: str,
    limit: int,
    turn_end: TurnEnd | None,
    reply_tokens: int | None,
    stats: dict,
) -> list[int] | None:
    """A prompt over ``limit`` tokens, fitted: by the serving rule with a budget, else by dropping turns."""
    if not reply_tokens:
        ids = _refit_prompt(ex, tokenizer, template, limit + 1, turn_end)
        stats["context_trimmed"] += ids is not None
        return ids
    from twin.inference.generate import fit_prompt_ids

    cut: dict = {}
    try:
        ids = fit_prompt_ids(
            tokenizer, list(ex["context"]), ex["instruction"], template=template, contact=ex.get("contact"),
            room=limit, memory=ex.get("memory"), report=cut, group=bool(ex.get("group")),
        )  # fmt: skip
    except TwinError:
        return None
    stats["context_trimmed"] += cut.get("context_dropped", 0) > 0
    stats["message_cut"] += cut.get("message_cut", False)
    return ids


def _refit_prompt(
    ex: dict, tokenizer: Any, template: str, max_seq_length: int, turn_end: TurnEnd | None
) -> list[int] | None:
    """Drop the oldest context turns until the prompt leaves room for at least one reply token."""
    context = list(ex["context"])
    while context:
        context = context[1:]
        prompt, _ = build_training_pair(
            {**ex, "context": context}, template=template, tokenizer=tokenizer, turn_end=turn_end
        )
        ids = _tok(tokenizer, [prompt])[0]
        if len(ids) + 1 <= max_seq_length:
            return ids
    return None


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
