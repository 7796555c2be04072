"""A fake telethon client for the export tests, built from telethon's own types.

Entities are real ``telethon.tl.types.User`` / ``Chat`` / ``Channel``, dialogs are telethon's
custom ``Dialog`` (built from a real ``types.Dialog``, so ``is_group``, ``input_entity``, ``name``
are computed by telethon itself), messages are real ``types.Message`` / ``MessageService``. Only the
network is faked: ``iter_dialogs`` / ``iter_messages`` follow telethon's documented semantics
(most recent dialog first; ``reverse=True`` = oldest first, ``min_id`` and ``offset_date``
exclusive), and failures (``FloodWaitError``, ``ConnectionError``, ``KeyboardInterrupt``) can be
injected after the K-th message of a fetch.

For ``twin drafts`` the same client also has a live side: :meth:`FakeClient.emit` delivers a new
message to the handlers registered with ``add_event_handler`` (as telethon's own
``events.NewMessage.Event``), drafts are real ``types.DraftMessage`` read back through telethon's
``custom.Draft``, and ``messages.SaveDraftRequest``, ``send_message`` and ``action`` are recorded.
``raise_on[name]`` injects errors (``FloodWaitError``, ``SessionRevokedError``...) into the next
calls of ``get_messages``, ``get_drafts``, ``SaveDraftRequest`` or ``send_message``, and
``on_request[name]`` runs hooks as they arrive (you answer while the twin's write is in flight).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from telethon import events, functions, utils
from telethon.tl import types
from telethon.tl.custom.dialog import Dialog
from telethon.tl.custom.draft import Draft

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
ME = 1000


def user(uid: int, first: str | None = None, last: str | None = None, **flags: Any) -> types.User:
    return types.User(id=uid, access_hash=uid * 7, first_name=first, last_name=last, **flags)


def group(cid: int, title: str) -> types.Chat:
    return types.Chat(
        id=cid, title=title, photo=types.ChatPhotoEmpty(), participants_count=3, date=T0, version=1
    )


def channel(cid: int, title: str, *, megagroup: bool = False) -> types.Channel:
    return types.Channel(
        id=cid,
        title=title,
        photo=types.ChatPhotoEmpty(),
        date=T0,
        access_hash=cid * 3,
        megagroup=megagroup or None,
        broadcast=None if megagroup else True,
    )


def msg(
    peer: Any,
    mid: int,
    text: str | None = "",
    *,
    out: bool = False,
    minutes: int | None = None,
    reply_to: int | None = None,
    forwarded: bool = False,
    media: Any = None,
) -> types.Message:
    """A real telethon Message; the date is T0 + ``minutes`` (default: ``mid`` minutes)."""
    return types.Message(
        id=mid,
        peer_id=utils.get_peer(peer),
        date=T0 + timedelta(minutes=mid if minutes is None else minutes),
        message=text,
        out=out,
        reply_to=types.MessageReplyHeader(reply_to_msg_id=reply_to) if reply_to else None,
        fwd_from=types.MessageFwdHeader(date=T0, from_name="Someone") if forwarded else None,
        media=media,
    )


def service(peer: Any, mid: int, *, out: bool = False) -> types.MessageService:
    """A call (``out``: one you made), as Telegram lists it among a chat's messages."""
    return types.MessageService(
        id=mid,
        peer_id=utils.get_peer(peer),
        date=T0 + timedelta(minutes=mid),
        action=types.MessageActionPhoneCall(call_id=1, duration=5),
        out=out,
    )


def location() -> types.MessageMediaGeo:
    return types.MessageMediaGeo(geo=types.GeoPoint(long=13.4, lat=52.5, access_hash=1))


def photo() -> types.MessageMediaPhoto:
    return types.MessageMediaPhoto(
        photo=types.Photo(id=1, access_hash=1, file_reference=b"", date=T0, sizes=[], dc_id=2)
    )


def _document(attributes: list, mime: str) -> types.MessageMediaDocument:
    doc = types.Document(
        id=2,
        access_hash=2,
        file_reference=b"",
        date=T0,
        mime_type=mime,
        size=10,
        dc_id=2,
        attributes=attributes,
    )
    return types.MessageMediaDocument(document=doc)


