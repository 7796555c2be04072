"""THE prompt template. Training and serving render prompts only through this module.

Two templates, each with a version string that is stored in the adapter's ``twin.json`` so a
server never renders prompts differently from the ones the adapter was trained on:

* ``plain-v1`` — the reference recipe's shape, for base models without a chat template
  (Falcon-7B): an instruction header, the previous turns, their new message, then
  ``### Your response:``. The completion is the reply followed by EOS (added at tokenization).
* ``chat-v1`` — the tokenizer's own chat template, for chat-tuned bases: their turns are
  ``user``, mine are ``assistant``.
* ``plain-v2`` / ``chat-v2`` — the same with a memory section: past exchanges (their message and
  my reply, retrieved by ``twin.memory``) rendered by :func:`render_memory`, for adapters trained
  with ``--memory K``. A v1 template has no such section and refuses memory.

Context is a list of ``{"role": "me"|"them", "text": str}`` turns, oldest first, and is cut from
the oldest side by :func:`fit_context` — the same function in prepare and serve.

A **group** chat (``group=True``; an example's ``"group": true``) is told as one: the header says
"in the group <name>", and their turns are several people's messages, each run of one person's
messages opening with ``Name: `` (:func:`group_turn_text`, used by prepare and by the server alike),
so the twin sees who said what. My turns never carry a label: the reply is only my text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any, Literal

from twin.errors import TwinError
from twin.text.normalize import normalize_text

PLAIN = "plain-v1"
CHAT = "chat-v1"
PLAIN_MEMORY = "plain-v2"
CHAT_MEMORY = "chat-v2"
TEMPLATE_VERSIONS = (PLAIN, CHAT, PLAIN_MEMORY, CHAT_MEMORY)
CHAT_TEMPLATES = (CHAT, CHAT_MEMORY)  # rendered by the tokenizer's own chat template
MEMORY_TEMPLATES = {PLAIN: PLAIN_MEMORY, CHAT: CHAT_MEMORY}  # v1 -> its version with a memory section
TemplateChoice = Literal["auto", "plain-v1", "chat-v1"]

DEFAULT_CONTACT = "a friend"
DEFAULT_GROUP = "a group chat"
ME_LABEL = "Me"
SOMEONE = "Someone"  # a group member whose name the export does not give

_PLAIN_HEADER = (
    "You are chatting with {contact}. Write your reply to their message the way you usually write.\n\n"
    "### Your previous communication:\n{context}\n\n"
    "### Their new message:\n{instruction}\n\n"
    "### Your response:\n"
)
_PLAIN_MEMORY_HEADER = _PLAIN_HEADER.replace(
    "### Your previous communication:",
    "### How you answered similar messages before:\n{memory}\n\n### Your previous communication:",
)
_GROUP_HEADER = _PLAIN_HEADER.replace(
    "You are chatting with {contact}. Write your reply to their message ",
    "You are chatting in the group {contact}. Write your reply to their messages ",
).replace("### Their new message:", "### Their new messages:")
_GROUP_MEMORY_HEADER = _GROUP_HEADER.replace(
    "### Your previous communication:",
    "### How you answered similar messages before:\n{memory}\n\n### Your previous communication:",
)
_NO_CONTEXT = "(start of the conversation)"
_NO_MEMORY = "(none)"
_SYSTEM = "You are chatting with {contact}. Reply to their message the way you usually write."
_SYSTEM_GROUP = "You are chatting in the group {contact}. Reply to their messages the way you usually write."
_SYSTEM_MEMORY = "\n\nHow you answered similar messages before:\n{memory}"

# Generation stops at any of these (besides EOS): the start of the next template section.
STOP_STRINGS: tuple[str, ...] = ("\n### ", "\n###", "### ")


def _speaker(role: str, contact: str | None) -> str:
    if role == "me":
        return ME_LABEL
    if role == "them":
        return contact or "Them"
    raise TwinError(f"context role must be 'me' or 'them', got {role!r}")


def render_context(context: Sequence[dict], contact: str | None = None, group: bool = False) -> str:
    """The context section: ``Speaker: text`` a turn; a group's turns of theirs carry their own labels."""
    if not context:
        return _NO_CONTEXT
    return "\n".join(_context_line(t, contact, group) for t in context)


