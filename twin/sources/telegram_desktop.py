"""``twin export desktop``: import a Telegram Desktop "Export chat history" JSON into ``data/raw``.

Telegram Desktop writes ``result.json`` in two shapes: one chat (``{"name", "type", "id",
"messages"}``) or the whole account (``{"personal_information", "chats": {"list": [...]},
"left_chats": {"list": [...]}}``). Both become the raw record format of
:mod:`twin.sources.records`, one file per dialog: ``<out>/telegram/<chat id>.jsonl``.

The import is all-or-nothing: the whole export is parsed and checked, and the dialog files already
on disk are read and merged, before the first file is written; then every file is written to a
temp file and only when all are written are they renamed into place. A bad export therefore
never changes ``data/raw``.

Speed (see ``bench/bench_import.py``): a big account export is cut into its chats at their
structural newlines and parsed chat by chat with orjson, each chat converted and encoded while hot
and its parsed messages freed, so peak memory stays near the file's size plus the output; small,
single-chat or unusually laid-out files are parsed whole.

Rules (see the README's Desktop section):
- owner: ``--me`` if given; else the account export's ``personal_information.user_id``; else, in
  personal chats, the one sender who is not the chat's peer (the chat ``id`` is the peer's user id,
  which must itself appear among the senders, so an anonymised export is not guessed at). If none
  of these decides, a :class:`TwinError` asks for ``--me``.
- only personal chats by default; ``include_groups`` adds groups and supergroups, never channels,
  bots, saved messages or the "replies" chat.
- dates: ``date_unixtime`` (true UTC) when present, else the zone-less local ``date`` read in
  ``tz`` (default: this machine's zone).
- service messages are skipped; media-only messages are kept with ``text == ""`` and ``media`` set;
  messages with neither text nor media are skipped (``empty``).
"""

from __future__ import annotations

import codecs
import contextlib
import gc
import logging
import operator
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

from twin.errors import TwinError
from twin.sources.records import FIELDS, decode_rows, encode_rows, merge_records, read_dialog

log = logging.getLogger(__name__)

SOURCE = "telegram"
PERSONAL = "personal_chat"
GROUP_TYPES = frozenset({"private_group", "private_supergroup", "public_supergroup"})
HOW_TO_EXPORT = (
    "export it from Telegram Desktop: Settings > Advanced > Export Telegram data, "
    "format 'Machine-readable JSON'"
)
# Message keys Desktop writes for media that has no ``media_type``; first match names the media.
MEDIA_KEYS = (
    ("photo", "photo"),
    ("file", "file"),
    ("location_information", "location"),
    ("contact_information", "contact"),
    ("poll", "poll"),
    ("game_title", "game"),
    ("invoice_information", "invoice"),
    ("giveaway_information", "giveaway"),
)
# Below this size the whole file is parsed at once (simplest; memory is no concern there).
SPLIT_MIN_BYTES = 1_000_000
_CHAT_TYPE = re.compile(r"[a-z_]{1,40}")
# records.sort_key's order, (date, id), as a C-level key.
_SORT_KEY = operator.itemgetter("date", "id")
_USER_ID = re.compile(r"user(\d+)")
_ISO_Z = "%Y-%m-%dT%H:%M:%SZ"


def import_desktop(
    path: str | os.PathLike,
    out_root: str | os.PathLike = "data/raw",
    *,
    me: str | None = None,
    include_groups: bool = False,
    tz: str | None = None,
) -> dict[str, Any]:
    """Import a Desktop export into ``<out_root>/telegram/``; returns a summary of counts.

    Summary keys: ``file``, ``owner`` (``user<id>``), ``owner_from`` (how it was found),
    ``dialogs`` (dialogs in this export that were imported), ``messages`` (records taken from this
    export), ``new_messages`` (of those, not on disk before), ``files_written`` (dialog files
    created or changed; identical ones are left untouched), ``media_only``, ``local_dates``
    (messages dated from the zone-less ``date``), ``skipped_chats`` (by chat type),
    ``skipped_messages`` (by reason: ``service``, ``empty``, ``duplicate``, ``other_type``,
    ``in_skipped_chats``).
    """
    # The parsed export is tens of millions of acyclic objects: the cyclic GC would walk them again
    # and again while they are created (measured: it doubles the parse time) and never free any.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _import(Path(path), Path(out_root), me=me, include_groups=include_groups, tz=tz)
    finally:
        if gc_was_enabled:
            gc.enable()


