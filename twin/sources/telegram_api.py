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
import re
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from twin.errors import TwinError
from twin.sources.records import iso_utc, make_record, merge_records, read_dialog, write_dialog

log = logging.getLogger(__name__)

SOURCE = "telegram"
CHUNK_SIZE = 500  # messages per atomic write: the most an interruption can cost is one chunk
DEFAULT_SESSION = Path("~/.config/twin/telegram.session")
SERVICE_USER_ID = 777000  # "Telegram" service notifications (login codes): not a person
CREDENTIALS_HELP = (
    "get them at https://my.telegram.org → API development tools, and put them in the environment "
    "or in .env as TELEGRAM_API_ID=... and TELEGRAM_API_HASH=... (optional TELEGRAM_PHONE=+...)"
)

Sleep = Callable[[float], Awaitable[Any]]
ClientFactory = Callable[[Path, int, str], Any]


# --------------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class Credentials:
    api_id: int
    api_hash: str = field(repr=False)  # never in a repr, a log line or an error message
    phone: str | None = field(default=None, repr=False)


def load_credentials(env_file: str | os.PathLike | None = Path(".env")) -> Credentials:
    """TELEGRAM_API_ID / TELEGRAM_API_HASH / TELEGRAM_PHONE from the environment, else ``env_file``.

    The environment wins over the file (the usual dotenv rule). Errors name where the value came
    from and never echo the hash.
    """
    from dotenv import dotenv_values

    env_path = Path(env_file) if env_file is not None else None
    file_values: dict[str, str | None] = {}
    if env_path is not None and env_path.is_file():
        try:
            file_values = dict(dotenv_values(env_path))
        except (OSError, UnicodeDecodeError) as e:
            raise TwinError(f"{env_path}: cannot read it ({type(e).__name__}); {CREDENTIALS_HELP}") from None

    def get(name: str) -> tuple[str | None, str]:
        value = os.environ.get(name)
        if value and value.strip():
            return value.strip(), f"environment variable {name}"
        value = file_values.get(name)
        if value and value.strip():
            return value.strip(), f"{name} in {env_path}"
        return None, ""

    api_id, id_where = get("TELEGRAM_API_ID")
    api_hash, hash_where = get("TELEGRAM_API_HASH")
    phone, _ = get("TELEGRAM_PHONE")
    missing = [n for n, v in (("TELEGRAM_API_ID", api_id), ("TELEGRAM_API_HASH", api_hash)) if not v]
    if missing:
        looked = "the environment" + (
            f" and {env_path}" if env_path is not None and env_path.is_file() else f" ({env_path} not found)"
        )
        raise TwinError(
            f"Telegram API credentials missing: {' and '.join(missing)} not set in {looked}; {CREDENTIALS_HELP}"
        )
    assert api_id is not None and api_hash is not None
    if not re.fullmatch(r"\d{1,12}", api_id):
        raise TwinError(
            f"{id_where} must be the numeric api_id from https://my.telegram.org, got a non-number"
        )
    # api_hash is 32 hex digits; say so without repeating the value.
    if not re.fullmatch(r"[0-9a-fA-F]{32}", api_hash):
        raise TwinError(
            f"{hash_where} does not look like an api_hash (32 hex characters); "
            "copy it again from https://my.telegram.org → API development tools"
        )
    return Credentials(api_id=int(api_id), api_hash=api_hash, phone=phone)


# --------------------------------------------------------------------------- session file


def session_file(session: str | os.PathLike | None) -> Path:
    """The session path telethon will really use (it appends ``.session`` when missing)."""
    path = Path(session if session is not None else DEFAULT_SESSION).expanduser()
    if path.suffix != ".session":
        path = path.with_name(path.name + ".session")
    return path.absolute()


def prepare_session(path: Path) -> None:
    """Create the session's directory 0700 and the file 0600 *before* telethon opens it.

    The session file is a login token for the whole account, so it must never exist with a
    world-readable mode, not even for the moment between sqlite creating it and a chmod.
    (sqlite treats an empty file as an empty database.)
    """
    directory = path.parent
    created = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if created or directory == DEFAULT_SESSION.expanduser().parent:
            os.chmod(directory, 0o700)
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    except OSError as e:
        raise TwinError(
            f"{path}: cannot create the Telegram session file ({e.strerror}); choose another place with --session"
        ) from None
    secure_session(path)


def secure_session(path: Path) -> None:
    """chmod 0600 the session file and any sqlite side file telethon left next to it."""
    for p in (path, path.with_name(path.name + "-journal")):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(p, stat.S_IRUSR | stat.S_IWUSR)


# --------------------------------------------------------------------------- messages -> records


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