def _context_line(turn: dict, contact: str | None, group: bool) -> str:
    speaker = _speaker(turn["role"], contact)
    if group and turn["role"] == "them":
        return turn["text"]  # labelled per person by group_turn_text: "Anna: ...\nTom: ..."
    return f"{speaker}: {turn['text']}"


def member_label(name: str | None) -> str:
    """A group member's label: the name on one line (a label cannot span lines), without control
    characters, or ``Someone``."""
    label = " ".join(normalize_text(name or "").split())
    return label or SOMEONE


def group_turn_text(messages: Iterable[tuple[str | None, str]]) -> str:
    """Several people's consecutive messages in a group as one turn: ``(sender, text)`` pairs, oldest
    first, joined with newlines; wherever the sender changes the line opens with ``Name: ``.

    Prepare builds a group's turns with it and the server a group request's, so a served prompt
    says who said what exactly as the training prompts did.
    """
    lines, last = [], None
    for name, text in messages:
        label = member_label(name)
        lines.append(text if label == last else f"{label}: {text}")
        last = label
    return "\n".join(lines)


def unlabel(text: str, members: Iterable[str]) -> str:
    """A group turn's text without the members' labels (:func:`group_turn_text` undone): what they wrote."""
    heads = tuple(f"{m}: " for m in members)
    if not heads:
        return text
    return "\n".join(_strip_head(line, heads) for line in text.split("\n"))


def _strip_head(line: str, heads: tuple[str, ...]) -> str:
    for head in heads:
        if line.startswith(head):
            return line[len(head) :]
    return line


def group_conversation(messages: Sequence[dict]) -> tuple[list[dict], str]:
    """A group chat as the server receives it, as prepare turned it into an example.

    ``messages``: ``{"role", "text", "name"}`` oldest first, the last one theirs (``name``: who wrote
    a message of theirs). Consecutive messages of one side are one turn, theirs labelled by
    :func:`group_turn_text`; returns ``(context, instruction)``, the instruction being everything
    they wrote since my last message, as in training.
    """
    texts = []
    for role, run in groupby(messages, key=lambda m: m["role"]):
        ms = list(run)
        if role == "me":
            texts.append((role, "\n".join(m["text"] for m in ms)))
        else:
            texts.append((role, group_turn_text((m.get("name"), m["text"]) for m in ms)))
    *context, (_, instruction) = texts
    return [{"role": role, "text": text} for role, text in context], instruction


def group_messages(turns: list[dict], members: list[str]) -> list[dict]:
    """A group example's turns split back into messages with their senders: the inverse of
    :func:`group_conversation`, for a client that holds examples (the chat page's blind tab) and asks
    ``/reply`` as a group, so the twin gets the prompt it was trained and evaluated on.

    :func:`group_turn_text` opened a line with ``Name: `` wherever the sender changed; a line opening
    with one of ``members``' labels starts that member's message, any other continues the one before.
    """
    labels = sorted(members, key=len, reverse=True)  # "Anna K" before "Anna"
    out: list[dict] = []
    for turn in turns:
        if turn["role"] == "me":
            out.append({"role": "me", "text": turn["text"]})
            continue
        start = len(out)
        for line in turn["text"].split("\n"):
            label = next((m for m in labels if line.startswith(f"{m}: ")), None)
            if label is not None or len(out) == start:
                out.append({"role": "them", "name": label, "text": line[len(label) + 2 :] if label else line})
            else:
                out[-1]["text"] += "\n" + line
    return out


def group_members(messages: Sequence[dict]) -> list[str]:
    """The labels of everyone of theirs in a group's ``messages`` (as :func:`group_conversation`
    takes them), in order of first appearance: an example's ``members``, a reply's stop labels."""
    return list(dict.fromkeys(member_label(m.get("name")) for m in messages if m["role"] == "them"))


def render_memory(memory: Sequence[dict] | None) -> str:
    """The memory section's text: each past exchange as ``<their name>: message`` + ``Me: reply``
    (a group's, ``"group": true``, already names each person in its message)."""
    if not memory:
        return _NO_MEMORY
    return "\n\n".join(f"{_memory_them(m)}\n{ME_LABEL}: {m['me']}" for m in memory)


