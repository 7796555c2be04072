"""The prompt a reply answers, as training built it: context cut to the adapter's budget, then tokens.

Serve, eval and training's own example encoding share these, so a prompt is cut the same way
everywhere (:func:`fit_prompt_ids`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twin.errors import TwinError
from twin.prompt import build_prompt, fit_context

if TYPE_CHECKING:
    from twin.adapter_meta import AdapterMeta
    from twin.examples import ContextSettings


@dataclass(frozen=True)
class Conversation:
    """What a reply answers: the turns so far (oldest first), the new message, and whose chat it is."""

    history: list[dict]
    message: str
    contact: str | None = None
    group: bool = False  # contact is a group's name; history and message are turned as prepare turns them
    members: tuple[str, ...] = ()  # the labels of the group's people in the prompt: they stop a reply
    chat_id: int | None = None  # the dialog id as in data/raw, when the caller knows it: memory's same chat


def context_counter(context: ContextSettings, tokenizer: Any):
    """How prepare measured context (``twin.json`` "prepare", as :class:`ContextSettings`), as a ``count(text)``.

    ``tokens`` with a tokenizer counts real tokens of the served tokenizer (the adapter's base);
    without a tokenizer it is prepare's estimate ``ceil(chars / chars_per_token)``; ``chars`` is
    plain length. Serving uses the same measure so a conversation is pre-cut where prepare cut it
    (``context.context_budget``); the prompt is then fitted to the adapter's token budget
    (``twin.json`` "budget") as in training.
    """
    if context.context_unit == "chars":
        return len
    if tokenizer is not None:
        return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])
    return lambda text: math.ceil(len(text) / context.chars_per_token)


def build_reply_prompt(
    meta: AdapterMeta, tokenizer: Any, conv: Conversation, memory: Any | None = None
) -> str:
    """The prompt for my reply in ``conv``, exactly as in training.

    History is cut with :func:`twin.prompt.fit_context` using the adapter's own prepare budget and
    unit, and rendered with the template version the adapter was trained with; ``memory`` (a
    ``twin.memory.Memory``, for adapters trained with ``--memory``) adds its ``k`` past exchanges.
    """
    context, template, past = _reply_parts(meta, tokenizer, conv, memory)
    return build_prompt(
        context, conv.message, template=template, contact=conv.contact, tokenizer=tokenizer, memory=past,
        group=conv.group,
    )  # fmt: skip


def _reply_parts(
    meta: AdapterMeta, tokenizer: Any, conv: Conversation, memory: Any | None
) -> tuple[list[dict], str, list[dict] | None]:
    """``(context cut to the adapter's budget, its template, the remembered exchanges or None)``."""
    settings = meta.context
    context = fit_context(
        [{"role": t["role"], "text": t["text"]} for t in conv.history],
        settings.context_budget,
        context_counter(settings, tokenizer),
    )
    past = None
    if memory is not None:
        past = memory.retrieve(
            conv.message, memory.k, contact=conv.contact, group=conv.group, chat=conv.chat_id
        )
    return context, meta.template, past


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
    group: bool = False,
) -> list[int]:
    """The prompt's token ids, at most ``room`` (and ``budget``: the adapter's ``prompt_tokens``) of them.

    The one rule training (``twin.examples.encode_examples``), eval and serve cut a long prompt by:
    the oldest context turns go first, one by one; if the prompt without context is still too long,
    the head of the message goes (its end is what the reply answers). The template's header and the
    reply cue are never cut: a prompt that cannot fit even then is a :class:`TwinError`. ``report``,
    when given, gets ``context_dropped`` (turns) and ``message_cut`` (bool). ``group``: render a
    group chat's prompt (:func:`twin.prompt.build_prompt`).
    """
    if budget is not None:
        room = budget if room is None else min(room, budget)

    def encode(ctx: list[dict], msg: str) -> list[int]:
        prompt = build_prompt(
            ctx, msg, template=template, contact=contact, tokenizer=tokenizer, memory=memory, group=group
        )
        return tokenizer(prompt, add_special_tokens=False)["input_ids"]

    report = report if report is not None else {}
    report.update(context_dropped=0, message_cut=False)
    ids = encode(context, message)
    if room is None or len(ids) <= room:
        return ids
    dropped, ids = _drop_oldest(context, lambda ctx: encode(ctx, message), room)
    context = context[dropped:]
    report["context_dropped"] = dropped
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


def _drop_oldest(context: list[dict], encode: Any, room: int) -> tuple[int, list[int]]:
    """The fewest oldest turns to drop so the prompt fits ``room`` (all of them if it never does),
    and that prompt's ids; ``context`` in full is known not to fit.

    A prompt only grows with each older turn kept, so the cut is found by bisection: about log2(turns)
    encodings instead of one per dropped turn (a long chat's history made this most of tokenizing).
    Without any context a template may render a placeholder longer than one short turn, so "all
    dropped" is only the answer when no shorter drop fits, as it is one turn at a time.
    """
    n = len(context)
    low, high = 0, n  # context[low:] does not fit; the answer is in (low, high]
    fitting = None
    while high - low > 1:
        mid = (low + high) // 2
        ids = encode(context[mid:])
        if len(ids) <= room:
            high, fitting = mid, ids
        else:
            low = mid
    return high, fitting if fitting is not None else encode(context[high:])


def reply_prompt_ids(
    meta: AdapterMeta, tokenizer: Any, conv: Conversation, room: int | None, memory: Any | None = None
) -> list[int]:
    """:func:`build_reply_prompt` as token ids, cut by :func:`fit_prompt_ids` to ``room`` tokens."""
    context, template, past = _reply_parts(meta, tokenizer, conv, memory)
    return fit_prompt_ids(
        tokenizer, context, conv.message, template=template, contact=conv.contact, room=room, memory=past,
        budget=meta.prompt_tokens, group=conv.group,
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
