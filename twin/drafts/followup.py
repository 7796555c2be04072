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

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from twin.drafts.chats import Chat
from twin.drafts.context import Conversation
from twin.feedback import outcome
from twin.text.scrub import Scrubber, scrub_messages


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
        text = (getattr(message, "message", None) or "").strip()
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
        return {
            "ts": self.ts, "dialog_id": self.chat.dialog_id, "contact": payload["contact"],
            "context": payload["history"], "instruction": payload["message"], "draft": scrubber.scrub(self.draft),
            "sent": clean_sent, "outcome": kind, "edit_distance": distance,
        }  # fmt: skip