def media_kind(message: Any) -> str | None:
    """What a message carries besides text: "photo", "sticker", "voice_message", ... or None.

    Names are Telegram Desktop's ``media_type`` values (and its key names for the rest), so a
    dialog's file reads the same whichever exporter wrote it. Uses telethon's own Message properties. Link previews are not media (the text is the
    message); stickers, round videos and GIFs are checked before "video" because their
    documents carry a video attribute too.
    """
    from telethon.tl import types

    media = message.media
    if media is None or isinstance(media, types.MessageMediaEmpty | types.MessageMediaWebPage):
        return None
    checks = (
        ("sticker", message.sticker),
        ("voice_message", message.voice),
        ("video_message", message.video_note),
        ("animation", message.gif),
        ("video_file", message.video),
        ("audio_file", message.audio),
        ("photo", message.photo),
        ("file", message.document),
        ("poll", message.poll),
        ("location", message.geo or message.venue),
        ("contact", message.contact),
        ("dice", message.dice),
        ("game", message.game),
        ("invoice", message.invoice),
    )
    for name, value in checks:
        if value:
            return name
    return "other"  # stories, giveaways, paid media, unsupported...


def message_record(message: Any, dialog_id: int, dialog_name: str | None) -> dict | None:
    """One telethon message as a raw record, or None for what is not a message of a person.

    Service messages (joins, calls, pins...) and empty messages are skipped; a caption is the
    message text (telethon keeps it in ``message.message``); media without a caption is kept with
    ``text=""`` and ``media`` set, so later stages see the turn timing.
    """
    from telethon.tl import types

    if not isinstance(message, types.Message) or message.date is None:
        return None  # MessageService, MessageEmpty
    text = message.message or ""
    media = media_kind(message)
    if not text and media is None:
        return None
    reply = message.reply_to
    reply_to = None
    # A reply to a message of *another* chat (reply_to_peer_id) has an id that means nothing here.
    if isinstance(reply, types.MessageReplyHeader) and reply.reply_to_peer_id is None:
        reply_to = reply.reply_to_msg_id
    return make_record(
        source=SOURCE,
        dialog_id=dialog_id,
        dialog_name=dialog_name,
        id=int(message.id),
        date=iso_utc(message.date),
        out=bool(message.out),
        text=text,
        reply_to=reply_to,
        forwarded=message.fwd_from is not None,
        media=media,
    )


# --------------------------------------------------------------------------- dialogs


def classify_dialog(dialog: Any, include_groups: bool) -> str | None:
    """None when the dialog is exported, else the reason it is skipped (a summary key)."""
    from telethon.tl import types

    entity = dialog.entity
    if isinstance(entity, types.User):
        if entity.is_self:
            return "saved_messages"
        if entity.bot:
            return "bots"
        if entity.id == SERVICE_USER_ID or entity.support:
            return "service"
        return None
    if isinstance(entity, types.Channel) and not entity.megagroup:
        return "channels"
    if isinstance(entity, types.ChatForbidden | types.ChannelForbidden):
        return "groups_left"  # no access to the history any more
    if dialog.is_group:
        return None if include_groups else "groups"
    return "other"


def dialog_name(dialog: Any) -> str | None:
    from telethon.tl import types

    name = (dialog.name or "").strip()
    if name:
        return name
    entity = dialog.entity
    if isinstance(entity, types.User) and entity.deleted:
        return "Deleted Account"
    return None


def export_id(dialog: Any) -> int:
    """The dialog's id in raw files: the entity's bare id, as Telegram Desktop writes it.

    telethon's ``dialog.id`` is a "marked" peer id (groups negative, supergroups -100...), which
    would put the same group in two files when both exporters are used.
    """
    return int(dialog.entity.id)


def dialog_path(out_root: Path, dialog_id: int) -> Path:
    return Path(out_root) / SOURCE / f"{dialog_id}.jsonl"


