"""The chat's current conversation as a ``/reply`` request, cut and cleaned exactly like training data.

Telegram messages → raw records (the exporter's :func:`message_record`) → the last session (the
prepare stage's gap rule) → turns (its merge of consecutive messages, scrubbed by its
:class:`Scrubber` as each text enters a turn) → ``message`` = their last turn, ``history`` = the
turns before it (newest kept within a character budget, :func:`twin.prompt.fit_context`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from twin.drafts.chats import Chat
from twin.prompt import fit_context
from twin.sources.telegram_client import message_record
from twin.text.scrub import Scrubber
from twin.text.sessions import build_sessions

# The server's default caps (twin serve --max-message-chars / --max-contact-chars): cut, never refused.
MAX_MESSAGE_CHARS = 4000
MAX_CONTACT_CHARS = 100


@dataclass(frozen=True)
class Conversation:
    """What to ask the server, and the incoming message the suggestion answers."""

    payload: dict
    last_incoming_id: int


def records_of(messages: Sequence[Any], chat: Chat) -> list[dict]:
    """Telegram messages (any order) as raw records, oldest first; service messages dropped."""
    records = [message_record(m, chat.dialog_id, chat.name) for m in messages]
    return sorted((r for r in records if r is not None), key=lambda r: r["id"])


def answered(records: Sequence[dict]) -> bool:
    """Whether the newest message is yours: you replied (a sticker counts) after their last message."""
    return bool(records) and bool(records[-1]["out"])


def conversation(
    records: Sequence[dict],
    chat: Chat,
    *,
    gap_hours: float,
    scrubber: Scrubber,
    context_chars: int,
) -> Conversation | None:
    """The request for the reply to their latest turn, or None when there is nothing to answer.

    None when you wrote last, or their latest messages carry no text of their own (media only,
    forwards): the model answers words, not photos.
    """
    if not records or answered(records):
        return None
    sessions = build_sessions(list(records), gap_hours=gap_hours, scrubber=scrubber)
    turns = sessions[-1].turns
    if not turns or turns[-1].role != "them":
        return None
    history = fit_context([{"role": t.role, "text": t.text} for t in turns[:-1]], context_chars)
    message = turns[-1].text[-MAX_MESSAGE_CHARS:]  # the end of a long message is what the reply answers
    payload = {
        "message": message,
        "history": history,
        "contact": scrubber.scrub(chat.name)[:MAX_CONTACT_CHARS],
    }
    last_incoming = max(r["id"] for r in records if not r["out"])
    return Conversation(payload, last_incoming)
