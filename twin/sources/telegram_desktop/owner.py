"""Who the owner is: ``--me``, the account's ``personal_information``, or the personal chats."""

from __future__ import annotations

import re
import shlex
from collections import Counter
from pathlib import Path
from typing import Any

from twin.errors import TwinError
from twin.sources.telegram_desktop.common import PERSONAL, kind

_USER_ID = re.compile(r"user(\d+)")


def sender_of(from_id: Any) -> str | None:
    """``from_id`` as ``user123``: new exports write that string, old ones a bare integer."""
    if type(from_id) is int:
        return f"user{from_id}"
    return from_id if isinstance(from_id, str) else None


def parse_me(me: str) -> str | None:
    """``--me`` as ``user<id>`` if it is an id form; None if it must be a display name."""
    s = me.strip()
    if s.isdigit():
        return f"user{int(s)}"
    if _USER_ID.fullmatch(s):
        return s
    return None


def check_me(me: str | None) -> None:
    """An empty ``--me`` is a one-line error before anything is read."""
    if me is not None and not me.strip():
        raise TwinError("--me is empty: give your numeric user id, 'user123', or your exact display name")


def find_owner(
    data: dict, chats: list[tuple[str, dict]], account: bool, me: str | None, file: Path
) -> tuple[str, str]:
    if me is not None:
        check_me(me)
        as_id = parse_me(me)
        if as_id is not None:
            return as_id, "--me"
        return owner_by_name(me, data, chats, file), "--me (display name)"
    info = data.get("personal_information") if account else None
    if isinstance(info, dict) and info.get("user_id") is not None:
        uid = info["user_id"]
        if type(uid) is int or (isinstance(uid, str) and uid.isdigit()):
            return f"user{int(uid)}", "personal_information"
        raise TwinError(
            f"{file}: field 'personal_information.user_id' must be a number, got {kind(uid)}; "
            "pass --me with your user id"
        )
    return owner_from_personal_chats(chats, file), "personal chats"


def owner_by_name(name: str, data: dict, chats: list[tuple[str, dict]], file: Path) -> str:
    ids: set[str] = set()
    info = data.get("personal_information")
    if isinstance(info, dict) and info.get("user_id") is not None:
        full = " ".join(str(info.get(k) or "") for k in ("first_name", "last_name")).strip()
        if full == name:
            ids.add(f"user{info['user_id']}")
    for _, chat in chats:
        for m in chat["messages"]:
            if isinstance(m, dict) and m.get("from") == name:
                sender = sender_of(m.get("from_id"))
                if sender:
                    ids.add(sender)
    if len(ids) == 1:
        return ids.pop()
    if not ids:
        raise TwinError(
            f"--me {name!r}: no sender in {file} has exactly that display name{_near_miss(name, chats)}; "
            f"senders: {senders_hint(chats)}; pass your numeric user id or the exact name"
        )
    raise TwinError(
        f"--me {name!r}: several senders in {file} have that name ({', '.join(sorted(ids))}); "
        "pass your numeric user id instead"
    )


def _near_miss(name: str, chats: list[tuple[str, dict]]) -> str:
    """What the owner most likely meant: an @username (not in an export), or the one sender whose name
    matches but for case, spaces or a missing last name ("alex" for "Alex Morozov")."""
    if name.startswith("@"):
        return " (an export has display names, not @usernames)"
    want = " ".join(name.split()).casefold()
    near = {
        (n, uid)
        for n, uid, _ in count_senders(chats)
        if want and (" ".join(n.split()).casefold() == want or n.casefold().split()[:1] == [want])
    }
    if len(near) == 1:
        ((n, uid),) = near
        return f" (did you mean --me {shell_word(n)}, {uid}?)"
    return ""


def count_senders(chats: list[tuple[str, dict]]) -> list[tuple[str, str, int]]:
    """``(display name, user123, messages)`` of every sender, most frequent first."""
    seen: Counter[tuple[str, str]] = Counter()
    for _, chat in chats:
        for m in chat["messages"]:
            if isinstance(m, dict) and m.get("type") == "message":
                sender = sender_of(m.get("from_id"))
                if sender:
                    name = m.get("from")
                    seen[(name if isinstance(name, str) else "", sender)] += 1
    return [(name, sender, n) for (name, sender), n in seen.most_common()]


def shell_word(name: str) -> str:
    """``name`` quoted so that pasting it after ``--me`` in a shell passes exactly ``name``.

    Printable names (emoji included) are single-quoted; names with control or invisible characters
    use bash/zsh ``$'...'`` quoting with escapes, since a terminal would not show them.
    """
    if name.isprintable():
        return shlex.quote(name)
    escaped = "".join(
        c if c.isprintable() and c not in "\\'" else (f"\\{c}" if c in "\\'" else f"\\U{ord(c):08x}")
        for c in name
    )
    return f"$'{escaped}'"


def senders_hint(chats: list[tuple[str, dict]], limit: int = 20) -> str:
    """The senders as ``'Name' = user123``, most frequent first, for an error message.

    Past ``limit`` the rest are counted (``+K more``) and ``--list-senders`` lists them all.
    """
    senders = count_senders(chats)
    if not senders:
        return "none"
    hint = ", ".join(f"{shell_word(name)} = {uid}" for name, uid, _ in senders[:limit])
    if len(senders) > limit:
        hint += f", +{len(senders) - limit} more (add --list-senders to list them all)"
    return hint


def owner_from_personal_chats(chats: list[tuple[str, dict]], file: Path) -> str:
    """The one sender, across personal chats, who is not a chat's peer.

    A chat counts only if its peer (``user<chat id>``) is among its senders: that proves the chat
    id is a real user id and not an anonymised one, so the other sender really is the owner.
    """
    candidates: set[str] = set()
    personal = 0
    for _, chat in chats:
        if chat["type"] != PERSONAL:
            continue
        personal += 1
        senders = {
            sender_of(m.get("from_id"))
            for m in chat["messages"]
            if isinstance(m, dict) and m.get("type") == "message"
        }
        senders.discard(None)
        peer = f"user{chat['id']}"
        if peer in senders:
            candidates |= senders - {peer}
    if len(candidates) == 1:
        return candidates.pop()
    why = (
        "several senders could be you" if candidates
        else "no personal chat shows both its peer (the chat id) and another sender" if personal
        else "a group's export does not record who exported it"
    )  # fmt: skip
    raise TwinError(
        f"{file}: cannot tell which sender is you ({why}); pass --me with your user id, 'user123', "
        f'or your exact display name (senders: {senders_hint(chats)}; with make: ARGS="--me user123")'
    )
