"""Desktop messages -> raw records (the import's hot loop)."""

from __future__ import annotations

import functools
import operator
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from twin.errors import TwinError
from twin.records import DELETED_ACCOUNT, decode_rows, encode_rows
from twin.sources.telegram_desktop.common import GROUP_TYPES, MEDIA_KEYS, PERSONAL, SOURCE, kind, wanted
from twin.sources.telegram_desktop.owner import sender_of

# records.sort_key's order, (date, id), as a C-level key.
_SORT_KEY = operator.itemgetter("date", "id")


_ISO_Z = "%Y-%m-%dT%H:%M:%SZ"


def collect(
    file: Path,
    source: Iterator[tuple[str, dict, bool]],
    n_chats: int,
    owner: str,
    zone: tzinfo | None,
    include_groups: bool,
    seconds: Counter[str],
) -> tuple[dict[int, bytes], Counter[str], Counter[str]]:
    """Convert the wanted chats: ``(dialog id -> its records as sorted JSONL, counts, skipped chats by type)``.

    Each chat is encoded as soon as it is converted, while its records are hot in the cache
    (encoding a million scattered records at the end cost 2.5 s more), and only its bytes are
    kept: half the memory of the record dicts. A chat without one message to import is counted
    as skipped (``empty``).
    """
    counts: Counter[str] = Counter()
    skipped_chats: Counter[str] = Counter()
    dialogs: dict[int, bytes] = {}
    originals: dict[int, dict[int, int]] = {}
    media_only: dict[int, int] = {}
    empty: set[int] = set()
    only_own: set[int] = set()  # groups exported with only the owner's messages
    big = file.stat().st_size > 50_000_000
    from tqdm.auto import tqdm

    with tqdm(
        total=n_chats, desc="reading chats", unit="chat", disable=None if big else True, leave=False
    ) as bar:
        for where, chat, fix in source:
            ctype = chat["type"]
            if wanted(ctype, include_groups):
                t0 = time.perf_counter()
                cid = chat["id"]
                by_id = _with_earlier_copy(dialogs.get(cid))
                convert_chat(
                    chat, where, file, owner, zone, fix, by_id, originals.setdefault(cid, {}), counts
                )
                if by_id:
                    dialogs[cid] = encode_rows(sorted(by_id.values(), key=_SORT_KEY))
                    media_only[cid] = sum(not r["text"] for r in by_id.values())
                    if ctype in GROUP_TYPES and all(r["out"] for r in by_id.values()):
                        only_own.add(cid)
                else:  # no messages, or only service messages: no file
                    empty.add(cid)
                seconds["convert"] += time.perf_counter() - t0
            else:
                skipped_chats[ctype] += 1
                # an unparsed chat (see open_split) carries only its message count
                n = chat["_message_count"] if "_message_count" in chat else len(chat["messages"])
                counts["in_skipped_chats"] += n
            chat["messages"] = None  # free the parsed messages as we go: keeps peak memory down
            bar.update(1)
    counts["media_only"] = sum(media_only.values())
    counts["only_own_groups"] = len(only_own)
    if empty - dialogs.keys():
        skipped_chats["empty"] = len(empty - dialogs.keys())
    return dialogs, counts, skipped_chats


def flatten(text: list, file: Path, where: str) -> str:
    parts = []
    for p in text:
        if isinstance(p, str):
            parts.append(p)
        elif isinstance(p, dict) and isinstance(p.get("text", ""), str):
            parts.append(p.get("text", ""))
        else:
            raise TwinError(
                f"{where}: field 'text' must hold strings and {{type, text}} objects, got {kind(p)}"
            )
    return "".join(parts)


_PII_ENTITIES = {"phone": "PHONE", "email": "EMAIL"}


def entity_pii(text: Any) -> list[list] | None:
    """``[[offset, length, kind], ...]`` of the parts Telegram tagged as a phone number or an e-mail.

    Desktop keeps them in a message's ``text`` list (``{"type": "phone", "text": "0771234567"}``);
    flattening would lose them, so their spans go into the raw record's optional ``pii`` field.
    """
    if type(text) is not list:
        return None
    spans, pos = [], 0
    for p in text:
        part = p if isinstance(p, str) else p.get("text", "") if isinstance(p, dict) else ""
        if not isinstance(part, str):
            return None  # fields_slow reports the bad part
        kind = _PII_ENTITIES.get(p.get("type")) if isinstance(p, dict) else None
        if kind and part:
            spans.append([pos, len(part), kind])
        pos += len(part)
    return spans or None


