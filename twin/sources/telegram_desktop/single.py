"""A big one-chat export, parsed a few megabytes of messages at a time.

A one-chat ``result.json`` is a single object, so the per-chat cut of an account export
(:func:`parse.chat_spans`) gains nothing there: parsed whole, a 115 MB chat peaks at 906 MiB
(the parsed messages and the records at once). Cut into runs of messages instead, only one run
is parsed at a time: 571 MiB. The cut relies on the same fact as ``chat_spans``: a raw newline never occurs
inside a JSON string, so ``"\\n" + 2 indents + "},"`` can only be the end of one message of the
chat's ``messages`` list. Every run is parsed on its own, so a wrong cut cannot go unnoticed; any
surprise (another layout, a bad message, a lone surrogate) hands the file to the whole-file parse,
which reports exact positions.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from twin.errors import TwinError
from twin.sources.telegram_desktop import parse
from twin.sources.telegram_desktop.owner import find_owner, parse_me
from twin.sources.telegram_desktop.parse import NotSplittable, check_chat, parse_json

# Below this size a one-chat export is parsed whole: it peaks at 8x its size then, but cutting it
# costs a third more time (the owner's senders take a pass of their own), worth it only where the
# memory matters (a 115 MB chat: 906 MiB peak whole, 571 MiB in runs).
RUNS_MIN_BYTES = 50_000_000

# Bytes of messages parsed at once: large enough that per-run overhead is nothing, small enough
# that one parsed run (about 8x its size in objects) stays far below the file's size.
RUN_BYTES = 8_000_000

WHERE = "the chat"


def message_runs(raw: bytes, run_bytes: int) -> tuple[bytes, list[tuple[int, int]], bytes]:
    """``(the chat without its messages, [(start, end)] of each run of whole messages, indent unit)``.

    Raises :class:`NotSplittable` unless ``raw`` is laid out as Desktop writes a one-chat export:
    ``"messages"`` the last key of the top object, its items one level deeper, nothing after it.
    """
    first = re.match(rb"\{\n( {1,8})\"", raw)
    if first is None:
        raise NotSplittable
    ind = first.group(1)
    head = raw.find(b"\n" + ind + b'"messages": [')
    if head == -1:
        raise NotSplittable
    items_from = raw.index(b"[", head) + 1
    items_to = raw.rfind(b"\n" + ind + b"]")
    if items_to < items_from or raw[items_to:].split() != [b"]", b"}"]:
        raise NotSplittable
    close, sep = b"\n" + ind * 2 + b"}", b",\n" + ind * 2 + b"{"
    runs: list[tuple[int, int]] = []
    pos = items_from
    while raw.find(b"{", pos, items_to) != -1:  # another message (each opens with its brace)
        cut = raw.find(close + sep, min(pos + run_bytes, items_to), items_to)
        end = items_to if cut == -1 else cut + len(close)
        runs.append((pos, end))
        pos = end + 1  # past the comma between two messages
    if not runs and raw[items_from:items_to].strip():
        raise NotSplittable  # items, but no message object: the whole-file parse names them
    return raw[:items_from] + raw[items_to:], runs, ind


def open_single(
    file: Path, raw: bytes, me: str | None, wanted: Callable[[str], bool], seconds: Counter[str]
) -> tuple[str, str, Iterator[tuple[str, dict, bool]], int, Any] | None:
    """``(owner, owner_from, chats, 1, None)`` as :func:`parse.open_split` gives, or None.

    The owner needs every sender when ``--me`` gives no id: a first pass over the runs counts
    them (one small tuple per distinct sender), and the owner rules then read them exactly as
    they read a whole parsed chat, errors and hints included.
    """
    if len(raw) < RUNS_MIN_BYTES or len(raw) < parse.SPLIT_MIN_BYTES:
        return None
    t0 = time.perf_counter()
    try:
        skeleton, runs, ind = message_runs(raw, RUN_BYTES)
        chat = orjson.loads(skeleton)
        check_chat(chat, WHERE, file)
    except (NotSplittable, orjson.JSONDecodeError, TwinError):
        return None  # the whole-file parse handles it, or reports it precisely
    if chat["id"] >= 1 << 32:
        return None  # maybe an old Desktop's shifted id, told by the messages: the whole-file parse
    seconds["parse"] += time.perf_counter() - t0
    if not wanted(chat["type"]) or not runs:  # nothing to import: no owner to look for
        if me is not None and not _is_id(me):
            return None  # a name is checked against the senders: the whole-file path does that
        if runs:  # counted as _split_chats counts a skipped chat: by its messages' opening lines
            chat["_message_count"] = sum(raw.count(b"\n" + ind * 2 + b"{", a, b) for a, b in runs)
        owner, owner_from = ("", "not needed: no chat to import") if me is None else _owner(file, chat, me)
        return owner, owner_from, iter([(WHERE, chat, False)]), 1, None
    try:
        senders = None if _is_id(me) else _count_senders(file, raw, runs, seconds)
    except NotSplittable:
        return None
    owner, owner_from = _owner(file, chat, me, senders)
    chat["messages"] = _messages(file, raw, runs, seconds)
    return owner, owner_from, iter([(WHERE, chat, False)]), 1, None


def _is_id(me: str | None) -> bool:
    return me is not None and parse_me(me) is not None


def _owner(file: Path, chat: dict, me: str | None, senders: Counter | None = None) -> tuple[str, str]:
    """:func:`owner.find_owner` on the chat, its messages stood in for by one per counted sender."""
    light = dict(chat)
    light["messages"] = [
        m
        for (name, from_id), n in (senders or {}).items()
        for m in [{"type": "message", "from": name, "from_id": from_id}] * n
    ]
    return find_owner({}, [(WHERE, light)], False, me, file)


def _count_senders(file: Path, raw: bytes, runs: list[tuple[int, int]], seconds: Counter[str]) -> Counter:
    """``(from, from_id) -> messages`` over every run, each run parsed and freed in turn."""
    senders: Counter = Counter()
    for messages in _parsed_runs(file, raw, runs, seconds):
        for m in messages:
            if isinstance(m, dict) and m.get("type") == "message":
                # other types the owner rules ignore too (a name never matches, an id is no sender)
                name, from_id = m.get("from"), m.get("from_id")
                name = name if isinstance(name, str) else None
                senders[(name, from_id if isinstance(from_id, str | int) else None)] += 1
    return senders


def _messages(file: Path, raw: bytes, runs: list[tuple[int, int]], seconds: Counter[str]) -> Iterator[dict]:
    for messages in _parsed_runs(file, raw, runs, seconds):
        yield from messages


def _parsed_runs(
    file: Path, raw: bytes, runs: list[tuple[int, int]], seconds: Counter[str]
) -> Iterator[list]:
    view = memoryview(raw)
    for start, end in runs:
        t0 = time.perf_counter()
        try:
            messages, fix = parse_json(file, b"[" + view[start:end] + b"]")
        except TwinError:  # its position would be relative to this run: parse it all
            raise NotSplittable from None
        if fix or not isinstance(messages, list):
            raise NotSplittable  # lone surrogates: the whole-file parse repairs them chat-wide
        seconds["parse"] += time.perf_counter() - t0
        yield messages
