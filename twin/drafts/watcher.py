"""The loop of ``twin drafts``: new message → debounce → ask the server → draft (or Saved Messages, or send).

One :class:`Watcher` per run. Each chosen chat has at most one pending suggestion (an asyncio task):
a new incoming message cancels it and starts the wait again, so a burst becomes one suggestion
built from all of it. Every Telegram read goes through :meth:`Watcher.tg`, which waits out flood
limits and turns a revoked session into a fatal :class:`TwinError`; every write goes through
:meth:`Watcher.put`, which reads the guards (you answered since their message? your own draft in
the chat?) right before the write and again after each flood wait, and drops the write if one
says no. Log lines name chats by id and never hold message text; only ``--dry-run`` prints text,
to the terminal. What you then send is recorded per suggestion (:mod:`twin.drafts.followup`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from typing import Any

from twin.drafts.chats import Chat
from twin.drafts.context import Conversation, answered, conversation, last_outgoing_id, records_of
from twin.drafts.followup import Followups
from twin.drafts.options import DraftsOptions
from twin.drafts.server import RequestRefused, ServerUnavailable, TwinServer
from twin.errors import TwinError
from twin.text.scrub import Scrubber

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[Any]]
SESSION_GONE = "the Telegram session expired or was revoked: run `twin export telegram` to log in again"
HOUR_S = 3600.0
# The status line of a --dry-run suggestion: it said "draft written" (or "message sent") then.
DRY_RUN = "printed to the terminal, nothing written (dry run)"
KEEP_WRITTEN = 8  # drafts of this run remembered per chat (to tell them from the user's own)


@dataclass
class Stats:
    drafts: int = 0
    saved: int = 0
    sent: int = 0
    dry_run: int = 0
    kept_your_draft: int = 0
    you_answered: int = 0
    writes_dropped: int = 0  # a guard said no right before a write (after a wait, too): nothing written
    drafts_withdrawn: int = 0  # you answered after the twin's draft was written: it was cleared
    nothing_to_answer: int = 0
    rate_limited: int = 0
    server_retries: int = 0
    refused_by_server: int = 0
    flood_waits: int = 0
    errors: int = 0
    feedback: int = 0  # records of what you did with a suggestion (data/feedback)

    def summary(self) -> str:
        return ", ".join(f"{f.name.replace('_', ' ')} {getattr(self, f.name)}" for f in fields(self))


@dataclass
class ChatState:
    seen: int = 0  # newest incoming message id taken in (a replay after a reconnect is ignored)
    task: asyncio.Task | None = None
    written: deque[str] = field(default_factory=lambda: deque(maxlen=KEEP_WRITTEN))
    sent_at: deque[float] = field(default_factory=deque)
    yours: int = 0  # newest id of a message you sent, seen as an event (any device, any kind)
    draft_for: int = 0  # the trigger id of the twin's draft now in the chat (0: none known)


class Watcher:
    def __init__(
        self,
        client: Any,
        chats: list[Chat],
        server: TwinServer,
        options: DraftsOptions,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        out: Callable[[str], None] = print,
    ) -> None:
        self.client, self.server, self.o = client, server, options
        self.chats = {c.peer_id: c for c in chats}
        self.state = {c.peer_id: ChatState() for c in chats}
        self.sleep, self.clock, self.out = sleep, clock, out
        self.scrubber = Scrubber(options.region)
        self.stats = Stats()
        self.fatal: BaseException | None = None
        self.stopped = asyncio.Event()
        self.server_down = False
        self.background: set[asyncio.Future] = set()
        hours = options.feedback_hours
        self.followups = Followups(options.feedback_dir, hours, self.scrubber, clock)

    # ------------------------------------------------------------------ incoming messages

    async def on_event(self, event: Any) -> None:
        """telethon's ``events.NewMessage`` handler (both directions: yours are the feedback)."""
        if event.message.out:
            self.note_yours(event.message)
        else:
            self.take(event.message)

    def _chat_of(self, message: Any) -> Chat | None:
        from telethon import utils

        return self.chats.get(utils.get_peer_id(message.peer_id))

    def note_yours(self, message: Any) -> None:
        """A message you sent in a chosen chat (from any device): the guards and the feedback see it."""
        chat = self._chat_of(message)
        if chat is None:
            return
        state = self.state[chat.peer_id]
        state.yours = max(state.yours, int(message.id))
        if state.draft_for and message.id > state.draft_for:  # you answered: the twin's draft is stale
            state.draft_for = 0
            self.spawn(self.withdraw_draft(chat))
        self.followups.yours(chat, message)

    def take(self, message: Any) -> None:
        """A new message: (re)start the chat's debounce if it is theirs, in a chosen chat, and new."""
        chat = self._chat_of(message)
        if chat is None or message.out:
            return
        state = self.state[chat.peer_id]
        if message.id <= state.seen:
            return  # delivered again after a reconnect: handled once
        state.seen = message.id
        self.followups.close(chat, ended=True)  # their next message ends the previous suggestion's window
        self.stats.feedback = self.followups.recorded
        if state.task is not None and not state.task.done():
            state.task.cancel()
        state.task = asyncio.create_task(self._chat_task(chat))

    async def _chat_task(self, chat: Chat) -> None:
        try:
            await self.sleep(self.o.debounce)
            await self.suggest(chat)
        except asyncio.CancelledError:
            raise
        except TwinError as e:
            self.fatal = e
            self.stopped.set()
        except Exception as e:  # one chat's failure never stops the others
            self.stats.errors += 1
            log.error("chat %s: no suggestion (%s)", chat.label(), type(e).__name__)

    # ------------------------------------------------------------------ one suggestion

    async def suggest(self, chat: Chat) -> None:
        asked = await self.ask(chat)
        if asked is None:
            return
        conv, result, latency = asked
        reply = (result.get("reply") or "").strip()
        if not reply:
            log.info("chat %s: the twin had nothing to say; nothing written", chat.label())
            return
        what = await self.deliver(chat, conv, reply)
        usage = result.get("usage") or {}
        log.info("chat %s: %s (%s prompt + %s reply tokens, %.1f s)", chat.label(), what,
                 usage.get("prompt_tokens", "?"), usage.get("completion_tokens", "?"), latency)  # fmt: skip

    async def ask(self, chat: Chat) -> tuple[Conversation, dict, float] | None:
        """The server's answer for the chat's current conversation; waits out a down server."""
        delay = self.o.retry_initial_s
        while True:
            conv = await self.read_conversation(chat)
            if conv is None:
                return None
            started = time.perf_counter()
            try:
                result = await self.server.reply(conv.payload)
            except ServerUnavailable as e:
                self._server_unavailable(e)
                await self.sleep(delay)
                delay = min(delay * 2, self.o.retry_max_s)
                continue
            except RequestRefused as e:
                self.stats.refused_by_server += 1
                log.warning("chat %s: %s; no suggestion", chat.label(), e)
                return None
            self._server_back()
            return conv, result, time.perf_counter() - started

    async def read_conversation(self, chat: Chat) -> Conversation | None:
        limit = self.o.history_messages
        messages = await self.tg(lambda: self.client.get_messages(chat.input_entity, limit=limit))
        records = records_of(messages, chat)
        last_out = max(last_outgoing_id(messages), self.state[chat.peer_id].yours)
        if records and answered(records, last_out):
            self.stats.you_answered += 1
            log.info("chat %s: you answered already; no suggestion", chat.label())
            return None
        conv = conversation(records, chat, last_out=last_out, gap_hours=self.o.gap_hours,
                            scrubber=self.scrubber, context_chars=self.o.context_chars)  # fmt: skip
        if conv is None:
            self.stats.nothing_to_answer += 1
            log.info("chat %s: no text to answer (media or forwards only)", chat.label())
        return conv

    def _server_unavailable(self, e: ServerUnavailable) -> None:
        self.stats.server_retries += 1
        if not self.server_down:
            self.server_down = True
            log.warning("%s; retrying with backoff, still listening, nothing written meanwhile", e)

    def _server_back(self) -> None:
        if self.server_down:
            self.server_down = False
            log.info("the twin server answers again")

    # ------------------------------------------------------------------ the guards

    async def you_answered(self, chat: Chat, conv: Conversation) -> bool:
        """Whether any message of yours (text, media, sticker, location, a call...) came after the trigger.

        Every message newer than the trigger is read, not only the newest: an answer followed by a
        service message or anything else still counts. Your messages seen as events count too.
        """
        trigger = conv.last_incoming_id
        if self.state[chat.peer_id].yours > trigger:
            return True
        newer = await self.tg(lambda: self.client.get_messages(chat.input_entity, min_id=trigger, limit=None))
        return last_outgoing_id(newer) > trigger

    async def your_draft(self, chat: Chat) -> bool:
        """Whether the chat's draft holds text this run did not write (you are typing, or an earlier run's)."""
        draft = await self.tg(lambda: self.client.get_drafts(chat.input_entity))
        current = (getattr(draft, "raw_text", "") or "").strip()
        return bool(current) and current not in self.state[chat.peer_id].written

    async def refusal(self, chat: Chat, conv: Conversation, where: str) -> str | None:
        """Why the write to ``where`` must not happen now (counted), or None.

        Both guards are read together (one round trip before the write) and read again if any flood
        wait came in between: a draft read before a 30 s wait says nothing about the draft after it.
        """
        while True:
            waits = self.stats.flood_waits
            yours, answered = await asyncio.gather(
                self.your_draft(chat) if where != "Saved Messages" else _false(),
                self.you_answered(chat, conv),
            )
            if self.stats.flood_waits == waits:
                break
        if yours:
            self.stats.kept_your_draft += 1
            return "your own draft is there: left untouched"
        if answered:
            self.stats.you_answered += 1
            return "you answered since their message: nothing written"
        return None

    # ------------------------------------------------------------------ writing

    async def deliver(self, chat: Chat, conv: Conversation, reply: str) -> str:
        """Put the reply where ``--mode`` says; returns what was done (for the status line)."""
        if self.o.mode == "saved":
            text = f"Suggested reply to {chat.name}: {reply}"
            why = await self.put(
                chat,
                conv,
                "Saved Messages",
                text,
                lambda: self.client.send_message("me", text, parse_mode=None),
            )
            if why is not None:
                return why
            self.stats.saved += not self.o.dry_run
            self.feedback(chat, conv, reply)
            return DRY_RUN if self.o.dry_run else "suggestion posted to Saved Messages"
        if self.o.mode == "send":
            return await self.send(chat, conv, reply)
        return await self.write_draft(chat, conv, reply)

    async def put(
        self, chat: Chat, conv: Conversation, where: str, text: str, write: Callable[[], Awaitable[Any]]
    ) -> str | None:
        """Write to Telegram (``--dry-run``: print, terminal only) unless a guard says no; None when done.

        The guards are read right before the write and again after every flood wait, so what you do
        while Telegram makes the twin wait (type a draft, answer) always wins. A refused write is
        dropped and counted, never retried.
        """
        from telethon import errors

        while True:
            why = await self.refusal(chat, conv, where)
            if why is not None:
                self.stats.writes_dropped += 1
                return why
            if self.o.dry_run:
                self.stats.dry_run += 1
                self.out(f"[dry run] {where} of {chat.name} ({chat.dialog_id}): {text}")
                return None
            try:
                await self.tg_once(write)
                return None
            except errors.FloodWaitError as e:
                await self.flood_wait(e)

    async def write_draft(self, chat: Chat, conv: Conversation, reply: str) -> str:
        from telethon import functions, types

        state = self.state[chat.peer_id]
        state.written.append(reply)  # before the request: if it is cut off, the draft is still "ours"
        request = functions.messages.SaveDraftRequest(
            peer=chat.input_entity, message=reply, reply_to=types.InputReplyToMessage(conv.last_incoming_id)
        )
        why = await self.put(chat, conv, "draft", reply, lambda: self.client(request))
        if why is not None:
            return why
        self.stats.drafts += not self.o.dry_run
        self.feedback(chat, conv, reply)
        if self.o.dry_run:
            return DRY_RUN
        state.draft_for = conv.last_incoming_id
        if await self.you_answered(chat, conv):  # your answer crossed the write on its way to Telegram
            state.draft_for = 0
            self.followups.forget(chat)  # you never saw it: no feedback either
            await self.withdraw_draft(chat)
            return "draft written, then withdrawn: you answered meanwhile"
        return "draft written"

    async def withdraw_draft(self, chat: Chat) -> None:
        """Clear the chat's draft if it is still exactly one the twin wrote (re-read after each flood wait)."""
        from telethon import errors, functions

        request = functions.messages.SaveDraftRequest(peer=chat.input_entity, message="")
        while True:
            draft = await self.tg(lambda: self.client.get_drafts(chat.input_entity))
            current = (getattr(draft, "raw_text", "") or "").strip()
            if not current or current not in self.state[chat.peer_id].written:
                return  # cleared by your send, or yours now: nothing to do
            try:
                await self.tg_once(lambda: self.client(request))
                self.stats.drafts_withdrawn += 1
                log.info("chat %s: you answered; the twin's draft was withdrawn", chat.label())
                return
            except errors.FloodWaitError as e:
                await self.flood_wait(e)

    def spawn(self, work: Awaitable[Any]) -> None:
        """Run ``work`` beside the chat tasks (cancelled on stop; its failure logged, never fatal to others)."""

        async def run() -> None:
            try:
                await work
            except TwinError as e:
                self.fatal = e
                self.stopped.set()
            except Exception as e:
                self.stats.errors += 1
                log.error("background step failed (%s)", type(e).__name__)

        task = asyncio.ensure_future(run())
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def send(self, chat: Chat, conv: Conversation, reply: str) -> str:
        state = self.state[chat.peer_id]
        now = self.clock()
        while state.sent_at and now - state.sent_at[0] >= HOUR_S:
            state.sent_at.popleft()
        if len(state.sent_at) >= self.o.max_per_hour:
            self.stats.rate_limited += 1
            what = await self.write_draft(chat, conv, reply)
            return f"--max-per-hour {self.o.max_per_hour} reached, not sent; {what}"
        text = reply + self.o.signature
        if not self.o.dry_run:
            why = await self.refusal(chat, conv, "message")
            if why is not None:  # no "typing" shown after you answered
                self.stats.writes_dropped += 1
                return why
            delay = min(len(text) / self.o.chars_per_second, self.o.max_typing_s)
            async with self.client.action(chat.input_entity, "typing"):
                await self.sleep(delay)
        send = self.client.send_message
        why = await self.put(
            chat, conv, "message", text,
            lambda: send(chat.input_entity, text, reply_to=conv.last_incoming_id, parse_mode=None),
        )  # fmt: skip
        if why is not None:
            return f"{why} (while the twin was typing or waiting): not sent"
        if self.o.dry_run:
            return DRY_RUN
        state.sent_at.append(self.clock())
        self.stats.sent += 1
        return "message sent"

    def feedback(self, chat: Chat, conv: Conversation, reply: str) -> None:
        """Watch what you send after this suggestion (not for --dry-run: you never saw it)."""
        if not self.o.dry_run:
            self.followups.start(chat, conv, reply)
        self.stats.feedback = self.followups.recorded

    # ------------------------------------------------------------------ Telegram calls

    async def tg(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """``await call()``, waiting out flood limits (reads only: writes go through :meth:`put`)."""
        from telethon import errors

        while True:
            try:
                return await self.tg_once(call)
            except errors.FloodWaitError as e:
                await self.flood_wait(e)

    async def tg_once(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """``await call()``; a revoked session is fatal (TwinError), a flood wait is the caller's."""
        from telethon import errors

        try:
            return await call()
        except (errors.UnauthorizedError, errors.AuthKeyDuplicatedError):
            raise TwinError(SESSION_GONE) from None

    async def flood_wait(self, e: Any) -> None:
        self.stats.flood_waits += 1
        log.warning("Telegram asks to wait %d s (flood limit); waiting, then continuing", e.seconds)
        await self.sleep(e.seconds + 1)  # +1: the server rounds down

    async def until_stopped(self) -> None:
        """Until the client disconnects or a fatal error; then every pending suggestion is cancelled."""
        run = asyncio.ensure_future(self.client.run_until_disconnected())
        stop = asyncio.ensure_future(self.stopped.wait())
        try:
            await asyncio.wait({run, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not run.done():
                run.cancel()
        if run.done() and not run.cancelled() and (error := run.exception()) is not None:
            from telethon import errors

            if isinstance(error, errors.UnauthorizedError | errors.AuthKeyDuplicatedError):
                raise TwinError(SESSION_GONE) from None
            if isinstance(error, OSError):  # ConnectionError: telethon's reconnect attempts ran out
                raise TwinError(
                    f"lost the connection to Telegram ({type(error).__name__}); run the command again"
                )
            raise error

    async def close(self) -> None:
        tasks = [s.task for s in self.state.values() if s.task is not None and not s.task.done()]
        tasks += [t for t in self.background if not t.done()]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for chat in self.chats.values():  # answered suggestions are recorded; open, unanswered ones are not
            self.followups.close(chat, ended=False)
        self.stats.feedback = self.followups.recorded
        await self.server.close()


async def _false() -> bool:
    return False