def repair(s: str) -> str:
    """Replace lone surrogates (only present after the stdlib fallback parse) with U+FFFD."""
    return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


class _Slow(Exception):
    """Raised inside the hot loop to hand an unusual message to :func:`fields_slow`."""


@functools.cache
def _time_of_day() -> tuple[str, ...]:
    """ "T00:00:00Z" ... "T23:59:59Z": with a per-day cache of "YYYY-MM-DD", a date costs a lookup and a
    concatenation instead of gmtime + strftime (1.5 µs, a tenth of a million-message import)."""
    return tuple(f"T{h:02d}:{m:02d}:{s:02d}Z" for h in range(24) for m in range(60) for s in range(60))


def _edit_time(m: dict) -> int:
    for key in ("edited_unixtime", "date_unixtime"):
        v = m.get(key)
        if (isinstance(v, str) and v.isdigit()) or type(v) is int:
            return int(v)
    return 0


def _with_earlier_copy(encoded: bytes | None) -> dict:
    """``by_id`` to convert a chat into: a dialog met twice (e.g. in 'chats' and 'left_chats') merges
    with the records of its first copy."""
    by_id: dict = {}
    for r in decode_rows(encoded) if encoded is not None else ():
        by_id[_key(by_id, r)] = r
    return by_id


def convert_chat(
    chat: dict,
    where_chat: str,
    file: Path,
    owner: str,
    zone: tzinfo | None,
    fix_surrogates: bool,
    by_id: dict[int, dict],
    originals: dict[int, int],
    counts: Counter[str],
) -> None:
    """Add the chat's messages as raw records to ``by_id`` (message id -> record).

    The loop is the import's hot path (a million iterations on a big export): the usual message
    (string ``date_unixtime``, ``text`` and ``from_id``) takes :func:`_fast_fields`; anything else
    (entity lists, deleted senders, old layouts, wrong types) goes through :func:`fields_slow`,
    which normalises it or raises the precise error. ``originals`` keeps the edit time of edited or
    repeated messages only, to decide which copy of a repeated message wins.
    """
    dialog_id, name = chat["id"], _dialog_name(chat, fix_surrogates)
    group = chat.get("type") in GROUP_TYPES
    days: dict[int, str] = {}
    seen: set[tuple[int, str]] = set()  # (id, date) met in this copy of the chat: a repeat is damage
    for i, m in enumerate(chat["messages"]):
        got = _fields(m, i, days, where_chat, file, zone, counts)
        if got is None:
            continue
        mid, date, text, from_id = got
        if fix_surrogates:
            text = repair(text)
        loc = (file, where_chat, i, mid)
        media = _media(m, text, loc)
        if not text and media is None:
            counts["empty"] += 1
            continue
        rec = {
            "source": SOURCE,
            "dialog_id": dialog_id,
            "dialog_name": name,
            "id": mid,
            "date": date,
            "out": from_id == owner,
            "text": text,
            "reply_to": _reply_to(m, loc),
            # saved_from is Telegram's saved_from_peer, which only a forward has (forwarded_from
            # can be missing: a hidden sender without a name); the API exporter sees the forward
            "forwarded": "forwarded_from" in m or "saved_from" in m,
            "media": media,
        }
        _add_optional(rec, m, group, fix_surrogates)
        if (mid, date) in seen:  # the same message twice in one copy of the chat: a damaged export
            counts["repeated_id"] += 1
        seen.add((mid, date))
        _keep(rec, m, by_id, originals, counts)


