"""The prompt a reply answers, as training built it: context cut to the adapter's budget, then tokens.

Serve, eval and training's own example encoding share these, so a prompt is cut the same way
everywhere (:func:`fit_prompt_ids`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from twin.errors import TwinError
from twin.prompt import PLAIN, build_prompt, fit_context


def context_counter(meta: dict, tokenizer: Any):
    """How prepare measured context (``twin.json`` "prepare": unit + budget), as a ``count(text)``.

    ``tokens`` with a tokenizer counts real tokens of the served tokenizer (the adapter's base);
    without a tokenizer it is prepare's estimate ``ceil(chars / chars_per_token)``; ``chars`` is
    plain length. Serving uses the same measure so a conversation is pre-cut where prepare cut it;
    the prompt is then fitted to the adapter's token budget (:func:`prompt_budget`) as in training.
    """
    prep = meta.get("prepare") or {}
    unit = prep.get("context_unit", "tokens")
    if unit == "chars":
        return len
    if unit != "tokens":
        raise TwinError(f"twin.json: prepare.context_unit {unit!r} is unknown (expected tokens or chars)")
    if prep.get("tokenizer") and tokenizer is not None:
        return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])
    cpt = float(prep.get("chars_per_token") or 4.0)
    return lambda text: math.ceil(len(text) / cpt)


def context_budget(meta: dict) -> int:
    """Prepare's context budget in the unit :func:`context_counter` counts (characters: tokens x chars/token)."""
    prep = meta.get("prepare") or {}
    budget = prep.get("max_context_tokens", 256)
    if not isinstance(budget, int | float) or budget < 0:
        raise TwinError(f"twin.json: prepare.max_context_tokens {budget!r} must be a number >= 0")
    if prep.get("context_unit", "tokens") == "chars":
        return int(budget * float(prep.get("chars_per_token") or 4.0))
    return int(budget)


def build_reply_prompt(
    meta: dict,
    tokenizer: Any,
    history: list[dict],
    message: str,
    contact: str | None = None,
    memory: Any | None = None,
) -> str:
    """The prompt for my reply to ``message`` after ``history`` (oldest first), exactly as in training.

    History is cut with :func:`twin.prompt.fit_context` using the adapter's own prepare budget and
    unit, and rendered with the template version the adapter was trained with; ``memory`` (a
    ``twin.memory.Memory``, for adapters trained with ``--memory``) adds its ``k`` past exchanges.
    """
    context, template, past = _reply_parts(meta, tokenizer, history, message, contact, memory)
    return build_prompt(
        context, message, template=template, contact=contact, tokenizer=tokenizer, memory=past
    )


def _reply_parts(
    meta: dict, tokenizer: Any, history: list[dict], message: str, contact: str | None, memory: Any | None
) -> tuple[list[dict], str, list[dict] | None]:
    """``(context cut to the adapter's budget, its template, the remembered exchanges or None)``."""
    context = fit_context(
        [{"role": t["role"], "text": t["text"]} for t in history],
        context_budget(meta),
        context_counter(meta, tokenizer),
    )
    past = memory.retrieve(message, memory.k, contact=contact) if memory is not None else None
    return context, meta.get("template", PLAIN), past


def prompt_budget(meta: dict) -> int | None:
    """The prompt budget the adapter was trained with (``twin.json`` "budget", tokens of its base);
    None for adapters trained before it was recorded (their prompts were only cut to fit the model)."""
    record = meta.get("budget")
    if not record:
        return None
    from twin.examples import PromptBudget

    return PromptBudget.from_record(record).prompt_tokens


def fit_prompt_ids(
    tokenizer: Any,
    context: list[dict],
    message: str,
    *,
    template: str,
    contact: str | None,
    room: int | None,
    memory: Sequence[dict] | None = None,
    budget: int | None = None,
    report: dict | None = None,
) -> list[int]:
    """The prompt's token ids, at most ``room`` (and ``budget``: :func:`prompt_budget`) of them.

    The one rule training (``twin.examples.encode_examples``), eval and serve cut a long prompt by:
    the oldest context turns go first, one by one; if the prompt without context is still too long,
    the head of the message goes (its end is what the reply answers). The template's header and the
    reply cue are never cut: a prompt that cannot fit even then is a :class:`TwinError`. ``report``,
    when given, gets ``context_dropped`` (turns) and ``message_cut`` (bool).
    """
    if budget is not None:
        room = budget if room is None else min(room, budget)

    def encode(ctx: list[dict], msg: str) -> list[int]:
        prompt = build_prompt(
            ctx, msg, template=template, contact=contact, tokenizer=tokenizer, memory=memory
        )
        return tokenizer(prompt, add_special_tokens=False)["input_ids"]

    report = report if report is not None else {}
    report.update(context_dropped=0, message_cut=False)
    ids = encode(context, message)
    if room is None or len(ids) <= room:
        return ids
    n_context = len(context)
    while context and len(ids) > room:
        context = context[1:]
        ids = encode(context, message)
    report["context_dropped"] = n_context - len(context)
    msg_ids = tokenizer(message, add_special_tokens=False)["input_ids"]
    cut = 0
    while len(ids) > room and cut < len(msg_ids):
        cut = min(len(msg_ids), cut + len(ids) - room)
        tail = tokenizer.decode(msg_ids[cut:], skip_special_tokens=True).lstrip("\ufffd")
        ids = encode(context, tail)
    report["message_cut"] = cut > 0
    if len(ids) > room or cut >= len(msg_ids):
        raise TwinError(
            f"the prompt template alone does not leave room for max_new_tokens within the model's "
            f"positions ({room} tokens left for the prompt); lower max_new_tokens"
        )
    return ids


def reply_prompt_ids(
    meta: dict,
    tokenizer: Any,
    history: list[dict],
    message: str,
    contact: str | None,
    room: int | None,
    memory: Any | None = None,
) -> list[int]:
    """:func:`build_reply_prompt` as token ids, cut by :func:`fit_prompt_ids` to ``room`` tokens."""
    context, template, past = _reply_parts(meta, tokenizer, history, message, contact, memory)
    return fit_prompt_ids(
        tokenizer, context, message, template=template, contact=contact, room=room, memory=past,
        budget=prompt_budget(meta),
    )  # fmt: skip


def prompt_room(model: Any, max_new_tokens: int) -> int | None:
    """How many prompt tokens fit next to ``max_new_tokens`` in the model's positions (None: no limit)."""
    return room_for(getattr(model.config, "max_position_embeddings", None), max_new_tokens)


def room_for(limit: int | None, max_new_tokens: int) -> int | None:
    """:func:`prompt_room` for a model of ``limit`` positions (None: no limit)."""
    if not limit:
        return None
    if max_new_tokens >= limit:
        raise TwinError(f"max_new_tokens {max_new_tokens} must be below the model's {limit} positions")
    return limit - max_new_tokens