def _import(
    path: Path, out_root: Path, *, me: str | None, include_groups: bool, tz: str | None
) -> dict[str, Any]:
    file = _resolve_file(path)
    zone = _zone(tz)
    seconds: Counter[str] = Counter()
    t0 = time.perf_counter()
    raw = _read(file)
    seconds["read"] = time.perf_counter() - t0
    collected = None
    opened = _open_split(file, raw, me, lambda t: _wanted(t, include_groups), seconds)
    if opened is not None:
        owner, owner_from, source, n_chats = opened
        # On _NotSplittable, fall through to the whole-file path below: outside an except block,
        # so the partial work (held by the traceback) is freed first.
        with contextlib.suppress(_NotSplittable):
            collected = _collect(file, source, n_chats, owner, zone, include_groups, seconds)
            log.debug("%s: parsed chat by chat", file.name)
        del opened, source
    if collected is None:
        # One chat, an unusual layout, a bad chat, or an owner that needs every message to find:
        # parse the whole file (which also reports any JSON error with its exact position).
        seconds = Counter(read=seconds["read"])
        t0 = time.perf_counter()
        data, fix = _parse(file, raw)
        seconds["parse"] += time.perf_counter() - t0
        chats, account = _chats(data, file)
        if me is None and not any(_wanted(c["type"], include_groups) for _, c in chats):
            owner, owner_from = "", "not needed: no chat to import"  # don't ask for --me in vain
        else:
            owner, owner_from = _find_owner(data, chats, account, me, file)
        del data
        collected = _collect(
            file, ((w, c, fix) for w, c in chats), len(chats), owner, zone, include_groups, seconds
        )
        del chats
    del raw
    dialogs, counts, skipped_chats = collected
    log.info("owner: %s (%s)", owner, owner_from)

    out_dir = out_root / SOURCE
    t0 = time.perf_counter()
    plan = _plan_writes(out_dir, dialogs, counts)
    seconds["merge"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    commit(plan)
    seconds["write"] = time.perf_counter() - t0

    messages = sum(blob.count(b"\n") for blob in dialogs.values())
    if not dialogs:
        log.warning(
            "%s: nothing to import (chats skipped by type: %s); personal chats only%s",
            file.name,
            dict(skipped_chats) or "none",
            "" if include_groups else ", add --include-groups for groups",
        )
    if counts["local_dates"]:
        log.info(
            "%d message(s) had no date_unixtime: their local 'date' was read in %s",
            counts["local_dates"],
            tz or "this machine's time zone",
        )
    skipped_messages = {
        k: counts[k] for k in ("service", "empty", "duplicate", "other_type", "in_skipped_chats") if counts[k]
    }
    return {
        "file": str(file),
        "out": str(out_dir),
        "owner": owner,
        "owner_from": owner_from,
        "dialogs": len(dialogs),
        "messages": messages,
        "new_messages": counts["new"],
        "files_written": len(plan),
        "media_only": counts["media_only"],
        "local_dates": counts["local_dates"],
        "skipped_chats": dict(sorted(skipped_chats.items())),
        "skipped_messages": skipped_messages,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
    }


def _wanted(chat_type: str, include_groups: bool) -> bool:
    return chat_type == PERSONAL or (include_groups and chat_type in GROUP_TYPES)


def _collect(
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
    kept: half the memory of the record dicts.
    """
    log.info("%s: %d chat(s)", file.name, n_chats)
    counts: Counter[str] = Counter()
    skipped_chats: Counter[str] = Counter()
    dialogs: dict[int, bytes] = {}
    originals: dict[int, dict[int, int]] = {}
    with _bar(n_chats if file.stat().st_size > 50_000_000 else 0, "reading chats", "chat") as bar:
        for where, chat, fix in source:
            ctype = chat["type"]
            if _wanted(ctype, include_groups):
                t0 = time.perf_counter()
                cid = chat["id"]
                # a dialog met twice (e.g. in 'chats' and 'left_chats'): merge with the first copy
                by_id = {r["id"]: r for r in decode_rows(dialogs[cid])} if cid in dialogs else {}
                _convert_chat(
                    chat, where, file, owner, zone, fix, by_id, originals.setdefault(cid, {}), counts
                )
                if by_id:  # chats with only service messages get no file
                    dialogs[cid] = encode_rows(sorted(by_id.values(), key=_SORT_KEY))
                seconds["convert"] += time.perf_counter() - t0
            else:
                skipped_chats[ctype] += 1
                # an unparsed chat (see _open_split) carries only its message count
                n = chat["_message_count"] if "_message_count" in chat else len(chat["messages"])
                counts["in_skipped_chats"] += n
            chat["messages"] = None  # free the parsed messages as we go: keeps peak memory down
            bar.update(1)
    return dialogs, counts, skipped_chats


# ---------------------------------------------------------------------------------------- loading


def _resolve_file(path: Path) -> Path:
    if path.is_dir():  # the export folder itself: Desktop puts result.json at its top
        if (path / "result.json").is_file():
            return path / "result.json"
        raise TwinError(f"{path}: is a folder without result.json; pass the export's result.json")
    if not path.exists():
        raise TwinError(f"{path}: file not found; pass the result.json of a Telegram Desktop export")
    return path


def _zone(tz: str | None) -> tzinfo | None:
    """The zone for zone-less dates; None means this machine's local zone."""
    if tz is None:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise TwinError(
            f"--tz {tz!r}: unknown time zone; use an IANA name such as Europe/Berlin or UTC"
        ) from None


def _read(file: Path) -> bytes:
    try:
        raw = file.read_bytes()
    except OSError as e:
        raise TwinError(f"{file}: cannot read ({e.strerror}); check the path and permissions") from None
    return raw[len(codecs.BOM_UTF8) :] if raw.startswith(codecs.BOM_UTF8) else raw


def _parse(file: Path, raw: bytes | memoryview) -> tuple[Any, bool]:
    """Parse with orjson. Returns ``(data, fix_surrogates)``.

    orjson rejects lone UTF-16 surrogates (``"\\ud83d"`` without its pair), which some exports
    contain; those are re-read with the standard library and their texts repaired later.
    """
    import orjson

    try:
        return orjson.loads(raw), False
    except orjson.JSONDecodeError as e:
        if "surrogate" not in e.msg:
            raise _parse_error(file, bytes(raw), e) from None
    import json

    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as e:
        raise TwinError(f"{file}: not UTF-8 text (bad byte at offset {e.start}); {HOW_TO_EXPORT}") from None
    try:
        return json.loads(text), True
    except json.JSONDecodeError as e:
        raise TwinError(
            f"{file}:{e.lineno}:{e.colno}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); "
            f"{HOW_TO_EXPORT}"
        ) from None


class _NotSplittable(Exception):
    """The fast per-chat path does not apply; parse the whole file instead."""


def _chat_spans(raw: bytes) -> tuple[bytes, list[tuple[str, int, int]], bytes]:
    """Cut a pretty-printed account export into its chats without parsing it.

    Returns the file with the chat lists emptied (the "skeleton": account info and other sections),
    ``(json path, start, end)`` of every chat object, and the indentation unit. It relies on one fact of JSON: a raw
    newline never occurs inside a string, so a newline followed by exactly ``k`` indentation units
    and a bracket is structure at depth ``k``. Any surprise raises :class:`_NotSplittable`; the
    skeleton and each chat are parsed afterwards, so a wrong cut cannot go unnoticed.
    """
    first = re.match(rb"\{\n( {1,8})\"", raw)
    if first is None:
        raise _NotSplittable
    unit = len(first.group(1))
    ind = b" " * unit
    spans: list[tuple[str, int, int]] = []
    pieces: list[bytes] = []
    pos = 0
    for section in ("chats", "left_chats"):
        head = raw.find(b"\n" + ind + b'"' + section.encode() + b'": {\n', pos)
        if head == -1:
            if section == "chats":
                raise _NotSplittable
            continue
        close = raw.find(b"\n" + ind + b"}", head)  # the section object's own closing brace
        lst = raw.find(b"\n" + ind * 2 + b'"list": [\n', head, close)
        if close == -1 or lst == -1:
            raise _NotSplittable
        items_from = raw.index(b"[", lst) + 1
        items_to = raw.find(b"\n" + ind * 2 + b"]", items_from, close)
        if items_to == -1:
            raise _NotSplittable
        pieces.append(raw[pos:items_from])
        pos = items_to
        open_tag, close_tag = b"\n" + ind * 3 + b"{", b"\n" + ind * 3 + b"}"
        at, i = items_from, 0
        while True:
            start = raw.find(open_tag, at, items_to)
            if start == -1:
                break
            end = raw.find(close_tag, start, items_to)
            if end == -1 or raw[at:start].strip() != (b"," if i else b""):  # only a comma between chats
                raise _NotSplittable
            spans.append((f"{section}.list[{i}]", start + 1, end + len(close_tag)))
            at, i = end + len(close_tag), i + 1
        if raw[at:items_to].strip():
            raise _NotSplittable
    pieces.append(raw[pos:])
    return b"".join(pieces), spans, ind


def _open_split(
    file: Path, raw: bytes, me: str | None, wanted: Callable[[str], bool], seconds: Counter[str]
) -> tuple[str, str, Iterator[tuple[str, dict, bool]], int] | None:
    """The per-chat path for an account export: ``(owner, owner_from, chats, count)`` or None.

    Parsing chat by chat, and freeing each once converted, keeps the peak memory at about the
    file's size plus the records (the whole file at once also holds every parsed message and
    orjson's document tree: 2.4 GB for a 386 MB export). It needs the owner before any chat is
    read, so it applies when the account info or an id ``--me`` names them. Chats whose type is not
    ``wanted`` are not parsed at all: their type is read from the chat's own ``"type"`` line and
    their messages are counted by their opening lines (so damage inside a chat that is skipped
    anyway goes unnoticed on this path; everything imported is parsed and checked).
    """
    import orjson

    if len(raw) < SPLIT_MIN_BYTES or (me is not None and _parse_me(me) is None):
        return None
    t0 = time.perf_counter()
    try:
        skeleton, spans, ind = _chat_spans(raw)
        head = orjson.loads(skeleton)
    except (_NotSplittable, orjson.JSONDecodeError, ValueError):
        return None
    seconds["parse"] += time.perf_counter() - t0
    if not isinstance(head, dict):
        return None
    if me is not None:
        owner, owner_from = _parse_me(me), "--me"
    else:
        info = head.get("personal_information")
        uid = info.get("user_id") if isinstance(info, dict) else None
        if not (type(uid) is int or (isinstance(uid, str) and uid.isdigit())):
            return None  # missing or odd: the whole-file path finds the owner or says why not
        owner, owner_from = f"user{int(uid)}", "personal_information"
    view = memoryview(raw)
    type_tag, message_tag = b"\n" + ind * 4 + b'"type": "', b"\n" + ind * 5 + b"{"

    def chats() -> Iterator[tuple[str, dict, bool]]:
        for where, start, end in spans:
            t0 = time.perf_counter()
            at = raw.find(type_tag, start, end)  # the chat's own key: exactly 4 levels deep
            if at != -1:
                at += len(type_tag)
                ctype = raw[at : raw.find(b'"', at, at + 64)].decode("ascii", "replace")
                if _CHAT_TYPE.fullmatch(ctype) and not wanted(ctype):
                    yield (
                        where,
                        {"type": ctype, "_message_count": raw.count(message_tag, start, end)},
                        False,
                    )
                    continue
            try:
                chat, fix = orjson.loads(view[start:end]), False
            except orjson.JSONDecodeError as e:
                if "surrogate" not in e.msg:
                    raise _NotSplittable from None  # the whole-file parse reports the exact position
                try:
                    chat, fix = _parse(file, view[start:end])
                except TwinError:  # its position would be relative to this chat: parse it all
                    raise _NotSplittable from None
            seconds["parse"] += time.perf_counter() - t0
            _check_chat(chat, where, file)
            yield where, chat, fix

    return owner, owner_from, chats(), len(spans)


def _parse_error(file: Path, raw: bytes, e: Exception) -> TwinError:
    msg, line, col = e.msg, e.lineno, e.colno  # type: ignore[attr-defined]
    if not raw.strip():
        return TwinError(f"{file}: the file is empty; {HOW_TO_EXPORT}")
    if raw.lstrip()[:1] == b"<":
        return TwinError(
            f"{file}:{line}:{col}: not JSON (looks like HTML); re-export choosing 'Machine-readable JSON'"
        )
    if e.pos >= len(raw.rstrip()) or "end of data" in msg or "EOF" in msg:  # type: ignore[attr-defined]
        return TwinError(
            f"{file}:{line}:{col}: the JSON ends early ({msg} at line {line}, column {col}): the file is "
            "truncated; finish the download or export again"
        )
    return TwinError(
        f"{file}:{line}:{col}: not valid JSON ({msg} at line {line}, column {col}); {HOW_TO_EXPORT}"
    )


def _chats(data: Any, file: Path) -> tuple[list[tuple[str, dict]], bool]:
    """``[(json path, chat)]`` after checking each chat's own fields; and whether it is an account export."""
    if not isinstance(data, dict):
        raise TwinError(
            f"{file}: not a Telegram Desktop export (the top level is a JSON {_kind(data)}, "
            f"expected an object with 'chats' or 'messages'); {HOW_TO_EXPORT}"
        )
    if "chats" in data:
        found: list[tuple[str, dict]] = []
        for section in ("chats", "left_chats"):
            block = data.get(section)
            if block is None and section == "left_chats":
                continue
            lst = block.get("list") if isinstance(block, dict) else None
            if not isinstance(lst, list):
                raise TwinError(
                    f"{file}: field '{section}.list' must be a list of chats, got {_kind(lst)}; "
                    f"this does not look like a Telegram Desktop export; {HOW_TO_EXPORT}"
                )
            for i, chat in enumerate(lst):
                where = f"{section}.list[{i}]"
                _check_chat(chat, where, file)
                found.append((where, chat))
        return found, True
    if "messages" in data:
        _check_chat(data, "the chat", file)
        return [("the chat", data)], False
    raise TwinError(
        f"{file}: valid JSON but not a Telegram Desktop export (no 'chats' or 'messages' field); "
        f"{HOW_TO_EXPORT}"
    )


def _check_chat(chat: Any, where: str, file: Path) -> None:
    if not isinstance(chat, dict):
        raise TwinError(f"{file}: {where} must be a JSON object, got {_kind(chat)}")
    ctype = chat.get("type")
    if not isinstance(ctype, str):
        raise TwinError(
            f"{file}: {where}: field 'type' must be a string such as 'personal_chat', got {_kind(ctype)}"
        )
    cid = chat.get("id")
    if type(cid) is not int:
        raise TwinError(f"{file}: {where}: field 'id' must be an integer chat id, got {_kind(cid)}")
    name = chat.get("name")
    if name is not None and not isinstance(name, str):
        raise TwinError(f"{file}: {where}: field 'name' must be a string, got {_kind(name)}")
    msgs = chat.get("messages")
    if not isinstance(msgs, list):
        raise TwinError(f"{file}: {where}: field 'messages' must be a list, got {_kind(msgs)}")


def _kind(value: Any) -> str:
    if value is None:
        return "null / missing"
    return {
        dict: "object",
        list: "list",
        str: "string",
        bool: "boolean",
        int: "integer",
        float: "number",
    }.get(type(value), type(value).__name__)


# ------------------------------------------------------------------------------------------ owner


def _sender(from_id: Any) -> str | None:
    """``from_id`` as ``user123``: new exports write that string, old ones a bare integer."""
    if type(from_id) is int:
        return f"user{from_id}"
    return from_id if isinstance(from_id, str) else None


def _parse_me(me: str) -> str | None:
    """``--me`` as ``user<id>`` if it is an id form; None if it must be a display name."""
    s = me.strip()
    if s.isdigit():
        return f"user{int(s)}"
    if _USER_ID.fullmatch(s):
        return s
    return None


def _find_owner(
    data: dict, chats: list[tuple[str, dict]], account: bool, me: str | None, file: Path
) -> tuple[str, str]:
    if me is not None:
        if not me.strip():
            raise TwinError("--me is empty: give your numeric user id, 'user123', or your exact display name")
        as_id = _parse_me(me)
        if as_id is not None:
            return as_id, "--me"
        return _owner_by_name(me, data, chats, file), "--me (display name)"
    info = data.get("personal_information") if account else None
    if isinstance(info, dict) and info.get("user_id") is not None:
        uid = info["user_id"]
        if type(uid) is int or (isinstance(uid, str) and uid.isdigit()):
            return f"user{int(uid)}", "personal_information"
        raise TwinError(
            f"{file}: field 'personal_information.user_id' must be a number, got {_kind(uid)}; "
            "pass --me with your user id"
        )
    return _owner_from_personal_chats(chats, file), "personal chats"


def _owner_by_name(name: str, data: dict, chats: list[tuple[str, dict]], file: Path) -> str:
    ids: set[str] = set()
    info = data.get("personal_information")
    if isinstance(info, dict) and info.get("user_id") is not None:
        full = " ".join(str(info.get(k) or "") for k in ("first_name", "last_name")).strip()
        if full == name:
            ids.add(f"user{info['user_id']}")
    for _, chat in chats:
        for m in chat["messages"]:
            if isinstance(m, dict) and m.get("from") == name:
                sender = _sender(m.get("from_id"))
                if sender:
                    ids.add(sender)
    if len(ids) == 1:
        return ids.pop()
    if not ids:
        raise TwinError(
            f"--me {name!r}: no sender in {file} has exactly that display name; "
            f"senders: {_senders_hint(chats)}; pass your numeric user id or the exact name"
        )
    raise TwinError(
        f"--me {name!r}: several senders in {file} have that name ({', '.join(sorted(ids))}); "
        "pass your numeric user id instead"
    )


def _senders_hint(chats: list[tuple[str, dict]], limit: int = 6) -> str:
    """Up to ``limit`` senders as ``'Name' = user123``, most frequent first, for an error message."""
    seen: Counter[tuple[str, str]] = Counter()
    for _, chat in chats:
        for m in chat["messages"]:
            if isinstance(m, dict) and m.get("type") == "message":
                sender = _sender(m.get("from_id"))
                if sender:
                    seen[(str(m.get("from")), sender)] += 1
    hint = ", ".join(f"{n!r} = {s}" for (n, s), _ in seen.most_common(limit))
    return hint or "none"


def _owner_from_personal_chats(chats: list[tuple[str, dict]], file: Path) -> str:
    """The one sender, across personal chats, who is not a chat's peer.

    A chat counts only if its peer (``user<chat id>``) is among its senders: that proves the chat
    id is a real user id and not an anonymised one, so the other sender really is the owner.
    """
    candidates: set[str] = set()
    for _, chat in chats:
        if chat["type"] != PERSONAL:
            continue
        senders = {
            _sender(m.get("from_id"))
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
        else "no personal chat shows both its peer (the chat id) and another sender"
    )  # fmt: skip
    raise TwinError(
        f"{file}: cannot tell which sender is you ({why}); pass --me with your user id, 'user123', "
        f"or your exact display name (senders: {_senders_hint(chats)})"
    )


# --------------------------------------------------------------------------------------- messages


def _flatten(text: list, file: Path, where: str) -> str:
    parts = []
    for p in text:
        if isinstance(p, str):
            parts.append(p)
        elif isinstance(p, dict) and isinstance(p.get("text", ""), str):
            parts.append(p.get("text", ""))
        else:
            raise TwinError(
                f"{where}: field 'text' must hold strings and {{type, text}} objects, got {_kind(p)}"
            )
    return "".join(parts)


def _repair(s: str) -> str:
    """Replace lone surrogates (only present after the stdlib fallback parse) with U+FFFD."""
    return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


class _Slow(Exception):
    """Raised inside the hot loop to hand an unusual message to :func:`_fields_slow`."""


# "T00:00:00Z" ... "T23:59:59Z": with a per-day cache of "YYYY-MM-DD", a date costs a lookup and a
# concatenation instead of gmtime + strftime (1.5 µs, a tenth of a million-message import).
_TIME_OF_DAY: list[str] = []


def _time_of_day() -> list[str]:
    if not _TIME_OF_DAY:
        _TIME_OF_DAY.extend(
            f"T{h:02d}:{m:02d}:{s:02d}Z" for h in range(24) for m in range(60) for s in range(60)
        )
    return _TIME_OF_DAY


def _edit_time(m: dict) -> int:
    for key in ("edited_unixtime", "date_unixtime"):
        v = m.get(key)
        if (isinstance(v, str) and v.isdigit()) or type(v) is int:
            return int(v)
    return 0


def _convert_chat(
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
    (string ``date_unixtime``, ``text`` and ``from_id``) takes the fast path; anything else (entity
    lists, deleted senders, old layouts, wrong types) goes through :func:`_fields_slow`, which
    normalises it or raises the precise error. ``originals`` keeps the edit time of edited or
    repeated messages only, to decide which copy of a repeated message wins.
    """
    dialog_id = chat["id"]
    name = chat.get("name")
    if fix_surrogates and name:
        name = _repair(name)
    tod = _time_of_day()
    days: dict[int, str] = {}
    gmtime, strftime = time.gmtime, time.strftime
    for i, m in enumerate(chat["messages"]):
        try:
            mtype = m["type"]
            if mtype != "message":
                if mtype == "service":
                    counts["service"] += 1
                    continue
                raise _Slow
            mid = m["id"]
            unix = m["date_unixtime"]
            text = m["text"]
            from_id = m["from_id"]
            if (
                type(mid) is not int
                or type(unix) is not str
                or type(text) is not str
                or type(from_id) is not str
            ):
                raise _Slow
            if not unix.isdigit():
                raise _Slow
            d, sec = divmod(int(unix), 86400)
            day = days.get(d)
            if day is None:
                day = days[d] = strftime("%Y-%m-%d", gmtime(d * 86400))
            date = day + tod[sec]
        except (_Slow, KeyError, TypeError, OverflowError, OSError, ValueError):
            got = _fields_slow(m, i, where_chat, file, zone, counts)
            if got is None:
                continue
            mid, date, text, from_id = got
        if fix_surrogates:
            text = _repair(text)
        reply_to = m.get("reply_to_message_id")
        if reply_to is not None and type(reply_to) is not int:
            raise TwinError(
                f"{file}: {where_chat}.messages[{i}] (id {mid}): field 'reply_to_message_id' must be an "
                f"integer, got {_kind(reply_to)}"
            )
        media = m.get("media_type")
        if media is None:
            if "photo" in m:
                media = "photo"
            elif "file" in m:
                media = "file"
            elif not text:  # polls, locations, contacts... carry no text of their own
                for key, kind in MEDIA_KEYS:
                    if key in m:
                        media = kind
                        break
        elif type(media) is not str:
            raise TwinError(
                f"{file}: {where_chat}.messages[{i}] (id {mid}): field 'media_type' must be a string, "
                f"got {_kind(media)}"
            )
        if not text:
            if media is None:
                counts["empty"] += 1
                continue
            counts["media_only"] += 1

        rec = {
            "source": SOURCE,
            "dialog_id": dialog_id,
            "dialog_name": name,
            "id": mid,
            "date": date,
            "out": from_id == owner,
            "text": text,
            "reply_to": reply_to,
            "forwarded": "forwarded_from" in m,
            "media": media,
        }
        if mid in by_id:
            # The same message twice (e.g. a chat listed in both 'chats' and 'left_chats'): the
            # copy edited last wins, so the latest text is kept; on a tie, the later copy.
            counts["duplicate"] += 1
            prev = originals.get(mid)
            if prev is not None and prev > _edit_time(m):
                continue
            originals[mid] = _edit_time(m)
        elif "edited_unixtime" in m or "edited" in m:
            originals[mid] = _edit_time(m)
        by_id[mid] = rec


def _fields_slow(
    m: Any, i: int, where_chat: str, file: Path, zone: tzinfo | None, counts: Counter[str]
) -> tuple[int, str, str, str | None] | None:
    """``(id, date, text, from_id)`` of an unusual message, None to skip it, or a precise TwinError."""
    where = f"{file}: {where_chat}.messages[{i}]"
    if type(m) is not dict:
        raise TwinError(f"{where} must be a JSON object, got {_kind(m)}")
    mtype = m.get("type")
    if mtype != "message":
        if isinstance(mtype, str):  # a kind newer than this importer: skip it, don't fail
            counts["other_type"] += 1
            return None
        raise TwinError(f"{where}: field 'type' must be a string such as 'message', got {_kind(mtype)}")
    mid = m.get("id")
    if type(mid) is not int:
        raise TwinError(f"{where}: field 'id' must be an integer, got {_kind(mid)}")
    where = f"{where} (id {mid})"

    unix = m.get("date_unixtime")
    try:
        if unix is not None:
            if type(unix) is not int and not (type(unix) is str and unix.isdigit()):
                raise ValueError
            date = time.strftime(_ISO_Z, time.gmtime(int(unix)))
        else:
            date = _local_date(m.get("date"), zone)
            counts["local_dates"] += 1
    except (ValueError, TypeError, OverflowError, OSError):
        raise TwinError(
            f"{where}: bad date (date_unixtime: {_kind(unix)}, date: {_kind(m.get('date'))}); expected "
            "'date_unixtime' as Unix seconds or 'date' as local time like 2024-03-01T09:00:00"
        ) from None

    text = m.get("text", "")
    if type(text) is not str:
        if type(text) is list:
            text = _flatten(text, file, where)
        elif text is None:
            text = ""
        else:
            raise TwinError(f"{where}: field 'text' must be a string or a list, got {_kind(text)}")

    from_id = m.get("from_id")
    if from_id is not None and type(from_id) is not str and type(from_id) is not int:
        raise TwinError(f"{where}: field 'from_id' must be like 'user123', got {_kind(from_id)}")
    return mid, date, text, _sender(from_id)


def _local_date(value: Any, zone: tzinfo | None) -> str:
    if not isinstance(value, str):
        raise TypeError
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        # Desktop's 'date' is the exporting machine's wall time without a zone.
        dt = dt.replace(tzinfo=zone) if zone is not None else dt.astimezone()
    return dt.astimezone(UTC).strftime(_ISO_Z)


# ---------------------------------------------------------------------------------------- writing


def _plan_writes(out_dir: Path, dialogs: dict[int, bytes], counts: Counter[str]) -> list[tuple[Path, bytes]]:
    """``(file, new content)`` per dialog file to write, after merging with what is on disk.

    Every existing file is read and merged here, before any write, so a bad one fails the import
    with nothing changed. Files whose content would not change are left out (and untouched).
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise TwinError(f"{out_dir}: exists and is not a folder; pass another --out")
    plan = []
    for dialog_id, blob in sorted(dialogs.items()):
        target = out_dir / f"{dialog_id}.jsonl"
        if target.exists():
            if target.read_bytes() == blob:
                continue  # a re-import of the same chat: nothing to merge, nothing to write
            # Canonical field order, as encode_rows needs.
            existing = [{k: r.get(k) for k in FIELDS} for r in read_dialog(target)]
            known = {r["id"] for r in existing}
            new = decode_rows(blob)
            counts["new"] += sum(r["id"] not in known for r in new)
            merged = merge_records(existing, new)
            if merged == existing:
                continue  # the same content: leave the file (and its mtime) alone
            plan.append((target, encode_rows(merged)))
        else:
            counts["new"] += blob.count(b"\n")
            plan.append((target, blob))
    return plan


def commit(plan: list[tuple[Path, bytes]]) -> None:
    """Write every planned dialog file, all or nothing as far as a file system allows.

    Each file is written in full to a temp file beside its target and fsynced; only when all of
    them are written are they renamed over their targets (a rename is atomic). A failure while
    writing (disk full, permissions) removes the temp files and leaves every target as it was.
    """
    temps: list[tuple[str, Path]] = []
    try:
        for target, content in plan:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            temps.append((tmp, target))
            with os.fdopen(fd, "wb") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
    except BaseException:
        for tmp, _ in temps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
    for tmp, target in temps:
        os.replace(tmp, target)


class _bar:
    """A tqdm bar on a terminal when ``total`` > 0 (big imports); nothing otherwise (tests, pipes)."""

    def __init__(self, total: int, desc: str, unit: str):
        self.total, self.desc, self.unit, self.bar = total, desc, unit, None

    def __enter__(self) -> _bar:
        if self.total > 0:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc=self.desc, unit=self.unit, disable=None, leave=False)
        return self

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