def _memory_them(m: dict) -> str:
    return m["them"] if m.get("group") else f"{m.get('contact') or 'Them'}: {m['them']}"


def with_memory(template: str, k: int) -> str:
    """The template version to train with: the memory variant of ``template`` when ``k`` > 0."""
    return MEMORY_TEMPLATES.get(template, template) if k > 0 else template


def has_memory(template: str) -> bool:
    return template in (PLAIN_MEMORY, CHAT_MEMORY)


def resolve_template(choice: str, tokenizer: Any | None) -> str:
    """Map ``auto`` to a concrete template version: chat if the tokenizer has a chat template."""
    if choice == "auto":
        has_chat = tokenizer is not None and getattr(tokenizer, "chat_template", None)
        return CHAT if has_chat else PLAIN
    if choice not in TEMPLATE_VERSIONS:
        raise TwinError(
            f"prompt template {choice!r} is unknown; use one of auto, {', '.join(TEMPLATE_VERSIONS)}"
        )
    if choice in (CHAT, CHAT_MEMORY) and not getattr(tokenizer, "chat_template", None):
        raise TwinError(f"prompt template {choice!r} needs a tokenizer with a chat template; use 'plain-v1'")
    return choice


def system_prompt(contact: str | None, group: bool = False) -> str:
    """The system message: chat-v1's first message, and the ``system`` field of prepare's alpaca/sharegpt."""
    if group:
        return _SYSTEM_GROUP.format(contact=contact or DEFAULT_GROUP)
    return _SYSTEM.format(contact=contact or DEFAULT_CONTACT)


def _chat_messages(
    context: Sequence[dict],
    instruction: str,
    contact: str | None,
    memory: Sequence[dict] | None = None,
    group: bool = False,
) -> list[dict]:
    system = system_prompt(contact, group)
    if memory is not None:
        system += _SYSTEM_MEMORY.format(memory=render_memory(memory))
    msgs = [{"role": "system", "content": system}]
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
    memory: Sequence[dict] | None = None,
    group: bool = False,
) -> str:
    """The prompt text up to where my reply starts.

    ``memory``: past exchanges ``{"contact", "them", "me"}`` for the v2 templates (empty: ``(none)``).
    ``group``: ``contact`` is a group's name and their turns are labelled per person (module doc).
    """
    if memory and not has_memory(template):
        raise TwinError(f"prompt template {template!r} has no memory section; train with --memory K")
    if template in (PLAIN, PLAIN_MEMORY):
        name = contact or (DEFAULT_GROUP if group else DEFAULT_CONTACT)
        fields = {"contact": name, "context": render_context(context, contact, group)}
        if template == PLAIN:
            return (_GROUP_HEADER if group else _PLAIN_HEADER).format(**fields, instruction=instruction)
        header = _GROUP_MEMORY_HEADER if group else _PLAIN_MEMORY_HEADER
        return header.format(**fields, instruction=instruction, memory=render_memory(memory))
    if template in (CHAT, CHAT_MEMORY):
        if tokenizer is None:
            raise TwinError(f"prompt template {template!r} needs the tokenizer")
        mem = (memory or []) if template == CHAT_MEMORY else None
        return tokenizer.apply_chat_template(
            _chat_messages(context, instruction, contact, mem, group),
            tokenize=False,
            add_generation_prompt=True,
        )
    raise TwinError(f"prompt template {template!r} is unknown; use one of {', '.join(TEMPLATE_VERSIONS)}")


@dataclass(frozen=True)
class TurnEnd:
    """What a chat template writes after my reply (``after``) and the part of it trained on (``keep``).

    ``keep`` runs up to and including the first special token of ``after`` (the end-of-turn token:
    ``<|eot_id|>``, ``<|im_end|>``): what follows it (ChatML's ``\\n``) is the next turn's
    layout, which generation never reaches because it stops at that token.
    """

    after: str
    keep: str
    ends_with_special: bool  # keep ends in a special token: it is the stop, no EOS is appended


_PROBE_TURNS = ("probe one", "probe two", "probe three", "probe four")
_PROBE_REPLY = "probe reply"
_TEMPLATE_FIX = (
    "use --set data.template=plain-v1 (or fix the base's chat_template.jinja / tokenizer_config.json)"
)


