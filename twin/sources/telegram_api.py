"""``twin export telegram``: your one-to-one chats through the Telegram API (telethon).

Incremental and resumable by construction: for every dialog the newest message id already in
``<out>/telegram/<dialog_id>.jsonl`` is the lower bound of the next fetch (``min_id``), and
messages are written in chunks (merge with what is on disk + atomic rewrite), so an interrupted
run keeps everything it wrote and the next run continues after it without duplicates.

Only :func:`export_telegram` touches the outside world (credentials, session file, network);
:func:`export_dialogs` takes any object with telethon's client interface (``iter_dialogs``,
``iter_messages``), which is how the tests drive it with a fake client built from telethon's
own types. telethon itself is imported lazily so ``twin --help`` stays fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from twin.account import check_owner, save_owner, save_phone_region
from twin.errors import TwinError
from twin.records import merge_records, read_dialog, write_dialog
from twin.telegram import (
    SOURCE,
    Credentials,
    Sleep,
    classify_dialog,
    dialog_name,
    export_id,
    load_credentials,
    login,
    message_record,
    prepare_session,
    secure_session,
    session_file,
    telethon_client,
)

log = logging.getLogger(__name__)


CHUNK_SIZE = 500  # messages per atomic write: the most an interruption can cost is one chunk


ClientFactory = Callable[[Path, int, str], Any]


def parse_since(since: str | datetime | None) -> datetime | None:
    """``--since`` as an aware UTC datetime: ``YYYY-MM-DD`` (midnight UTC) or a full ISO date-time."""
    if since is None or isinstance(since, datetime):
        if isinstance(since, datetime) and since.tzinfo is None:
            return since.replace(tzinfo=UTC)
        return since
    try:
        dt = datetime.fromisoformat(since.strip().replace("Z", "+00:00"))
    except ValueError:
        raise TwinError(f"--since {since!r}: expected a date like 2024-03-01 (UTC)") from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def dialog_path(out_root: Path, dialog_id: int) -> Path:
    return Path(out_root) / SOURCE / f"{dialog_id}.jsonl"


@dataclass
class _Stats:
    dialogs: int = 0
    new_messages: int = 0
    media_only: int = 0
    skipped_service: int = 0
    flood_waits: int = 0
    on_disk: int = 0  # messages in the exported dialogs' files after the run
    skipped_dialogs: dict[str, int] = field(default_factory=dict)


@dataclass
class _DialogFile:
    """One dialog's records on disk, plus those fetched and not yet written (``flush`` writes them)."""

    path: Path
    on_disk: list[dict]
    buffer: list[dict] = field(default_factory=list)
    added: int = 0  # records fetched by this run

    @classmethod
    def open(cls, path: Path) -> _DialogFile:
        return cls(path, read_dialog(path) if path.exists() else [])

    def newest_id(self) -> int:
        return max((r["id"] for r in self.on_disk), default=0)

    def add(self, rec: dict) -> None:
        self.buffer.append(rec)
        self.added += 1

    def flush(self) -> None:
        if not self.buffer:
            return
        merged = merge_records(self.on_disk, self.buffer)
        write_dialog(self.path, merged)
        self.on_disk, self.buffer = merged, []


async def _wait_flood(error: Any, sleep: Sleep, stats: _Stats) -> None:
    seconds = int(getattr(error, "seconds", 0) or 0)
    stats.flood_waits += 1
    log.warning("Telegram asks to wait %d s (flood limit); waiting, then continuing", seconds)
    await sleep(seconds + 1)  # +1: the server rounds down


async def _select_dialogs(
    client: Any,
    *,
    limit_dialogs: int | None,
    since: datetime | None,
    include_groups: bool,
    sleep: Sleep,
    stats: _Stats,
) -> list[Any]:
    from telethon.errors import FloodWaitError

    while True:
        chosen: list[Any] = []
        skipped: dict[str, int] = {}
        try:
            # Most recent first, so --limit-dialogs N keeps the N most recent eligible chats.
            async for dialog in client.iter_dialogs():
                reason = classify_dialog(dialog, include_groups)
                if reason is None and since is not None and dialog.date is not None and dialog.date < since:
                    reason = "no_messages_since"
                if reason is not None:
                    skipped[reason] = skipped.get(reason, 0) + 1
                    continue
                chosen.append(dialog)
                if limit_dialogs is not None and len(chosen) >= limit_dialogs:
                    break
        except FloodWaitError as e:
            await _wait_flood(e, sleep, stats)
            continue
        stats.skipped_dialogs = skipped
        return chosen


