"""Reading the export: the file, its JSON, and (for big account exports) its chats one by one."""

from __future__ import annotations

import codecs
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import orjson

from twin.errors import TwinError
from twin.sources.telegram_desktop.common import HOW_TO_EXPORT, HTML_EXPORT, PERSONAL, kind
from twin.sources.telegram_desktop.owner import parse_me, shell_word
from twin.telegram import SERVICE_USER_IDS

log = logging.getLogger(__name__)

# Below this size the whole file is parsed at once (simplest; memory is no concern there).
SPLIT_MIN_BYTES = 1_000_000


_CHAT_TYPE = re.compile(r"[a-z_]{1,40}")

# A chat with "type": null, and one with Telegram's own account (see check_chat), are counted as
# skipped under these names.
UNKNOWN_TYPE = "unknown"
SERVICE_TYPE = "service"


def resolve_file(path: Path) -> Path:
    """The export's ``result.json``: ``path`` itself, or at the top of the export folder ``path``.

    What a newcomer passes instead is one line naming what to do: an HTML export (re-export as
    JSON), the folder above the export (the ``result.json`` found one level deeper), a missing path.
    A leading ``~`` is the home folder: zsh (macOS's shell) leaves it in ``make ... FILE=~/...``.
    """
    path = path.expanduser()
    if path.is_dir():  # the export folder itself: Desktop puts result.json at its top
        if (path / "result.json").is_file():
            return path / "result.json"
        deeper = sorted(path.glob("*/result.json"))
        if deeper:
            more = f" (and {len(deeper) - 1} more export folders)" if len(deeper) > 1 else ""
            raise TwinError(
                f"{path}: no result.json at its top, but {deeper[0]}{more}; pass that file instead "
                f"(FILE={shell_word(str(deeper[0]))} with make)"
            )
        if _html_export(path):
            raise TwinError(f"{path}: {HTML_EXPORT}")
        raise TwinError(f"{path}: is a folder without result.json; pass the export's result.json")
    if not path.exists():
        raise TwinError(f"{path}: file not found; pass the result.json of a Telegram Desktop export")
    if path.suffix.lower() in (".html", ".htm"):
        raise TwinError(f"{path}: {HTML_EXPORT}")
    return path


def _html_export(folder: Path) -> bool:
    """Desktop's HTML export: messages.html (messages2.html ...) of a chat, export_results.html of an
    account (its chats in chats/chat_001/...), at the top or one folder deeper."""
    names = ("messages*.html", "export_results.html")
    return any(next(folder.glob(f"{sub}{n}"), None) for sub in ("", "*/") for n in names)


def parse_zone(tz: str | None) -> tzinfo | None:
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