def check_chat_template(tokenizer: Any) -> TurnEnd:
    """Check once, on a probe conversation, that twin can split the tokenizer's chat template.

    The prompt (with the generation prompt) must render every earlier turn, in order, and be a
    prefix of the conversation with my reply; the reply must appear after it. Returns how the
    template ends my turn. A TwinError names what the template does wrong.
    """
    roles = ("them", "me", "them", "me")
    context = [{"role": r, "text": t} for r, t in zip(roles, _PROBE_TURNS, strict=True)]
    msgs = _chat_messages(context, "probe question", "Probe")
    try:
        prompt = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(
            [*msgs, {"role": "assistant", "content": _PROBE_REPLY}], tokenize=False
        )
    except Exception as e:  # jinja's raise_exception, e.g. "System role not supported" (Gemma)
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise TwinError(
            f"the base's chat template refuses a twin conversation (system message, alternating "
            f"turns): {first}; {_TEMPLATE_FIX}"
        ) from None
    positions = [prompt.find(t) for t in (*_PROBE_TURNS, "probe question")]
    if -1 in positions or positions != sorted(positions):
        raise TwinError(
            "the base's chat template drops or reorders earlier turns of the conversation "
            f"(e.g. my earlier replies), so twin cannot train on the history; {_TEMPLATE_FIX}"
        )
    if not full.startswith(prompt) or _PROBE_REPLY not in full[len(prompt) :]:
        raise TwinError(
            "the base's chat template does not render the reply after its generation prompt, "
            f"so twin cannot tell the prompt from the reply; {_TEMPLATE_FIX}"
        )
    completion = full[len(prompt) :]
    after = completion[completion.index(_PROBE_REPLY) + len(_PROBE_REPLY) :]
    keep = _through_first_special(after, tokenizer)
    return TurnEnd(after=after, keep=keep, ends_with_special=_ends_special(keep, tokenizer))


def _special_tokens(tokenizer: Any) -> set[str]:
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    specials = {t.content for t in added.values() if getattr(t, "special", False)}
    return specials | set(getattr(tokenizer, "all_special_tokens", None) or ())


def _through_first_special(text: str, tokenizer: Any) -> str:
    hits = [(i, len(t)) for t in _special_tokens(tokenizer) if (i := text.find(t)) >= 0]
    if not hits:
        return text
    i, n = min(hits)
    return text[: i + n]


def _ends_special(text: str, tokenizer: Any) -> bool:
    return bool(text) and any(text.endswith(t) for t in _special_tokens(tokenizer))


def build_training_pair(
    example: dict, *, template: str = PLAIN, tokenizer: Any | None = None, turn_end: TurnEnd | None = None
) -> tuple[str, str]:
    """``(prompt, completion)`` for one example. The loss is taken on the completion only.

    For ``plain-v1`` the completion is the bare reply; the tokenizing code appends EOS so the
    model learns to stop. For ``chat-v1`` it is what the chat template puts after the
    generation prompt: the reply and the template's end-of-turn token, nothing after it
    (``turn_end``, from :func:`check_chat_template`; computed here when not given).
    """
    context, instruction, response = example["context"], example["instruction"], example["response"]
    contact, memory, group = example.get("contact"), example.get("memory"), bool(example.get("group"))
    prompt = build_prompt(
        context,
        instruction,
        template=template,
        contact=contact,
        tokenizer=tokenizer,
        memory=memory,
        group=group,
    )
    if template in (PLAIN, PLAIN_MEMORY):
        return prompt, response
    turn_end = turn_end or check_chat_template(tokenizer)
    mem = (memory or []) if template == CHAT_MEMORY else None
    full = tokenizer.apply_chat_template(
        [
            *_chat_messages(context, instruction, contact, mem, group),
            {"role": "assistant", "content": response},
        ],
        tokenize=False,
    )
    if not full.startswith(prompt):
        raise TwinError(
            "the tokenizer's chat template renders the reply in a way twin cannot split; use 'plain-v1'"
        )
    completion = full[len(prompt) :]
    if turn_end.after and completion.endswith(turn_end.after):
        completion = completion[: len(completion) - len(turn_end.after)] + turn_end.keep
    return prompt, completion


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