async def _fetch_newer(
    client: Any,
    dialog: Any,
    file: _DialogFile,
    *,
    since: datetime | None,
    chunk_size: int,
    stats: _Stats,
    bar: Any,
) -> None:
    """One pass over the dialog's messages newer than the newest on disk, written every ``chunk_size``."""
    # Resume point = newest message on disk; ids only grow within a dialog.
    min_id = file.newest_id()
    kwargs: dict[str, Any] = {"min_id": min_id, "reverse": True}
    if since is not None and min_id == 0:
        # reverse=True turns offset_date into "after this date" (exclusive, whole seconds).
        kwargs["offset_date"] = since - timedelta(seconds=1)
    messages = client.iter_messages(dialog.input_entity, **kwargs)
    did, name = export_id(dialog), dialog_name(dialog)
    async for message in messages:
        if min_id == 0 and bar.total is None and getattr(messages, "total", None):
            # telethon learns the dialog's size with the first page; on an incremental
            # fetch that size is not what is left, so the bar just counts.
            bar.total = messages.total
        bar.update(1)
        rec = message_record(message, did, name, group=bool(dialog.is_group))
        if rec is None:
            stats.skipped_service += 1
            continue
        if since is not None and message.date < since:
            continue  # resumed fetch (min_id) ignores offset_date: filter here
        file.add(rec)
        stats.media_only += rec["text"] == ""
        if len(file.buffer) >= chunk_size:
            file.flush()


async def _export_one(
    client: Any,
    dialog: Any,
    path: Path,
    *,
    since: datetime | None,
    chunk_size: int,
    sleep: Sleep,
    stats: _Stats,
    progress: bool | None,
    label: str,
) -> tuple[int, int]:
    """Fetch one dialog's messages newer than what is on disk; returns (added, now on disk)."""
    from telethon.errors import FloodWaitError
    from tqdm import tqdm

    file = _DialogFile.open(path)
    bar = tqdm(desc=label, unit="msg", leave=False, disable=None if progress is None else not progress)
    try:
        while True:
            try:
                await _fetch_newer(
                    client, dialog, file, since=since, chunk_size=chunk_size, stats=stats, bar=bar
                )
            except FloodWaitError as e:
                file.flush()
                await _wait_flood(e, sleep, stats)
                continue  # the next pass starts after what is now on disk
            except BaseException:
                # Ctrl-C, a dropped connection, anything: keep what already arrived. The write is
                # atomic, so even an interrupt during it leaves the previous complete file.
                with contextlib.suppress(Exception):
                    file.flush()
                raise
            file.flush()
            return file.added, len(file.on_disk)
    finally:
        bar.close()


async def _export_counted(
    client: Any, dialog: Any, out_root: Path, label: str, stats: _Stats, **options: Any
) -> None:
    """:func:`_export_one`, a lost connection turned into a one-line error, the counts added to ``stats``."""
    did = export_id(dialog)
    label = f"{label} {(dialog_name(dialog) or str(did))[:24]}"
    try:
        added, n = await _export_one(
            client, dialog, dialog_path(out_root, did), stats=stats, label=label, **options
        )
    except (ConnectionError, TimeoutError) as e:
        raise TwinError(
            f"lost the connection to Telegram while exporting dialog {did} ({type(e).__name__}); "
            f"everything fetched so far is saved in {out_root / SOURCE}: run the same command again to continue"
        ) from None
    stats.dialogs += 1
    stats.new_messages += added
    stats.on_disk += n
    log.debug("dialog %d: %d new, %d on disk", did, added, n)