@dataclass
class _Stats:
    dialogs: int = 0
    new_messages: int = 0
    media_only: int = 0
    skipped_service: int = 0
    flood_waits: int = 0
    skipped_dialogs: dict[str, int] = field(default_factory=dict)


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

    on_disk: list[dict] = read_dialog(path) if path.exists() else []
    name = dialog_name(dialog)
    added = 0
    buffer: list[dict] = []

    def flush() -> None:
        nonlocal on_disk, buffer
        if not buffer:
            return
        merged = merge_records(on_disk, buffer)
        write_dialog(path, merged)
        on_disk, buffer = merged, []

    bar = tqdm(desc=label, unit="msg", leave=False, disable=None if progress is None else not progress)
    try:
        while True:
            # Resume point = newest message on disk; ids only grow within a dialog.
            min_id = max((r["id"] for r in on_disk), default=0)
            kwargs: dict[str, Any] = {"min_id": min_id, "reverse": True}
            if since is not None and min_id == 0:
                # reverse=True turns offset_date into "after this date" (exclusive, whole seconds).
                kwargs["offset_date"] = since - timedelta(seconds=1)
            messages = client.iter_messages(dialog.input_entity, **kwargs)
            try:
                async for message in messages:
                    if min_id == 0 and bar.total is None and getattr(messages, "total", None):
                        # telethon learns the dialog's size with the first page; on an incremental
                        # fetch that size is not what is left, so the bar just counts.
                        bar.total = messages.total
                    bar.update(1)
                    rec = message_record(message, export_id(dialog), name)
                    if rec is None:
                        stats.skipped_service += 1
                        continue
                    if since is not None and message.date < since:
                        continue  # resumed fetch (min_id) ignores offset_date: filter here
                    buffer.append(rec)
                    added += 1
                    stats.media_only += rec["text"] == ""
                    if len(buffer) >= chunk_size:
                        flush()
            except FloodWaitError as e:
                flush()
                await _wait_flood(e, sleep, stats)
                continue  # min_id is recomputed from what is now on disk
            except BaseException:
                # Ctrl-C, a dropped connection, anything: keep what already arrived. The write is
                # atomic, so even an interrupt during it leaves the previous complete file.
                with contextlib.suppress(Exception):
                    flush()
                raise
            flush()
            return added, len(on_disk)
    finally:
        bar.close()


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
    total_on_disk = 0
    for i, dialog in enumerate(dialogs, 1):
        did = export_id(dialog)
        path = dialog_path(out_root, did)
        label = f"[{i}/{len(dialogs)}] {(dialog_name(dialog) or str(did))[:24]}"
        try:
            added, n = await _export_one(
                client,
                dialog,
                path,
                since=since_dt,
                chunk_size=chunk_size,
                sleep=sleep,
                stats=stats,
                progress=progress,
                label=label,
            )
        except (ConnectionError, TimeoutError) as e:
            raise TwinError(
                f"lost the connection to Telegram while exporting dialog {did} ({type(e).__name__}); "
                f"everything fetched so far is saved in {out_root / SOURCE}: run the same command again to continue"
            ) from None
        stats.dialogs += 1
        stats.new_messages += added
        total_on_disk += n
        log.debug("dialog %d: %d new, %d on disk", did, added, n)
    return {
        "dialogs": stats.dialogs,
        "new messages": stats.new_messages,
        "of them media only": stats.media_only,
        "messages on disk (these dialogs)": total_on_disk,
        "skipped service/empty messages": stats.skipped_service,
        "skipped dialogs": dict(sorted(stats.skipped_dialogs.items())),
        "flood waits": stats.flood_waits,
        "out": str(out_root / SOURCE),
    }


# --------------------------------------------------------------------------- the command


def telethon_client(session_path: Path, api_id: int, api_hash: str, *, catch_up: bool = False) -> Any:
    """telethon's client on the session file; ``catch_up``: replay updates missed while disconnected."""
    from telethon import TelegramClient

    # flood_sleep_threshold=0: every flood wait reaches our handler, which says so and waits
    # (telethon would otherwise sleep through waits under a minute silently).
    return TelegramClient(str(session_path), api_id, api_hash, flood_sleep_threshold=0, catch_up=catch_up)


async def _login(client: Any, phone: str | None, sleep: Sleep) -> None:
    """telethon's interactive login: asks for the phone (unless given), the code and the 2FA password."""
    from telethon import errors

    kwargs: dict[str, Any] = {"phone": phone} if phone else {}
    while True:
        try:
            await client.start(**kwargs)
            return
        except errors.FloodWaitError as e:
            if e.seconds > 300:
                raise TwinError(
                    f"Telegram asks to wait {e.seconds} s before the next login attempt; try again later"
                ) from None
            log.warning("Telegram asks to wait %d s before logging in", e.seconds)
            await sleep(e.seconds + 1)
        except errors.ApiIdInvalidError:
            raise TwinError(
                "Telegram rejected TELEGRAM_API_ID/TELEGRAM_API_HASH; copy both again from "
                "https://my.telegram.org → API development tools"
            ) from None
        except errors.PhoneNumberInvalidError:
            raise TwinError(
                "Telegram rejected the phone number: use the international form, e.g. +4915112345678"
            ) from None
        except EOFError:
            raise TwinError(
                "not logged in to Telegram and no terminal to ask for the login code: "
                "run `twin export telegram` once in an interactive terminal"
            ) from None
        except errors.RPCError as e:
            raise TwinError(f"Telegram login failed ({type(e).__name__}); run the command again") from None


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
        await _login(client, creds.phone, sleep)
        secure_session(session_path)
        return await export_dialogs(
            client, out_root, sleep=sleep, progress=progress, chunk_size=chunk_size, **options
        )
    finally:
        with contextlib.suppress(Exception):
            result = client.disconnect()
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                await result
        secure_session(session_path)


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