def _add_optional(rec: dict, m: dict, group: bool, fix_surrogates: bool) -> None:
    """The optional raw fields (``twin.records.OPTIONAL``) this message has."""
    pii = entity_pii(m.get("text"))
    if pii:
        rec["pii"] = pii
    if group and not rec["out"]:  # who said it: a group has many "them"
        rec["sender"] = _sender(m, fix_surrogates)
    if "via_bot" in m:  # an inline bot's result: the bot wrote it (Desktop writes its @username)
        rec["via_bot"] = True
    if rec["media"] == "sticker" and isinstance(emoji := m.get("sticker_emoji"), str) and emoji:
        rec["sticker_emoji"] = repair(emoji) if fix_surrogates else emoji


def _fields(
    m: dict,
    i: int,
    days: dict[int, str],
    where_chat: str,
    file: Path,
    zone: tzinfo | None,
    counts: Counter[str],
) -> tuple[int, str, str, str] | None:
    """``(id, date, text, sender id)`` of a message, or None for one that is skipped (and counted)."""
    try:
        return _fast_fields(m, days)
    except _Service:
        counts["service"] += 1
        return None
    except (_Slow, KeyError, TypeError, OverflowError, OSError, ValueError):
        return fields_slow(m, i, where_chat, file, zone, counts)


def _dialog_name(chat: dict, fix_surrogates: bool) -> str | None:
    """The chat's display name as every record of it carries it (lone surrogates repaired).

    Desktop writes ``"name": null`` for a deleted account's personal chat; the API exporter names it
    as Telegram shows it, :data:`~twin.records.DELETED_ACCOUNT`, and so does this, so a chat imported
    both ways is one dialog under one name (the newest record's name is the contact in prepare).
    """
    name = chat.get("name")
    if chat.get("type") == PERSONAL and not (isinstance(name, str) and name.strip()):
        return DELETED_ACCOUNT
    return repair(name) if fix_surrogates and name else name


def _sender(m: dict, fix_surrogates: bool) -> str:
    """A group member's display name as Desktop wrote it ("Deleted Account" when it wrote none)."""
    who = m.get("from")
    if not isinstance(who, str) or not who.strip():
        return DELETED_ACCOUNT
    return repair(who) if fix_surrogates else who


class _Service(Exception):
    """A service message (call, pin, join): skipped and counted."""


def _fast_fields(m: dict, days: dict[int, str]) -> tuple[int, str, str, str]:
    """``(id, date, text, from_id)`` of the usual message, or an exception for anything else."""
    mtype = m["type"]
    if mtype != "message":
        raise _Service if mtype == "service" else _Slow
    mid, unix, text, from_id = m["id"], m["date_unixtime"], m["text"], m["from_id"]
    if type(mid) is not int or type(unix) is not str or type(text) is not str or type(from_id) is not str:
        raise _Slow
    seconds = int(unix) if unix.isdigit() else 0
    if not seconds:  # not digits, or 0: a date fields_slow must look at
        raise _Slow
    d, sec = divmod(seconds, 86400)
    day = days.get(d)
    if day is None:
        day = days[d] = time.strftime("%Y-%m-%d", time.gmtime(d * 86400))
    return mid, day + _time_of_day()[sec], text, from_id


def _where(loc: tuple[Path, str, int, int]) -> str:
    file, where_chat, i, mid = loc
    return f"{file}: {where_chat}.messages[{i}] (id {mid})"


def _reply_to(m: dict, loc: tuple[Path, str, int, int]) -> int | None:
    """The replied-to message's id, or None when there is none in this chat.

    Desktop adds ``reply_to_peer_id`` only when the reply quotes a message of *another* chat;
    that id would point at an unrelated message here (the API exporter drops it the same way).
    """
    reply_to = m.get("reply_to_message_id")
    if reply_to is not None and type(reply_to) is not int:
        raise TwinError(
            f"{_where(loc)}: field 'reply_to_message_id' must be an integer, got {kind(reply_to)}"
        )
    return None if "reply_to_peer_id" in m else reply_to


def _media(m: dict, text: str, loc: tuple[Path, str, int, int]) -> str | None:
    """Desktop's ``media_type``, else the kind named by the message's media key, else None."""
    media = m.get("media_type")
    if media is not None:
        if type(media) is not str:
            raise TwinError(f"{_where(loc)}: field 'media_type' must be a string, got {kind(media)}")
        return media
    if "photo" in m:
        return "photo"
    if "file" in m:
        return "file"
    if not text:  # polls, locations, contacts... carry no text of their own
        for key, name in MEDIA_KEYS:
            if key in m:
                return name
    return None


