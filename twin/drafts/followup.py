"""What the owner did with each suggestion: the record :mod:`twin.feedback` keeps, built here.

A suggestion written to the chat's draft (or to Saved Messages) opens a window: every message you
send in that chat afterwards (seen as it arrives, no extra reads) is what you sent instead of, or
as, the suggestion. The window closes at their next message (the next trigger), or
``--feedback-hours`` after the suggestion; messages you send later are not counted. When the
command stops, a suggestion whose window is still open is recorded only if you answered it
(otherwise it is unknown, not "nothing", and nothing is kept). Messages the twin sent itself
(``--mode send``) are not feedback: you did not choose them.

Texts stay in memory until the window closes; then only the scrubbed record is written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from twin.drafts.chats import Chat
from twin.drafts.context import Conversation
from twin.errors import TwinError
from twin.feedback import append_record, outcome
from twin.prompt import group_conversation, group_members
from twin.text.normalize import clean_message
from twin.text.scrub import Scrubber, scrub_messages

log = logging.getLogger(__name__)
HOUR_S = 3600.0


@dataclass
class Pending:
    """A written suggestion waiting for what you send."""

    chat: Chat
    conv: Conversation
    draft: str
    opened: float  # clock() when written
    ts: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    texts: list[str] = field(default_factory=list)  # your messages' own text, in order
    answered: bool = False  # you sent anything (a photo, a location...) in the window

    def note(self, message: Any, now: float, window_s: float) -> None:
        """One of your messages in the chat: counted if it is newer than the trigger and in the window."""
        if message.id <= self.conv.last_incoming_id or now - self.opened > window_s:
            return
        self.answered = True
        text = clean_message(getattr(message, "message", None) or "")  # as prepare cleans your messages
        if text and getattr(message, "fwd_from", None) is None:  # a forward is someone else's words
            self.texts.append(text)

    def record(self, scrubber: Scrubber, *, closed: bool) -> dict | None:
        """The scrubbed record; None when the window is still open and you have not answered yet."""
        if not self.answered and not closed:
            return None
        sent = "\n".join(self.texts) if self.texts else None
        kind, distance = outcome(self.draft, sent, self.answered)
        payload = self.conv.payload
        # Your text scrubbed with the message it answers in view, as prepare scrubs a session.
        clean_sent = scrub_messages([payload["message"], sent], scrubber)[1] if sent is not None else None
        context, instruction, group = _as_example(payload)
        return {
            "ts": self.ts, "dialog_id": self.chat.dialog_id, "contact": payload["contact"],
            "context": context, "instruction": instruction, "draft": scrubber.scrub(self.draft),
            "sent": clean_sent, "outcome": kind, "edit_distance": distance, **group,
        }  # fmt: skip


def _as_example(payload: dict) -> tuple[list[dict], str, dict]:
    """``(context, instruction, group fields)`` of the request as a training example has them: a
    group's messages turned as prepare turns them (labelled per person), with ``group``/``members``."""
    if not payload.get("group"):
        return payload["history"], payload["message"], {}
    them = {"role": "them", "text": payload["message"], "name": payload.get("name")}
    msgs = [*payload["history"], them]
    context, instruction = group_conversation(msgs)
    return context, instruction, {"group": True, "members": group_members(msgs)}


class Followups:
    """The open suggestion of each chat and its window; writes each record as its window closes."""

    def __init__(self, directory: Path | None, hours: float, scrubber: Scrubber, clock: Callable[[], float]):
        self.directory, self.window_s, self.scrubber, self.clock = directory, hours * HOUR_S, scrubber, clock
        self.open: dict[int, Pending] = {}  # chat peer id -> its suggestion waiting for what you send
        self.recorded = 0

    def start(self, chat: Chat, conv: Conversation, draft: str) -> None:
        """A suggestion was written: its window opens (the previous one of the chat closes)."""
        if self.directory is None:
            return
        self.close(chat, ended=True)
        self.open[chat.peer_id] = Pending(chat, conv, draft, self.clock())

    def forget(self, chat: Chat) -> None:
        """The suggestion was withdrawn before you could see it: nothing to learn from it."""
        self.open.pop(chat.peer_id, None)

    def yours(self, chat: Chat, message: Any) -> None:
        if (pending := self.open.get(chat.peer_id)) is not None:
            pending.note(message, self.clock(), self.window_s)

    def close(self, chat: Chat, *, ended: bool) -> None:
        """Record the chat's open suggestion (``ended``: their next message came; else only if answered)."""
        pending = self.open.pop(chat.peer_id, None)
        if pending is None or self.directory is None:
            return
        record = pending.record(self.scrubber, closed=ended or self.clock() - pending.opened > self.window_s)
        if record is None:
            return
        try:
            append_record(self.directory, record)
        except (OSError, TwinError) as e:  # the suggestion is already written: say so, keep watching
            log.error("chat %s: feedback not recorded (%s)", chat.label(), getattr(e, "strerror", None) or e)
            return
        self.recorded += 1
