"""One reply to a fixed val prompt at each validation, as litgpt's ``generate_example`` prints one.

A loss curve says how well the adapter fits; a reply says what it has learned to write. The prompt
is the first example of the val split (scrubbed by prepare like all of it), fitted to the run's
prompt budget as training fits every prompt. The reply is greedy, so it changes only when the
weights do, at most ``min(data.reply_tokens, eval.sample_tokens)`` tokens, decoded by
:func:`twin.inference.generate.generate` (what ``twin chat`` answers at temperature 0). Rank 0 only;
``eval.sample_reply: false`` turns it off.

It is message text: shown in the owner's terminal and kept in ``runs/<run>/metrics.csv`` (the run
directory, which is never published), never sent to the logger or written to ``twin.json``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from twin.errors import TwinError
from twin.train.config import TrainConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    """The val prompt as the model reads it, and how its reply is decoded."""

    prompt: str
    params: Any  # twin.inference.generate.GenParams


def wants_sample(cfg: TrainConfig) -> bool:
    # FSDP shards the weights over processes: rank 0 alone cannot run the model.
    return cfg.eval.sample_reply and cfg.strategy != "fsdp"


def sample_prompt(
    model: Any, tokenizer: Any, row: dict, template: str, budget: int, cfg: TrainConfig
) -> Sample | None:
    """The :class:`Sample` for val ``row``; None (with a warning) when its prompt cannot fit."""
    from twin.inference.generate import GenParams, fit_prompt_ids, prompt_room, speaker_stops

    max_new = min(cfg.data.reply_tokens, cfg.eval.sample_tokens)
    contact = row.get("contact")
    try:
        ids = fit_prompt_ids(
            tokenizer, row["context"], row["instruction"], template=template, contact=contact,
            room=prompt_room(model, max_new), memory=row.get("memory"), budget=budget, group=bool(row.get("group")),
        )  # fmt: skip
    except TwinError as e:  # its text names sizes, never the message
        log.warning("no sample reply at validation: %s", e)
        return None
    params = GenParams(
        max_new_tokens=max_new,
        temperature=0.0,
        extra_stops=speaker_stops(contact, template, row.get("members") or ()),
    )
    return Sample(tokenizer.decode(ids), params)


def sample_reply(model: Any, tokenizer: Any, sample: Sample) -> str:
    """The reply ``model`` (the peft model, current weights) writes to the sample prompt.

    Greedy with dropout off draws no random numbers, so training goes on exactly as without it.
    """
    from twin.inference.generate import generate

    training = model.training
    model.eval()
    try:
        return generate(model, tokenizer, sample.prompt, sample.params).text.strip()
    finally:
        model.train(training)


def shown(text: str, limit: int = 200) -> str:
    """``text`` on one line for the terminal: quoted, newlines escaped, cut at ``limit`` characters."""
    import json

    cut = text if len(text) <= limit else text[:limit] + "…"
    return json.dumps(cut, ensure_ascii=False)