def sticker() -> types.MessageMediaDocument:
    return _document(
        [types.DocumentAttributeSticker(alt="🙂", stickerset=types.InputStickerSetEmpty())], "image/webp"
    )


def voice() -> types.MessageMediaDocument:
    return _document([types.DocumentAttributeAudio(duration=3, voice=True)], "audio/ogg")


def gif() -> types.MessageMediaDocument:
    return _document(
        [types.DocumentAttributeVideo(duration=1.0, w=10, h=10), types.DocumentAttributeAnimated()],
        "video/mp4",
    )


def video_note() -> types.MessageMediaDocument:
    return _document(
        [types.DocumentAttributeVideo(duration=1.0, w=10, h=10, round_message=True)], "video/mp4"
    )


def pdf() -> types.MessageMediaDocument:
    return _document([types.DocumentAttributeFilename(file_name="a.pdf")], "application/pdf")


def webpage() -> types.MessageMediaWebPage:
    return types.MessageMediaWebPage(webpage=types.WebPageEmpty(id=5, url="https://example.org"))


@dataclass
class Failure:
    """Raise ``make()`` in the fetch of ``dialog_id`` after ``after`` messages, ``times`` times."""

    dialog_id: int
    after: int
    make: Callable[[], BaseException]
    times: int = 1