async def export_dialogs(
    client: Any,
    out_root: str | os.PathLike,
    *,
    limit_dialogs: int | None = None,
    since: str | datetime | None = None,
    include_groups: bool = False,
    chunk_size: int = CHUNK_SIZE,
    sleep: Sleep = asyncio.sleep,
    progress: bool | None = None,
) -> dict:
    """Export the chosen dialogs of a logged-in client into ``<out_root>/telegram/``; returns a summary.

    ``client`` needs telethon's ``iter_dialogs()`` and ``iter_messages(entity, min_id=, reverse=,
    offset_date=)``. ``sleep`` is awaited for flood waits (injectable so tests don't sleep).
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    out_root = Path(out_root)
    since_dt = parse_since(since)
    stats = _Stats()
    dialogs = await _select_dialogs(
        client,
        limit_dialogs=limit_dialogs,
        since=since_dt,
        include_groups=include_groups,
        sleep=sleep,
        stats=stats,
    )
    log.info("exporting %d dialog(s) to %s", len(dialogs), out_root / SOURCE)
    for i, dialog in enumerate(dialogs, 1):
        await _export_counted(client, dialog, out_root, f"[{i}/{len(dialogs)}]", stats,
                              since=since_dt, chunk_size=chunk_size, sleep=sleep, progress=progress)  # fmt: skip
    return _summary(stats, out_root)


def _summary(stats: _Stats, out_root: Path) -> dict:
    return {
        "dialogs": stats.dialogs,
        "new messages": stats.new_messages,
        "of them media only": stats.media_only,
        "messages on disk (these dialogs)": stats.on_disk,
        "skipped service/empty messages": stats.skipped_service,
        "skipped dialogs": dict(sorted(stats.skipped_dialogs.items())),
        "flood waits": stats.flood_waits,
        "out": str(out_root / SOURCE),
    }


async def _run(
    out_root: Path,
    creds: Credentials,
    session_path: Path,
    client_factory: ClientFactory,
    sleep: Sleep,
    progress: bool | None,
    chunk_size: int,
    **options: Any,
) -> dict:
    # The client is built inside the running loop: telethon binds to the loop it starts on.
    client = client_factory(session_path, creds.api_id, creds.api_hash)
    try:
        await login(client, creds.phone, sleep)
        secure_session(session_path)
        me = await _me(client)
        owner = f"user{me.id}" if isinstance(getattr(me, "id", None), int) else ""
        check_owner(out_root / SOURCE, owner)
        summary = await export_dialogs(
            client, out_root, sleep=sleep, progress=progress, chunk_size=chunk_size, **options
        )
        if summary["dialogs"]:  # whose chats, and the phone region (never the number), for `twin prepare`
            save_owner(out_root / SOURCE, owner)
            phone = getattr(me, "phone", None) or creds.phone
            summary["phone region"] = save_phone_region(out_root / SOURCE, phone)
        return summary
    finally:
        with contextlib.suppress(Exception):
            result = client.disconnect()
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                await result
        secure_session(session_path)


async def _me(client: Any) -> Any:
    """The logged-in account (telethon's ``User``), or None if Telegram does not say."""
    from telethon import errors

    try:
        return await client.get_me()
    except (TimeoutError, errors.RPCError, OSError):
        return None  # neither the owner check nor the phone region is a reason to fail the export


def export_telegram(
    out_root: str | os.PathLike,
    *,
    limit_dialogs: int | None = None,
    since: str | None = None,
    include_groups: bool = False,
    session: str | os.PathLike | None = None,
    env_file: str | os.PathLike | None = Path(".env"),
    client_factory: ClientFactory | None = None,
    sleep: Sleep = asyncio.sleep,
    progress: bool | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> dict:
    """``twin export telegram``: log in (first run interactive), export, return the summary dict.

    ``client_factory(session_path, api_id, api_hash)`` builds the client (default: telethon's
    ``TelegramClient``); tests pass a fake one.
    """
    creds = load_credentials(env_file)
    since_dt = parse_since(since)  # a bad --since fails before any login prompt
    if limit_dialogs is not None and limit_dialogs < 1:
        raise TwinError(f"--limit-dialogs must be at least 1, got {limit_dialogs}")
    path = session_file(session)
    prepare_session(path)
    return asyncio.run(
        _run(
            Path(out_root),
            creds,
            path,
            client_factory or telethon_client,
            sleep,
            progress,
            chunk_size,
            limit_dialogs=limit_dialogs,
            since=since_dt,
            include_groups=include_groups,
        )
    )
