"""``twin export desktop``: import a Telegram Desktop "Export chat history" JSON into ``data/raw``.

Telegram Desktop writes ``result.json`` in two shapes: one chat (``{"name", "type", "id",
"messages"}``) or the whole account (``{"personal_information", "chats": {"list": [...]},
"left_chats": {"list": [...]}}``). Both become the raw record format of
:mod:`twin.records`, one file per dialog: ``<out>/telegram/<chat id>.jsonl``.

The import is all-or-nothing: the whole export is parsed and checked, and the dialog files already
on disk are read and merged, before the first file is written; then every file is written to a
temp file and only when all are written are they renamed into place. A bad export therefore
never changes ``data/raw``.

Speed (see ``bench/bench_import.py``): a big account export is cut into its chats at their
structural newlines and parsed chat by chat with orjson, each chat converted and encoded while hot
and its parsed messages freed, so peak memory stays near the file's size plus the output; a big
one-chat export is parsed a run of messages at a time (``single.py``); small or unusually laid-out
files are parsed whole.

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

import gc
import logging
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from twin.account import check_owner, save_owner, save_phone_region
from twin.sources.telegram_desktop.common import GROUP_TYPES, SOURCE, wanted
from twin.sources.telegram_desktop.convert import collect
from twin.sources.telegram_desktop.owner import check_me, count_senders, find_owner, sender_of, shell_word
from twin.sources.telegram_desktop.parse import (
    NotSplittable,
    chats_of,
    local_zone_name,
    open_split,
    parse_json,
    parse_zone,
    read_export,
    resolve_file,
)
from twin.sources.telegram_desktop.single import open_single
from twin.sources.telegram_desktop.write import commit, plan_writes

__all__ = ["commit", "import_desktop", "list_senders", "shell_word"]

log = logging.getLogger(__name__)
SKIP_REASONS = ("service", "empty", "duplicate", "other_type", "in_skipped_chats")


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
    created or changed; identical ones are left untouched), ``media_only`` (imported records
    without text, counted after de-duplication), ``local_dates`` (messages dated from the
    zone-less ``date``), ``skipped_chats`` (by chat type, and ``empty`` for chats without a single
    message to import), ``skipped_messages`` (by reason: ``service``, ``empty``, ``duplicate``,
    ``other_type``, ``in_skipped_chats``).
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
    file = resolve_file(path)
    zone = parse_zone(tz)
    check_me(me)
    seconds: Counter[str] = Counter()
    t0 = time.perf_counter()
    raw = read_export(file)
    seconds["read"] = time.perf_counter() - t0
    found = _collect_chat_by_chat(file, raw, me, zone, include_groups, seconds)
    if found is None:
        seconds = Counter(read=seconds["read"])
        found = _collect_whole_file(file, raw, me, zone, include_groups, seconds)
    del raw
    owner, owner_from, (dialogs, counts, skipped_chats), info = found

    out_dir = out_root / SOURCE
    if dialogs:
        check_owner(out_dir, owner)
    t0 = time.perf_counter()
    plan = plan_writes(out_dir, dialogs, counts)
    seconds["merge"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    commit(plan)
    region = _save_account(out_dir, owner, info) if dialogs else None
    seconds["write"] = time.perf_counter() - t0
    # Logged only now: a failed import prints its one error line and nothing else.
    if owner:  # none is looked for when no chat is imported: the warning below says why
        log.info("%s: owner %s (%s)", file.name, owner, owner_from)
    _warn_about(file, dialogs, counts, skipped_chats, include_groups, tz)
    _warn_if_owner_silent(file, dialogs, owner, owner_from)
    return {
        "file": str(file),
        "out": str(out_dir),
        "owner": owner,
        "owner_from": owner_from,
        "dialogs": len(dialogs),
        "messages": sum(blob.count(b"\n") for blob in dialogs.values()),
        "new_messages": counts["new"],
        "files_written": len(plan),
        "phone_region": region,
        "media_only": counts["media_only"],
        "local_dates": counts["local_dates"],
        "skipped_chats": dict(sorted(skipped_chats.items())),
        "skipped_messages": {k: counts[k] for k in SKIP_REASONS if counts[k]},
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
    }


def _collect_chat_by_chat(file, raw, me, zone, include_groups, seconds):  # noqa: ANN001, ANN202
    """The fast path for big exports: ``(owner, owner_from, collected, info)``, or None when it does not apply.

    An account export is parsed chat by chat; a one-chat export a few megabytes of messages at a time.
    """
    opened, how = open_split(file, raw, me, lambda t: wanted(t, include_groups), seconds), "chat by chat"
    if opened is None:
        opened = open_single(file, raw, me, lambda t: wanted(t, include_groups), seconds)
        how = "a run of messages at a time"
    if opened is None:
        return None
    owner, owner_from, source, n_chats, info = opened
    try:
        collected = collect(file, source, n_chats, owner, zone, include_groups, seconds)
    except NotSplittable:
        return None  # an unusual chat: the whole-file parse handles it (and reports exact positions)
    log.debug("%s: parsed %s", file.name, how)
    return owner, owner_from, collected, info


def _collect_whole_file(file, raw, me, zone, include_groups, seconds):  # noqa: ANN001, ANN202
    """One chat, an unusual layout, a bad chat, or an owner that needs every message to find."""
    t0 = time.perf_counter()
    data, fix = parse_json(file, raw)
    seconds["parse"] += time.perf_counter() - t0
    chats, account = chats_of(data, file)
    if me is None and not any(wanted(c["type"], include_groups) and c["messages"] for _, c in chats):
        owner, owner_from = "", "not needed: no chat to import"  # don't ask for --me in vain
    else:
        owner, owner_from = find_owner(data, chats, account, me, file)
    info = data.get("personal_information") if account else None
    del data
    source = ((w, c, fix) for w, c in chats)
    return owner, owner_from, collect(file, source, len(chats), owner, zone, include_groups, seconds), info


def _save_account(out_dir: Path, owner: str, info: Any) -> str | None:
    """Whose chats these are, and the region of the account's phone number (never the number), beside
    the dialogs (``account.json``); returns the region.

    The region only when the account is the owner's: ``--me`` may name someone else than the exporting account.
    """
    save_owner(out_dir, owner)
    if not isinstance(info, dict) or sender_of(_as_id(info.get("user_id"))) != owner:
        return None
    return save_phone_region(out_dir, info.get("phone_number"))


def _as_id(uid: Any) -> Any:
    return int(uid) if isinstance(uid, str) and uid.isdigit() else uid


def _warn_about(
    file: Path,
    dialogs: dict[int, bytes],
    counts: Counter[str],
    skipped_chats: Counter[str],
    include_groups: bool,
    tz: str | None,
) -> None:
    """One line per thing the owner should know about: nothing imported, repeated ids, guessed dates."""
    groups = sum(n for chat_type, n in skipped_chats.items() if chat_type in GROUP_TYPES)
    if not dialogs:
        hint = _nothing_hint(skipped_chats, groups, include_groups)
        log.warning(
            "%s: nothing to import (chats skipped: %s)%s", file.name, dict(skipped_chats) or "none", hint
        )
    if dialogs and groups and not include_groups:
        log.info(
            "%d group chat(s) skipped: personal chats only; add --include-groups to learn from your group "
            "replies too (make export-desktop ... ARGS=--include-groups)",
            groups,
        )
    if counts["only_own_groups"]:
        log.warning(
            "%d group chat(s) hold only your own messages, nothing you replied to: Desktop exports groups "
            "you left that way, and the others when 'Only my messages' is ticked in its export settings",
            counts["only_own_groups"],
        )
    if counts["repeated_id"]:
        log.warning(
            "%s: %d duplicate message(s) dropped: same id and date as another message of the same chat "
            "(the copy edited last is kept); the export may be damaged: export it again",
            file.name,
            counts["repeated_id"],
        )
    if counts["shared_id"]:
        log.warning(
            "%s: %d message(s) share their id with another message of the same chat but not its date: "
            "kept as distinct messages (ids in this export are not unique; was it edited by another tool?)",
            file.name,
            counts["shared_id"],
        )
    if counts["zero_unixtime"]:
        log.warning(
            "%s: %d message(s) had date_unixtime 0 (not a real date): dated from their local 'date' instead",
            file.name,
            counts["zero_unixtime"],
        )
    if counts["local_dates"]:
        # An old export's wall-clock dates are only right in the zone of the machine that exported
        # them: name the zone used and how to pick another, or the owner cannot tell it was a guess.
        log.info(
            "%d message(s) had no usable date_unixtime: their local 'date' was read in %s",
            counts["local_dates"],
            tz
            or f"this machine's time zone ({local_zone_name()}); if the export was made in another zone, "
            'import again with --tz ZONE, e.g. --tz Europe/Berlin (make: ARGS="--tz Europe/Berlin")',
        )


def _warn_if_owner_silent(file: Path, dialogs: dict[int, bytes], owner: str, owner_from: str) -> None:
    """A --me (or account id) that sent none of the imported messages: all are imported as the others',
    and prepare finds nothing to learn. Legitimate for a one-chat export only the contact wrote in
    (--me is asked for then), so a warning naming the way out, not an error."""
    # encoded records: a text's quotes are escaped, so this byte string is only ever the field
    if not dialogs or any(b'"out":true' in blob for blob in dialogs.values()):
        return
    n = sum(blob.count(b"\n") for blob in dialogs.values())
    log.warning(
        "%s: none of the %d imported messages is from you (%s, from %s): all count as the other side's, "
        "and twin prepare will find no reply of yours; if that is not your id, import again with the right "
        "--me (twin export desktop %s --list-senders lists them)",
        file.name, n, owner, owner_from, shell_word(str(file)),
    )  # fmt: skip


def _nothing_hint(skipped_chats: Counter[str], groups: int, include_groups: bool) -> str:
    """What would import something: --include-groups only helps when groups were skipped, so a
    one-chat export of a channel, a bot or saved messages is not sent after it in vain."""
    if groups and not include_groups:
        return "; add --include-groups to import groups (make export-desktop ... ARGS=--include-groups)"
    if not skipped_chats:  # an account export whose chat list is empty
        return "; the export holds no chats: export again with 'Personal chats' ticked"
    if set(skipped_chats) <= {"empty"}:
        return ""  # chats without a message to import: nothing else to export
    return (
        "; twin imports personal chats (and groups, with --include-groups), never channels, bots or saved "
        "messages: export a personal chat, or the whole account with 'Personal chats' ticked"
    )


def list_senders(path: str | os.PathLike) -> list[tuple[str, str, int]]:
    """Every sender of the export as ``(display name, user123, messages)``, for choosing ``--me``."""
    file = resolve_file(Path(path))
    data, _ = parse_json(file, read_export(file))
    chats, _ = chats_of(data, file)
    return count_senders(chats)