class FakeClient:
    """The part of ``TelegramClient`` the exporter uses, with a scripted account."""

    def __init__(
        self,
        chats: list[tuple[Any, list[Any]]],
        *,
        failures: list[Failure] | None = None,
        session_path: Path | None = None,
    ) -> None:
        # chats: (entity, messages) in any order; dialogs are listed most recent first, like Telegram.
        self.chats = chats
        self.failures = list(failures or [])
        self.session_path = session_path
        self.calls: list[dict] = []  # one per iter_messages call: dialog id + the kwargs received
        self.started: dict | None = None
        self.me: types.User | None = None  # what get_me() returns: the logged-in account
        self.disconnected = False
        # the live side (twin drafts)
        self.authorized = True
        self.handlers: list[tuple[Callable, Any]] = []
        self.drafts: dict[int, types.DraftMessage] = {}  # marked peer id -> the chat's draft
        self.saved_drafts: list[dict] = []  # every SaveDraftRequest: peer id, text, reply_to id
        self.sent: list[dict] = []  # every send_message: peer id ("me" = Saved Messages), text, reply_to
        self.actions: list[tuple[int, str]] = []
        self.raise_on: dict[str, list[BaseException]] = {}
        self.reads: list[dict] = []  # every get_messages: peer id, limit, min_id
        self.on_request: dict[str, list[Callable[[], Any]]] = {}  # name -> hooks run as the next calls arrive
        self._gone = asyncio.Event()

    def add(self, entity: Any, *messages: Any) -> None:
        for ent, msgs in self.chats:
            if ent is entity:
                msgs.extend(messages)
                return
        self.chats.append((entity, list(messages)))

    async def start(self, phone: Any = None, password: Any = None, **kwargs: Any) -> FakeClient:
        self.started = {"phone": phone, **kwargs}
        if self.session_path is not None:
            # What sqlite does on first login: write the file with the process umask (0644 here).
            with open(self.session_path, "ab") as f:
                f.write(b"SQLite format 3\x00")
            os.chmod(self.session_path, 0o644)
        return self

    async def get_me(self) -> types.User | None:
        return self.me

    async def disconnect(self) -> None:
        self.disconnected = True
        self._gone.set()

    async def connect(self) -> None:
        self.disconnected = False

    async def is_user_authorized(self) -> bool:
        return self.authorized

    async def run_until_disconnected(self) -> None:
        await self._gone.wait()

    def add_event_handler(self, callback: Callable, event: Any = None) -> None:
        self.handlers.append((callback, event))

    async def emit(self, message: types.Message) -> None:
        """A new message arrives: it joins its chat's history and every handler sees it."""
        self.add(self._entity(utils.get_peer_id(message.peer_id)), message)
        for callback, _ in self.handlers:
            await callback(events.NewMessage.Event(message))

    def _entity(self, peer_id: int) -> Any:
        return next(e for e, _ in self.chats if utils.get_peer_id(e) == peer_id)

    def _fail(self, name: str) -> None:
        hooks = self.on_request.get(name)
        if hooks:
            hooks.pop(0)()  # what happens on Telegram's side while this request is on its way
        queue = self.raise_on.get(name)
        if queue and (error := queue.pop(0)) is not None:  # None: this call goes through
            raise error

    async def get_messages(
        self, entity: Any, limit: int | None = None, *, min_id: int = 0, max_id: int = 0, **kwargs: Any
    ) -> list[Any]:
        """Newest first, like telethon's ``get_messages`` without ``reverse``; ``min_id``/``max_id`` exclusive."""
        self._fail("get_messages")
        self.reads.append({"peer_id": utils.get_peer_id(entity), "limit": limit, "min_id": min_id})
        peer_id = utils.get_peer_id(entity)
        messages = next(m for e, m in self.chats if utils.get_peer_id(e) == peer_id)
        chosen = [m for m in messages if m.id > min_id and (not max_id or m.id < max_id)]
        return sorted(chosen, key=lambda m: m.id, reverse=True)[:limit]

    async def get_drafts(self, entity: Any) -> Draft:
        self._fail("get_drafts")
        peer_id = utils.get_peer_id(entity)
        return Draft(self, self._entity(peer_id), self.drafts.get(peer_id))

    async def __call__(self, request: Any, ordered: bool = False) -> Any:
        assert isinstance(request, functions.messages.SaveDraftRequest), type(request).__name__
        self._fail("SaveDraftRequest")
        peer_id = utils.get_peer_id(request.peer)
        reply_to = request.reply_to.reply_to_msg_id if request.reply_to else None
        self.drafts[peer_id] = types.DraftMessage(message=request.message, date=T0, reply_to=request.reply_to)
        self.saved_drafts.append({"peer_id": peer_id, "text": request.message, "reply_to": reply_to})
        return True

    async def send_message(self, entity: Any, message: str = "", *, reply_to: int | None = None, **kw: Any):
        self._fail("send_message")
        if entity == "me":
            self.sent.append({"peer_id": "me", "text": message, "reply_to": reply_to})
            return None
        peer_id = utils.get_peer_id(entity)
        chat = self._entity(peer_id)
        mid = max((m.id for m in self.chats[[e for e, _ in self.chats].index(chat)][1]), default=0) + 1
        sent = msg(chat, mid, message, out=True, reply_to=reply_to)
        self.add(chat, sent)
        self.drafts.pop(peer_id, None)  # sending clears the chat's draft, as in Telegram
        self.sent.append({"peer_id": peer_id, "text": message, "reply_to": reply_to})
        return sent

    def action(self, entity: Any, action: str, **kwargs: Any) -> contextlib.AbstractAsyncContextManager:
        self.actions.append((utils.get_peer_id(entity), action))
        return contextlib.nullcontext()

    def _dialogs(self) -> list[Dialog]:
        out = []
        for entity, messages in self.chats:
            top = max(messages, key=lambda m: m.id) if messages else None
            peer = utils.get_peer(entity)
            raw = types.Dialog(
                peer=peer,
                top_message=top.id if top else 0,
                read_inbox_max_id=0,
                read_outbox_max_id=0,
                unread_count=0,
                unread_mentions_count=0,
                unread_reactions_count=0,
                unread_poll_votes_count=0,
                notify_settings=types.PeerNotifySettings(),
            )
            out.append(Dialog(self, raw, {utils.get_peer_id(peer): entity}, top))
        epoch = datetime.min.replace(tzinfo=UTC)
        return sorted(out, key=lambda d: d.date or epoch, reverse=True)

    async def iter_dialogs(self, limit: int | None = None, **kwargs: Any) -> AsyncIterator[Dialog]:
        for d in self._dialogs()[:limit]:
            yield d

    def iter_messages(
        self,
        entity: Any,
        limit: int | None = None,
        *,
        min_id: int = 0,
        max_id: int = 0,
        offset_date: datetime | None = None,
        reverse: bool = False,
        **kwargs: Any,
    ) -> AsyncIterator[Any]:
        peer_id = utils.get_peer_id(entity)
        self.calls.append(
            {"dialog_id": peer_id, "min_id": min_id, "offset_date": offset_date, "reverse": reverse, **kwargs}
        )
        messages = next(m for e, m in self.chats if utils.get_peer_id(e) == peer_id)
        return self._iter(peer_id, list(messages), min_id, max_id, offset_date, reverse)

    async def _iter(self, peer_id, messages, min_id, max_id, offset_date, reverse) -> AsyncIterator[Any]:
        chosen = [m for m in messages if m.id > min_id and (not max_id or m.id < max_id)]
        if offset_date is not None:
            # telethon: offset_date is exclusive; with reverse=True it means "after this date".
            chosen = [m for m in chosen if (m.date > offset_date if reverse else m.date < offset_date)]
        chosen.sort(key=lambda m: m.id, reverse=not reverse)
        for n, m in enumerate(chosen):
            for f in self.failures:
                if f.dialog_id == peer_id and f.times > 0 and n == f.after:
                    f.times -= 1
                    raise f.make()
            yield m