def local_zone_name() -> str:
    """This machine's zone as the owner would name it: the IANA name (``TZ``, or the target of
    ``/etc/localtime``) when there is one, else the abbreviation (``CET``) and UTC offset."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if not tz or tz.startswith("/"):  # unset, or a zone file's path (TZ=:/etc/localtime)
        tz = os.path.realpath(tz or "/etc/localtime").partition("zoneinfo/")[2]
    now = datetime.now().astimezone()
    offset = now.strftime("%z")
    return f"{tz or now.tzname()}, UTC{offset[:3]}:{offset[3:]}"


def read_export(file: Path) -> bytes:
    try:
        raw = file.read_bytes()
    except OSError as e:
        raise TwinError(f"{file}: cannot read ({e.strerror}); check the path and permissions") from None
    return raw[len(codecs.BOM_UTF8) :] if raw.startswith(codecs.BOM_UTF8) else raw


# Two kinds of invalid JSON Telegram Desktop itself writes, so exporting again does not help:
# - a control character other than \n \r \t inside a text becomes "\x0B" (export_output_json.cpp
#   SerializeString), an escape JSON does not have; pasted text carries them (vertical tab, form
#   feed, NUL). The backslashes before it must be an even run, or the "\x" is a literal backslash.
# - version 4.1 wrote a custom emoji's document_id unquoted: "document_id": video_files/sticker.webm
_HEX_ESCAPE = re.compile(rb"(?<!\\)((?:\\\\)*)\\x([01][0-9A-Fa-f])")
_BARE_DOCUMENT_ID = re.compile(rb'(\n *"document_id": )([^"\n\-0-9][^\n]*?)(,?)(?=\n)')


def repair_desktop_json(raw: bytes | memoryview) -> bytes | None:
    """``raw`` with the invalid JSON that Telegram Desktop writes made valid; None if it has none.

    ``\\x0B`` becomes ``\\u000b`` (the same character) and an unquoted ``document_id`` is quoted.
    Lines stay where they were, so an error found afterwards still names the right line.
    """
    data = bytes(raw)
    fixed = data
    if b"\\x" in fixed:
        fixed = _HEX_ESCAPE.sub(rb"\1\\u00\2", fixed)
    if b'"document_id": ' in fixed:
        fixed = _BARE_DOCUMENT_ID.sub(_quote_document_id, fixed)
    return None if fixed == data else fixed


def _quote_document_id(m: re.Match[bytes]) -> bytes:
    value = m.group(2).rstrip()
    return m.group(1) + orjson.dumps(value.decode("utf-8", "replace")) + m.group(3)


def parse_json(file: Path, raw: bytes | memoryview) -> tuple[Any, bool]:
    """Parse with orjson. Returns ``(data, fix_surrogates)``.

    Invalid JSON of the kinds Telegram Desktop writes (see :func:`repair_desktop_json`) is repaired
    and parsed again. orjson rejects lone UTF-16 surrogates (``"\\ud83d"`` without its pair), which
    some exports contain; those are re-read with the standard library and their texts repaired later.
    """
    try:
        return orjson.loads(raw), False
    except orjson.JSONDecodeError as e:
        error = e
    repaired = repair_desktop_json(raw)
    if repaired is not None:
        log.debug("%s: repaired the invalid escapes Telegram Desktop writes", file.name)
        raw = repaired
        try:
            return orjson.loads(raw), False
        except orjson.JSONDecodeError as e:
            error = e
    if "surrogate" not in error.msg:
        raise parse_error(file, bytes(raw), error) from None
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


class NotSplittable(Exception):
    """The fast per-chat path does not apply; parse the whole file instead."""


def chat_spans(raw: bytes) -> tuple[bytes, list[tuple[str, int, int]], bytes]:
    """Cut a pretty-printed account export into its chats without parsing it.

    Returns the file with the chat lists emptied (the "skeleton": account info and other sections),
    ``(json path, start, end)`` of every chat object, and the indentation unit. It relies on one fact of JSON: a raw
    newline never occurs inside a string, so a newline followed by exactly ``k`` indentation units
    and a bracket is structure at depth ``k``. Any surprise raises :class:`NotSplittable`; the
    skeleton and each chat are parsed afterwards, so a wrong cut cannot go unnoticed.
    """
    first = re.match(rb"\{\n( {1,8})\"", raw)
    if first is None:
        raise NotSplittable
    unit = len(first.group(1))
    ind = b" " * unit
    spans: list[tuple[str, int, int]] = []
    pieces: list[bytes] = []
    pos = 0
    for section in ("chats", "left_chats"):
        head = raw.find(b"\n" + ind + b'"' + section.encode() + b'": {\n', pos)
        if head == -1:
            if section == "chats":
                raise NotSplittable
            continue
        close = raw.find(b"\n" + ind + b"}", head)  # the section object's own closing brace
        lst = raw.find(b"\n" + ind * 2 + b'"list": [\n', head, close)
        if close == -1 or lst == -1:
            raise NotSplittable
        items_from = raw.index(b"[", lst) + 1
        items_to = raw.find(b"\n" + ind * 2 + b"]", items_from, close)
        if items_to == -1:
            raise NotSplittable
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
                raise NotSplittable
            spans.append((f"{section}.list[{i}]", start + 1, end + len(close_tag)))
            at, i = end + len(close_tag), i + 1
        if raw[at:items_to].strip():
            raise NotSplittable
    pieces.append(raw[pos:])
    return b"".join(pieces), spans, ind


def open_split(
    file: Path, raw: bytes, me: str | None, wanted: Callable[[str], bool], seconds: Counter[str]
) -> tuple[str, str, Iterator[tuple[str, dict, bool]], int, Any] | None:
    """The per-chat path for an account export: ``(owner, owner_from, chats, count, account info)`` or None.

    Parsing chat by chat, and freeing each once converted, keeps the peak memory at about the
    file's size plus the records (the whole file at once also holds every parsed message and
    orjson's document tree: 2.4 GB for a 386 MB export). It needs the owner before any chat is
    read, so it applies when the account info or an id ``--me`` names them. Chats whose type is not
    ``wanted`` are not parsed at all: their type is read from the chat's own ``"type"`` line and
    their messages are counted by their opening lines (so damage inside a chat that is skipped
    anyway goes unnoticed on this path; everything imported is parsed and checked).
    """

    if len(raw) < SPLIT_MIN_BYTES or (me is not None and parse_me(me) is None):
        return None
    t0 = time.perf_counter()
    try:
        skeleton, spans, ind = chat_spans(raw)
        head, _ = parse_json(file, skeleton)  # repairs Desktop's "\x0B" in a bio or a session's device
    except (NotSplittable, TwinError, ValueError):
        return None
    seconds["parse"] += time.perf_counter() - t0
    if not isinstance(head, dict):
        return None
    info = head.get("personal_information")
    if me is not None:
        owner, owner_from = parse_me(me), "--me"
    else:
        uid = info.get("user_id") if isinstance(info, dict) else None
        if not (type(uid) is int or (isinstance(uid, str) and uid.isdigit())):
            return None  # missing or odd: the whole-file path finds the owner or says why not
        owner, owner_from = f"user{int(uid)}", "personal_information"
    return owner, owner_from, _split_chats(file, raw, spans, ind, wanted, seconds), len(spans), info


def _split_chats(
    file: Path,
    raw: bytes,
    spans: list[tuple[str, int, int]],
    ind: bytes,
    wanted: Callable[[str], bool],
    seconds: Counter[str],
) -> Iterator[tuple[str, dict, bool]]:
    """Yield ``(json path, chat, fix_surrogates)`` per span; unwanted chats only as their type and count."""
    view = memoryview(raw)
    type_tag, message_tag = b"\n" + ind * 4 + b'"type": "', b"\n" + ind * 5 + b"{"

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
        except orjson.JSONDecodeError:
            try:  # a lone surrogate or Desktop's own invalid escapes: repaired for this chat only
                chat, fix = parse_json(file, view[start:end])
            except TwinError:  # its position would be relative to this chat: parse it all
                raise NotSplittable from None
        seconds["parse"] += time.perf_counter() - t0
        check_chat(chat, where, file)
        yield where, chat, fix


def parse_error(file: Path, raw: bytes, e: Exception) -> TwinError:
    msg, line, col = e.msg, e.lineno, e.colno  # type: ignore[attr-defined]
    if not raw.strip():
        return TwinError(f"{file}: the file is empty; {HOW_TO_EXPORT}")
    if raw.lstrip()[:1] == b"<":
        return TwinError(f"{file}:{line}:{col}: not JSON (looks like HTML): {HTML_EXPORT}")
    if e.pos >= len(raw.rstrip()) or "end of data" in msg or "EOF" in msg:  # type: ignore[attr-defined]
        return TwinError(
            f"{file}:{line}:{col}: the JSON ends early ({msg} at line {line}, column {col}): the file is "
            "truncated; finish the download or export again"
        )
    return TwinError(
        f"{file}:{line}:{col}: not valid JSON ({msg} at line {line}, column {col}); {HOW_TO_EXPORT}"
    )


def chats_of(data: Any, file: Path) -> tuple[list[tuple[str, dict]], bool]:
    """``[(json path, chat)]`` after checking each chat's own fields; and whether it is an account export."""
    if not isinstance(data, dict):
        raise TwinError(
            f"{file}: not a Telegram Desktop export (the top level is a JSON {kind(data)}, "
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
                    f"{file}: field '{section}.list' must be a list of chats, got {kind(lst)}; "
                    f"this does not look like a Telegram Desktop export; {HOW_TO_EXPORT}"
                )
            for i, chat in enumerate(lst):
                where = f"{section}.list[{i}]"
                check_chat(chat, where, file)
                found.append((where, chat))
        return found, True
    if "messages" in data:
        check_chat(data, "the chat", file)
        return [("the chat", data)], False
    if isinstance(data.get("personal_information"), dict):  # "Account information" ticked, chats not
        raise TwinError(
            f"{file}: this account export holds no chats (only {', '.join(map(repr, data))}); export "
            f"again with 'Personal chats' ticked in Telegram Desktop: {HOW_TO_EXPORT.partition(': ')[2]}"
        )
    raise TwinError(
        f"{file}: valid JSON but not a Telegram Desktop export (no 'chats' or 'messages' field); "
        f"{HOW_TO_EXPORT}"
    )


