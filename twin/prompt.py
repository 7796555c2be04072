"""THE prompt template. Training and serving render prompts only through this module.

Two templates, each with a version string that is stored in the adapter's ``twin.json`` so a
server never renders prompts differently from the ones the adapter was trained on:

* ``plain-v1`` — the reference recipe's shape, for base models without a chat template
  (Falcon-7B): an instruction header, the previous turns, their new message, then
  ``### Your response:``. The completion is the reply followed by EOS (added at tokenization).
* ``chat-v1`` — the tokenizer's own chat template, for chat-tuned bases: their turns are
  ``user``, mine are ``assistant``.

Context is a list of ``{"role": "me"|"them", "text": str}`` turns, oldest first, and is cut from
the oldest side by :func:`fit_context` — the same function in prepare and serve.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from twin.errors import TwinError

PLAIN = "plain-v1"
CHAT = "chat-v1"
TEMPLATE_VERSIONS = (PLAIN, CHAT)
TemplateChoice = Literal["auto", "plain-v1", "chat-v1"]

DEFAULT_CONTACT = "a friend"
ME_LABEL = "Me"

_PLAIN_HEADER = (
    "You are chatting with {contact}. Write your reply to their message the way you usually write.\n\n"
    "### Your previous communication:\n{context}\n\n"
    "### Their new message:\n{instruction}\n\n"
    "### Your response:\n"
)
_NO_CONTEXT = "(start of the conversation)"
_SYSTEM = "You are chatting with {contact}. Reply to their message the way you usually write."

# Generation stops at any of these (besides EOS): the start of the next template section.
STOP_STRINGS: tuple[str, ...] = ("\n### ", "\n###", "### ")


def _speaker(role: str, contact: str | None) -> str:
    if role == "me":
        return ME_LABEL
    if role == "them":
        return contact or "Them"
    raise TwinError(f"context role must be 'me' or 'them', got {role!r}")


def render_context(context: Sequence[dict], contact: str | None = None) -> str:
    if not context:
        return _NO_CONTEXT
    return "\n".join(f"{_speaker(t['role'], contact)}: {t['text']}" for t in context)


def resolve_template(choice: str, tokenizer: Any | None) -> str:
    """Map ``auto`` to a concrete template version: chat if the tokenizer has a chat template."""
    if choice == "auto":
        has_chat = tokenizer is not None and getattr(tokenizer, "chat_template", None)
        return CHAT if has_chat else PLAIN
    if choice not in TEMPLATE_VERSIONS:
        raise TwinError(
            f"prompt template {choice!r} is unknown; use one of auto, {', '.join(TEMPLATE_VERSIONS)}"
        )
    if choice == CHAT and not getattr(tokenizer, "chat_template", None):
        raise TwinError("prompt template 'chat-v1' needs a tokenizer with a chat template; use 'plain-v1'")
    return choice


def system_prompt(contact: str | None) -> str:
    """The system message: chat-v1's first message, and the ``system`` field of prepare's alpaca/sharegpt."""
    return _SYSTEM.format(contact=contact or DEFAULT_CONTACT)


def _chat_messages(context: Sequence[dict], instruction: str, contact: str | None) -> list[dict]:
    msgs = [{"role": "system", "content": system_prompt(contact)}]
    for t in context:
        _speaker(t["role"], contact)  # validates the role
        msgs.append({"role": "assistant" if t["role"] == "me" else "user", "content": t["text"]})
    msgs.append({"role": "user", "content": instruction})
    return msgs


def build_prompt(
    context: Sequence[dict],
    instruction: str,
    *,
    template: str = PLAIN,
    contact: str | None = None,
    tokenizer: Any | None = None,
) -> str:
    """The prompt text up to where my reply starts."""
    if template == PLAIN:
        return _PLAIN_HEADER.format(
            contact=contact or DEFAULT_CONTACT,
            context=render_context(context, contact),
            instruction=instruction,
        )
    if template == CHAT:
        if tokenizer is None:
            raise TwinError("prompt template 'chat-v1' needs the tokenizer")
        return tokenizer.apply_chat_template(
            _chat_messages(context, instruction, contact), tokenize=False, add_generation_prompt=True
        )
    raise TwinError(f"prompt template {template!r} is unknown; use one of {', '.join(TEMPLATE_VERSIONS)}")


def build_training_pair(
    example: dict, *, template: str = PLAIN, tokenizer: Any | None = None
) -> tuple[str, str]:
    """``(prompt, completion)`` for one example. The loss is taken on the completion only.

    For ``plain-v1`` the completion is the bare reply; the tokenizing code appends EOS so the
    model learns to stop. For ``chat-v1`` it is what the chat template puts after the
    generation prompt (the reply and the template's end-of-turn marker).
    """
    context, instruction, response = example["context"], example["instruction"], example["response"]
    contact = example.get("contact")
    prompt = build_prompt(context, instruction, template=template, contact=contact, tokenizer=tokenizer)
    if template == PLAIN:
        return prompt, response
    full = tokenizer.apply_chat_template(
        [*_chat_messages(context, instruction, contact), {"role": "assistant", "content": response}],
        tokenize=False,
    )
    if not full.startswith(prompt):
        raise TwinError(
            "the tokenizer's chat template renders the reply in a way twin cannot split; use 'plain-v1'"
        )
    return prompt, full[len(prompt) :]


def fit_context(context: Sequence[dict], budget: int, count: Callable[[str], int] = len) -> list[dict]:
    """Keep the newest turns whose rendered size fits ``budget`` (in ``count`` units).

    Whole turns are dropped from the oldest side; if even the newest turn alone is over the
    budget, its tail is kept (the end of a message is what the reply answers).
    """
    if budget <= 0:
        return []
    kept: list[dict] = []
    used = 0
    for turn in reversed(context):
        size = count(turn["text"]) + 1  # +1: the speaker label / line break
        if used + size > budget:
            if not kept:
                # Keep a tail of the newest turn: cut by characters, measured with `count`.
                text = turn["text"]
                lo, hi = 0, len(text)
                while lo < hi:  # smallest cut whose tail fits
                    mid = (lo + hi) // 2
                    if count(text[mid:]) + 1 <= budget:
                        hi = mid
                    else:
                        lo = mid + 1
                if lo < len(text):
                    kept.append({**turn, "text": text[lo:]})
            break
        kept.append(turn)
        used += size
    kept.reverse()
    return kept