def telegram_history(messages: list[Any], request: Any) -> list[Any]:
    """What Telegram's messages.getHistory answers (newest first): the ``limit`` messages from the
    position of ``offset_id`` (else ``offset_date``), shifted by ``add_offset`` (negative = newer)."""
    desc = sorted(messages, key=lambda m: m.id, reverse=True)
    if request.offset_id:
        pos = next((i for i, m in enumerate(desc) if m.id < request.offset_id), len(desc))
    elif request.offset_date:
        pos = next((i for i, m in enumerate(desc) if m.date < request.offset_date), len(desc))
    else:
        pos = 0
    start = max(0, pos + request.add_offset)
    end = max(0, pos + request.add_offset + request.limit)
    return desc[start:end]


def history_slice(messages: list[Any], request: Any) -> Any:
    """The ``messages.MessagesSlice`` Telegram answers a ``GetHistoryRequest`` with."""
    return types.messages.MessagesSlice(
        count=len(messages), messages=telegram_history(messages, request), topics=[], chats=[], users=[]
    )


def scripted_telegram_client(chats: list[tuple[Any, list[Any]]], *, flood_on_request: int | None = None):
    """A real ``telethon.TelegramClient`` (in-memory session) whose wire is a script.

    Its ``iter_messages`` is telethon's own (``_MessagesIter``: reverse, min_id, offset_date,
    paging by 100), so the exporter's use of it is checked against the real library; only the
    request sender is replaced. Build it inside a running event loop.
    """
    from telethon import TelegramClient, functions
    from telethon.errors import FloodWaitError

    class ScriptedClient(TelegramClient):
        def __init__(self) -> None:
            super().__init__(None, 12345, "0" * 32)
            self.requests: list[dict] = []  # what each getHistory asked for
            self.fake = FakeClient(chats)

        async def __call__(
            self, request: Any, ordered: bool = False, flood_sleep_threshold: Any = None
        ) -> Any:
            assert isinstance(request, functions.messages.GetHistoryRequest), type(request).__name__
            peer_id = utils.get_peer_id(request.peer)
            # A snapshot: telethon mutates the same request object page after page.
            fields = ("offset_id", "offset_date", "add_offset", "limit", "min_id", "max_id")
            self.requests.append({"peer_id": peer_id, **{f: getattr(request, f) for f in fields}})
            if flood_on_request is not None and len(self.requests) == flood_on_request:
                raise FloodWaitError(request=request, capture=7)
            return history_slice(next(m for e, m in chats if utils.get_peer_id(e) == peer_id), request)

        async def iter_dialogs(self, *args: Any, **kwargs: Any) -> AsyncIterator[Dialog]:
            for d in self.fake._dialogs():
                d._client = self
                yield d

    return ScriptedClient()


