"""Which chats ``twin drafts`` answers: ``--chat`` (id, @username, exact name) or ``--recent N``.

Resolved once at start against the account's dialog list; an unknown or ambiguous name fails
with the candidates. Only one-to-one chats with people, unless a group is named with ``--chat``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from twin.errors import TwinError
from twin.telegram import classify_dialog, dialog_name, export_id

REFUSED = {
    "saved_messages": "your Saved Messages",
    "bots": "a bot",
    "service": "Telegram's service account",
    "channels": "a channel",
    "groups_left": "a group you left",
    "other": "not a chat with a person",
}


@dataclass(frozen=True)
class Chat:
    peer_id: int  # telethon's marked id (what message.peer_id resolves to)
    dialog_id: int  # the id in raw files (export_id)
    name: str
    input_entity: Any
    group: bool = False  # a group named with --chat: its request says who wrote what

    def label(self) -> str:
        """How log lines name the chat: its id only (a name is personal data)."""
        return str(self.dialog_id)


def _chat(dialog: Any) -> Chat:
    did = export_id(dialog)
    return Chat(
        int(dialog.id), did, dialog_name(dialog) or str(did), dialog.input_entity, bool(dialog.is_group)
    )


def _matches(dialog: Any, wanted: str) -> bool:
    w = wanted.strip()
    if w.lstrip("-").isdigit():
        return int(w) in (export_id(dialog), int(dialog.id))
    if w.startswith("@"):
        username = getattr(dialog.entity, "username", None) or ""
        return username.lower() == w[1:].lower()
    return (dialog_name(dialog) or "") == w


def _describe(dialog: Any) -> str:
    username = getattr(dialog.entity, "username", None)
    return f"{dialog_name(dialog) or '?'} (id {export_id(dialog)}{f', @{username}' if username else ''})"


def pick_named(dialogs: list[Any], wanted: str) -> Chat:
    """The one dialog ``wanted`` names; TwinError naming the candidates otherwise."""
    found = [d for d in dialogs if _matches(d, wanted)]
    if len(found) > 1:
        listed = "; ".join(_describe(d) for d in found)
        raise TwinError(f"--chat {wanted!r} is ambiguous: {listed}; give the id instead")
    if not found:
        names = [dialog_name(d) or "" for d in dialogs]
        close = difflib.get_close_matches(wanted.lstrip("@"), names, n=5, cutoff=0.5)
        hint = f"did you mean: {'; '.join(close)}" if close else "give a user id, @username or the exact name"
        raise TwinError(f"--chat {wanted!r}: no such chat among your dialogs; {hint}")
    reason = classify_dialog(found[0], include_groups=True)
    if reason is not None:
        raise TwinError(f"--chat {wanted!r} is {REFUSED.get(reason, reason)}: twin drafts answers people")
    return _chat(found[0])


async def resolve_chats(client: Any, named: list[str], recent: int | None) -> list[Chat]:
    """The chats to answer: each ``--chat`` once, then the ``recent`` most recent one-to-one chats."""
    dialogs = [d async for d in client.iter_dialogs()]  # most recent first
    chosen: dict[int, Chat] = {}
    for wanted in named:
        chat = pick_named(dialogs, wanted)
        chosen.setdefault(chat.peer_id, chat)
    if recent:
        people = [d for d in dialogs if classify_dialog(d, include_groups=False) is None]
        for dialog in people[:recent]:
            chat = _chat(dialog)
            chosen.setdefault(chat.peer_id, chat)
    if not chosen:
        raise TwinError("--recent: you have no one-to-one chats with people to answer")
    return list(chosen.values())