def check_chat(chat: Any, where: str, file: Path) -> None:
    """Raise a one-line TwinError for a chat whose own fields are not as Desktop writes them.

    ``"type": null`` is what Desktop writes for a chat whose peer it could not load (its type is
    then unknown): such a chat becomes type ``unknown``, skipped like any other type not imported.
    Desktop before 2021 wrote a chat's ``id`` as its internal peer id: it becomes the bare id (see
    :func:`bare_chat_id`). Desktop calls the chats with Telegram's own accounts (service notifications with login codes,
    "Verification Codes") personal chats; they become type ``service``, skipped as the API exporter
    skips them.
    """
    if not isinstance(chat, dict):
        raise TwinError(f"{file}: {where} must be a JSON object, got {kind(chat)}")
    ctype = chat.get("type")
    if ctype is None and "type" in chat:
        chat["type"] = ctype = UNKNOWN_TYPE
    if not isinstance(ctype, str):
        raise TwinError(
            f"{file}: {where}: field 'type' must be a string such as 'personal_chat', got {kind(ctype)}"
        )
    cid = chat.get("id")
    if type(cid) is not int:
        raise TwinError(f"{file}: {where}: field 'id' must be an integer chat id, got {kind(cid)}")
    if cid >= _OLD_USER_SHIFT and isinstance(chat.get("messages"), list):
        chat["id"] = cid = bare_chat_id(cid, chat["messages"])
    if ctype == PERSONAL and cid in SERVICE_USER_IDS:
        chat["type"] = SERVICE_TYPE
    name = chat.get("name")
    if name is not None and not isinstance(name, str):
        raise TwinError(f"{file}: {where}: field 'name' must be a string, got {kind(name)}")
    msgs = chat.get("messages")
    if not isinstance(msgs, list):
        raise TwinError(f"{file}: {where}: field 'messages' must be a list, got {kind(msgs)}")