def scripted_live_client(chats: list[tuple[Any, list[Any]]], me: types.User):
    """A real ``telethon.TelegramClient`` for ``twin drafts`` whose wire is a script.

    Everything above the request sender is telethon's own: ``get_messages`` (``_MessagesIter``),
    ``get_drafts`` (``GetPeerDialogsRequest`` → ``custom.Draft``), ``action`` (``SetTypingRequest``),
    ``send_message`` and event dispatch (:meth:`deliver` feeds an ``UpdateNewMessage`` through
    ``_dispatch_update``, so ``events.NewMessage`` builders and filters run for real).
    """
    from telethon import TelegramClient

    class LiveClient(TelegramClient):
        def __init__(self) -> None:
            super().__init__(None, 12345, "0" * 32)
            self.fake = FakeClient(chats)
            self.requests: list[Any] = []
            self.drafts: dict[int, types.DraftMessage] = {}
            self.flood: dict[type, list[int]] = {}  # request type -> seconds of the next FloodWaitErrors
            self._gone = asyncio.Event()

        async def __call__(
            self, request: Any, ordered: bool = False, flood_sleep_threshold: Any = None
        ) -> Any:
            from telethon.errors import FloodWaitError

            self.requests.append(request)
            if self.flood.get(type(request)):
                raise FloodWaitError(request=request, capture=self.flood[type(request)].pop(0))
            if isinstance(request, functions.messages.GetHistoryRequest):
                return history_slice(self.fake.chats[self._index(request.peer)][1], request)
            return self._answer(request)

        def _index(self, peer: Any) -> int:
            return [utils.get_peer_id(e) for e, _ in self.fake.chats].index(utils.get_peer_id(peer))

        def _answer(self, request: Any) -> Any:
            if isinstance(request, functions.users.GetUsersRequest):
                return [me]
            if isinstance(request, functions.messages.GetPeerDialogsRequest):
                return self._peer_dialogs(request)
            if isinstance(request, functions.messages.SaveDraftRequest):
                self.drafts[utils.get_peer_id(request.peer)] = types.DraftMessage(
                    message=request.message, date=T0, reply_to=request.reply_to
                )
                return True
            if isinstance(request, functions.messages.SetTypingRequest):
                return True
            if isinstance(request, functions.messages.SendMessageRequest):
                chat, messages = self.fake.chats[self._index(request.peer)]
                sent = msg(chat, max(m.id for m in messages) + 1, request.message, out=True)
                messages.append(sent)
                return types.UpdateShortSentMessage(id=sent.id, pts=1, pts_count=1, date=sent.date, out=True)
            raise AssertionError(f"unexpected request {type(request).__name__}")

        def _peer_dialogs(self, request: Any) -> types.messages.PeerDialogs:
            dialogs, users = [], []
            for p in request.peers:
                entity = self.fake.chats[self._index(p.peer)][0]
                users.append(entity)
                dialogs.append(types.Dialog(
                    peer=utils.get_peer(entity), top_message=0, read_inbox_max_id=0, read_outbox_max_id=0,
                    unread_count=0, unread_mentions_count=0, unread_reactions_count=0, unread_poll_votes_count=0,
                    notify_settings=types.PeerNotifySettings(), draft=self.drafts.get(utils.get_peer_id(p.peer)),
                ))  # fmt: skip
            state = types.updates.State(pts=1, qts=0, date=T0, seq=1, unread_count=0)
            return types.messages.PeerDialogs(
                dialogs=dialogs, messages=[], chats=[], users=users, state=state
            )

        async def iter_dialogs(self, *args: Any, **kwargs: Any) -> AsyncIterator[Dialog]:
            for d in self.fake._dialogs():
                d._client = self
                yield d

        async def deliver(self, message: types.Message) -> None:
            self.fake.chats[self._index(message.peer_id)][1].append(message)
            update = types.UpdateNewMessage(message=message, pts=1, pts_count=1)
            update._entities = {}  # what telethon's update loop attaches (the users/chats sent along)
            await self._dispatch_update(update)

        async def run_until_disconnected(self) -> None:
            await self._gone.wait()

        async def disconnect(self) -> None:
            self._gone.set()

    return LiveClient()
