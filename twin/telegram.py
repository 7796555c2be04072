"""Telegram through telethon, shared by ``twin export telegram`` and ``twin drafts``.

Credentials (environment or ``.env``, never logged), the session file (mode 0600 in a 0700 folder,
outside the repository), the client and its interactive login, and the conversion of a telethon
message into a raw record (:mod:`twin.records`) with Telegram Desktop's media names, so
both commands see a chat the same way. telethon itself is imported lazily.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twin.errors import TwinError
from twin.records import DELETED_ACCOUNT, iso_utc, make_record

log = logging.getLogger(__name__)


SOURCE = "telegram"


DEFAULT_SESSION = Path("~/.config/twin/telegram.session")


# Telegram's own accounts, not people, which the API marks neither as bots nor as support (Telegram
# Desktop and the web client recognise them by id too): "Telegram" service notifications (login
# codes), "Replies" (replies to your comments in channels, written by strangers) and "Verification
# Codes".
SERVICE_USER_IDS = frozenset({777000, 1271266957, 489000})


CREDENTIALS_HELP = (
    "get them at https://my.telegram.org → API development tools, and put them in the environment "
    "or in .env as TELEGRAM_API_ID=... and TELEGRAM_API_HASH=... (optional TELEGRAM_PHONE=+...)"
)


Sleep = Callable[[float], Awaitable[Any]]


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
    # any file but a directory: `--env-file /dev/null` (no file on purpose) is read as empty
    readable = env_path is not None and env_path.exists() and not env_path.is_dir()
    file_values: dict[str, str | None] = {}
    if readable:
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
        looked = "the environment"
        if env_path is not None:
            looked += f" and {env_path}" if readable else f" ({env_path} not found)"
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


def message_record(message: Any, dialog_id: int, dialog_name: str | None, group: bool = False) -> dict | None:
    """One telethon message as a raw record, or None for what is not a message of a person.

    Service messages (joins, calls, pins...) and empty messages are skipped; a caption is the
    message text (telethon keeps it in ``message.message``); media without a caption is kept with
    ``text=""`` and ``media`` set, so later stages see the turn timing. In a ``group`` a message of
    someone else's names who wrote it (``sender``), as the Desktop importer does.
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
    rec = make_record(
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
    pii = entity_pii(text, getattr(message, "entities", None))
    if pii:
        rec["pii"] = pii  # type: ignore[typeddict-unknown-key]
    if group and not rec["out"]:
        rec["sender"] = sender_name(message)  # type: ignore[typeddict-unknown-key]
    if getattr(message, "via_bot_id", None):  # an inline bot's result: its words, not the sender's
        rec["via_bot"] = True  # type: ignore[typeddict-unknown-key]
    if media == "sticker" and message.file is not None and message.file.emoji:
        rec["sticker_emoji"] = message.file.emoji  # type: ignore[typeddict-unknown-key]
    return rec


def sender_name(message: Any) -> str:
    """Who wrote a group message, as Telegram shows the name ("Deleted Account" when it has none)."""
    from telethon import utils

    sender = getattr(message, "sender", None)
    name = utils.get_display_name(sender).strip() if sender is not None else ""
    return name or DELETED_ACCOUNT


def entity_pii(text: str, entities: Any) -> list[list] | None:
    """``[[offset, length, kind]]`` (Python string indices) of the phone and e-mail entities Telegram
    attached to a message; its offsets count UTF-16 code units, so emoji before them shift."""
    from telethon.tl import types

    kinds = {types.MessageEntityPhone: "PHONE", types.MessageEntityEmail: "EMAIL"}
    found = [(e, kinds[type(e)]) for e in entities or () if type(e) in kinds]
    if not found:
        return None
    units = text.encode("utf-16-le")

    def index(u: int) -> int:
        return len(units[: 2 * u].decode("utf-16-le", "ignore"))

    return [[index(e.offset), index(e.offset + e.length) - index(e.offset), k] for e, k in found]


def classify_dialog(dialog: Any, include_groups: bool) -> str | None:
    """None when the dialog is exported, else the reason it is skipped (a summary key)."""
    from telethon.tl import types

    entity = dialog.entity
    if isinstance(entity, types.User):
        if entity.is_self:
            return "saved_messages"
        if entity.bot:
            return "bots"
        if entity.id in SERVICE_USER_IDS or entity.support:
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
        return DELETED_ACCOUNT
    return None


def export_id(dialog: Any) -> int:
    """The dialog's id in raw files: the entity's bare id, as Telegram Desktop writes it.

    telethon's ``dialog.id`` is a "marked" peer id (groups negative, supergroups -100...), which
    would put the same group in two files when both exporters are used.
    """
    return int(dialog.entity.id)


def telethon_client(session_path: Path, api_id: int, api_hash: str, *, catch_up: bool = False) -> Any:
    """telethon's client on the session file; ``catch_up``: replay updates missed while disconnected."""
    from telethon import TelegramClient

    # flood_sleep_threshold=0: every flood wait reaches our handler, which says so and waits
    # (telethon would otherwise sleep through waits under a minute silently).
    return TelegramClient(str(session_path), api_id, api_hash, flood_sleep_threshold=0, catch_up=catch_up)


async def login(client: Any, phone: str | None, sleep: Sleep) -> None:
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
