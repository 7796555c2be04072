"""The chat's current conversation as a ``/reply`` request, cut and cleaned exactly like training data.

Telegram messages → raw records (the exporter's :func:`message_record`) → the last session (the
prepare stage's gap rule) → its texts scrubbed in order by the prepare stage's :class:`Scrubber`
(an answer with its question in view) → turns (its merge of consecutive messages).

What is answered is what they wrote **after your last outgoing message of any kind** (text, photo,
location, sticker, voice, a call you made: anything Telegram marks ``out``): ``message`` = their
text messages since then as one turn, ``history`` = the turns before it (newest kept within a
character budget, :func:`twin.prompt.fit_context`). A location you sent closes their earlier question.

A group (named with ``--chat``) is sent as the server's group request: each message with who wrote
it (the name scrubbed like the texts), so the server turns it into the prompt prepare made of the
group's messages (:func:`twin.prompt.group_conversation`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from twin.drafts.chats import Chat
from twin.prompt import fit_context
from twin.telegram import message_record
from twin.text.normalize import clean_message
from twin.text.scrub import Scrubber
from twin.text.sessions import mark, merge_turns, message_texts, split_sessions

# The server's default caps (twin serve --max-message-chars / --max-contact-chars): cut, never refused.
MAX_MESSAGE_CHARS = 4000
MAX_CONTACT_CHARS = 100
MAX_HISTORY = 100  # --max-history: a group's history is one item a message


@dataclass(frozen=True)
class Conversation:
    """What to ask the server, and the incoming message the suggestion answers."""

    payload: dict
    last_incoming_id: int


def records_of(messages: Sequence[Any], chat: Chat) -> list[dict]:
    """Telegram messages (any order) as raw records, oldest first; service messages dropped."""
    records = [message_record(m, chat.dialog_id, chat.name, group=chat.group) for m in messages]
    return sorted((r for r in records if r is not None), key=lambda r: r["id"])


def last_outgoing_id(messages: Sequence[Any]) -> int:
    """The id of your newest message among ``messages``, whatever its kind (service ones too); 0 if none."""
    return max((int(m.id) for m in messages if getattr(m, "out", False)), default=0)


def answered(records: Sequence[dict], last_out: int) -> bool:
    """Whether nothing of theirs came after your last outgoing message (``last_out``): you answered."""
    return not any(not r["out"] and r["id"] > last_out for r in records)


def _scrubbed(records: Sequence[dict], scrubber: Scrubber) -> list[dict]:
    """The records with their texts scrubbed in order, as :func:`merge_turns` would scrub them."""
    usable, texts = message_texts(records, scrubber)  # cleaned, Telegram's own pii spans first, as in prepare
    clean = dict(zip((r["id"] for r in usable), texts, strict=True))
    # a group member's name is text like any other ("Oleg +7 916 ..."), as prepare scrubs it
    names = {r["id"]: scrubber.scrub(r["sender"]) for r in records if r.get("sender")}
    return [{**r, "text": clean.get(r["id"], ""), "pii": None, **_sender(names, r["id"])} for r in records]


def _sender(names: dict[int, str], rid: int) -> dict:
    return {"sender": names[rid]} if rid in names else {}


def conversation(
    records: Sequence[dict],
    chat: Chat,
    *,
    last_out: int,
    gap_hours: float,
    scrubber: Scrubber,
    context_chars: int,
) -> Conversation | None:
    """The request for the reply to what they wrote after ``last_out``, or None when there is nothing to answer.

    None when nothing of theirs came after your last outgoing message, or what came carries no
    text of their own (media only, forwards): the model answers words, not photos.
    """
    if not records or answered(records, last_out):
        return None
    session = _scrubbed(split_sessions(list(records), gap_hours)[-1], scrubber)
    if chat.group:
        return _group_conversation(session, records, chat, last_out, scrubber, context_chars)
    # with the marks prepare's turns show ([photo], [sticker]...), so the history reads as trained
    before = merge_turns([r for r in session if r["id"] <= last_out], marks=True)
    after = merge_turns([r for r in session if r["id"] > last_out], marks=True)
    if not after or not after[-1].reply:  # only media, forwards, bot results: no words of theirs to answer
        return None
    history = fit_context([{"role": t.role, "text": t.text} for t in before], context_chars)
    message = after[-1].text[-MAX_MESSAGE_CHARS:]  # the end of a long message is what the reply answers
    # The name goes through the same scrubber as the texts (a contact saved as "Oleg +7 916 ...").
    payload = {
        "message": message,
        "history": history,
        "contact": scrubber.scrub(clean_message(chat.name))[:MAX_CONTACT_CHARS],
        "chat_id": chat.dialog_id,  # memory's same chat, whatever the name is now
    }
    last_incoming = max(r["id"] for r in records if not r["out"])
    return Conversation(payload, last_incoming)


def _group_conversation(
    session: Sequence[dict],
    records: Sequence[dict],
    chat: Chat,
    last_out: int,
    scrubber: Scrubber,
    context_chars: int,
) -> Conversation | None:
    """A group's request: every message with text, or with a mark (``[photo]``, as prepare's turns show
    it), one history item (theirs with ``name``), the newest of theirs with text the ``message``; None
    when nothing of theirs with text came after ``last_out``."""
    usable = [(r, r["text"] or mark(r)) for r in session]
    usable = [(r, text) for r, text in usable if text]
    items = [
        {"role": "me", "text": text}
        if r["out"]
        else {"role": "them", "text": text, "name": (r.get("sender") or "")[:MAX_CONTACT_CHARS] or None}
        for r, text in usable
    ]
    theirs = [k for k, (r, _) in enumerate(usable) if not r["out"] and r["text"]]
    if not theirs or usable[theirs[-1]][0]["id"] <= last_out:
        return None
    newest = theirs[-1]
    last = items[newest]
    payload = {
        "message": last["text"][-MAX_MESSAGE_CHARS:],
        "name": last["name"],
        "history": fit_context(items[:newest], context_chars)[-MAX_HISTORY:],
        "contact": scrubber.scrub(clean_message(chat.name))[:MAX_CONTACT_CHARS],
        "group": True,
        "chat_id": chat.dialog_id,
    }
    return Conversation(payload, max(r["id"] for r in records if not r["out"]))