# Desktop before 2021 (the exports whose from_id is a bare integer) wrote a chat's id as its internal
# peer id: a user's id plus 2**32, a group's or channel's plus 2**33. Newer versions write the bare
# id, as the API does (and user ids above 2**32 exist since, so the value alone cannot tell).
_OLD_USER_SHIFT = 1 << 32
_OLD_CHAT_SHIFT = 2 << 32
_INT32 = 1 << 31


def bare_chat_id(cid: int, messages: list) -> int:
    """The chat's bare id (the peer's user id in a personal chat), whichever Desktop wrote ``cid``.

    Only an export of the old layout is shifted: the first message that names a sender says which
    (an integer ``from_id`` / ``actor_id`` is the old layout, ``"user123"`` the new one). Without
    the bare id a re-export with a newer Desktop, or the API exporter, would put the same chat in a
    second file, and the owner rule would not find the peer (``user<chat id>``) among the senders.
    """
    if not _old_layout(messages) or _speaks(cid, messages):
        return cid  # the new layout, or a tool's rewrite whose peer's id is the chat id already
    for shift in (_OLD_USER_SHIFT, _OLD_CHAT_SHIFT):
        if shift <= cid < shift + _INT32:  # ids were 32-bit signed then
            return cid - shift
    return cid


def _speaks(uid: int, messages: list) -> bool:
    return any(isinstance(m, dict) and m.get("from_id") == uid for m in messages)


def _old_layout(messages: list) -> bool:
    for m in messages:
        if isinstance(m, dict):
            sender = m.get("from_id", m.get("actor_id"))
            if sender is not None:  # an integer beyond 32 bits is a newer id, rewritten by some tool
                return type(sender) is int and 0 < sender < _INT32
    return False