def _key(by_id: dict, rec: dict) -> int | tuple[int, str]:
    """Where ``rec`` goes in ``by_id``: its id, unless another message of another date holds that id.

    Telegram's ids are unique in a chat, but some exports (edited or anonymised by other tools)
    give many messages one id; those are still distinct messages when their dates differ, so each
    is kept, under ``(id, date)``. The same id with the same date is the same message again.
    """
    mid = rec["id"]
    prev = by_id.get(mid)
    return mid if prev is None or prev["date"] == rec["date"] else (mid, rec["date"])


def _keep(rec: dict, m: dict, by_id: dict, originals: dict, counts: Counter[str]) -> None:
    """Store ``rec``, unless a copy of the same message (same id and date) edited later is already there."""
    key = _key(by_id, rec)
    if key in by_id:
        # The same message twice (a chat listed in both 'chats' and 'left_chats', or a damaged
        # export): the copy edited last wins, so the latest text is kept; on a tie, the later copy.
        counts["duplicate"] += 1
        prev = originals.get(key)
        if prev is not None and prev > _edit_time(m):
            return
        originals[key] = _edit_time(m)
    else:
        if key != rec["id"]:
            counts["shared_id"] += 1  # kept: another message, which happens to carry a used id
        if "edited_unixtime" in m or "edited" in m:
            originals[key] = _edit_time(m)
    by_id[key] = rec


def fields_slow(
    m: Any, i: int, where_chat: str, file: Path, zone: tzinfo | None, counts: Counter[str]
) -> tuple[int, str, str, str | None] | None:
    """``(id, date, text, from_id)`` of an unusual message, None to skip it, or a precise TwinError."""
    where = f"{file}: {where_chat}.messages[{i}]"
    if type(m) is not dict:
        raise TwinError(f"{where} must be a JSON object, got {kind(m)}")
    mtype = m.get("type")
    if mtype != "message":
        if isinstance(mtype, str):  # a kind newer than this importer: skip it, don't fail
            counts["other_type"] += 1
            return None
        raise TwinError(f"{where}: field 'type' must be a string such as 'message', got {kind(mtype)}")
    mid = m.get("id")
    if type(mid) is not int:
        raise TwinError(f"{where}: field 'id' must be an integer, got {kind(mid)}")
    where = f"{where} (id {mid})"

    unix = m.get("date_unixtime")
    try:
        if unix is not None and type(unix) is not int and not (type(unix) is str and unix.isdigit()):
            raise ValueError
        if unix is not None and int(unix) == 0 and m.get("date") is not None:
            unix = None  # "0" is no date (seen in real exports): use the local 'date' rather than 1970
            counts["zero_unixtime"] += 1
        if unix is not None:
            date = time.strftime(_ISO_Z, time.gmtime(int(unix)))
        else:
            date = local_date(m.get("date"), zone)
            counts["local_dates"] += 1
    except (ValueError, TypeError, OverflowError, OSError):
        raise TwinError(
            f"{where}: bad date (date_unixtime: {kind(unix)}, date: {kind(m.get('date'))}); expected "
            "'date_unixtime' as Unix seconds or 'date' as local time like 2024-03-01T09:00:00"
        ) from None

    text = m.get("text", "")
    if type(text) is not str:
        if type(text) is list:
            text = flatten(text, file, where)
        elif text is None:
            text = ""
        else:
            raise TwinError(f"{where}: field 'text' must be a string or a list, got {kind(text)}")

    from_id = m.get("from_id")
    if from_id is not None and type(from_id) is not str and type(from_id) is not int:
        raise TwinError(f"{where}: field 'from_id' must be like 'user123', got {kind(from_id)}")
    return mid, date, text, sender_of(from_id)


def local_date(value: Any, zone: tzinfo | None) -> str:
    if not isinstance(value, str):
        raise TypeError
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        # Desktop's 'date' is the exporting machine's wall time without a zone.
        dt = dt.replace(tzinfo=zone) if zone is not None else dt.astimezone()
    return dt.astimezone(UTC).strftime(_ISO_Z)
