"""`twin drafts` against the fake telethon client and a REAL `twin serve` process on the tiny Falcon.

Debounce and retry waits are tiny (0.2 s / 0.05 s) and flood waits go through an injected sleep,
so the whole file takes seconds after the server is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import stat
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from helpers.fake_telethon import FakeClient, group, location, msg, photo, service, sticker, user, voice
from helpers.server import TOKEN
from telethon import errors, utils
from telethon.tl import types

from devkit.live_server import free_port
from twin.drafts.chats import resolve_chats
from twin.drafts.context import conversation, records_of
from twin.drafts.options import DraftsOptions, check_options
from twin.drafts.run import run_drafts, watch
from twin.drafts.watcher import SESSION_GONE
from twin.errors import TwinError
from twin.feedback import KEYS, edit_distance, read_feedback
from twin.text.scrub import Scrubber

ANNA = user(2001, "Anna", "K", username="anna_k")
BOB = user(2002, "Bob")
HELPER = user(2003, "Helper", bot=True)
ME_USER = user(1000, "Me", is_self=True)
FAMILY = group(3001, "Family")
ANNA_ID = 2001  # a user's marked peer id is its bare id
PII = ("+1 212 555 0199", "4111 1111 1111 1111", "anna.k@example.org")


def _twin(*args: str) -> list[str]:
    return [sys.executable, "-m", "twin.cli", *args]


@pytest.fixture(scope="module")
def server(twin_server):
    return twin_server  # the session's one `twin serve` process (conftest.py)


def account() -> FakeClient:
    return FakeClient(
        [
            (ANNA, [msg(ANNA, 1, "hi Anna", out=True), msg(ANNA, 2, "hello")]),
            (BOB, [msg(BOB, 1, "yo")]),
            (HELPER, [msg(HELPER, 1, "/start", out=True)]),
            (FAMILY, [msg(FAMILY, 1, "dinner at 8")]),
            (ME_USER, [msg(ME_USER, 1, "note to self", out=True)]),
        ]
    )


def options(url: str, **kw) -> DraftsOptions:
    base = dict(chats=["Anna K"], server=url, token=TOKEN, debounce=0.2, max_new_tokens=6, temperature=0.0,
                retry_initial_s=0.05, retry_max_s=0.2, feedback_dir=None)  # fmt: skip
    return DraftsOptions(**{**base, **kw})


def direct_reply(url: str, message: str, history: list[dict]) -> str:
    body = {
        "message": message,
        "history": history,
        "contact": "Anna K",
        "max_new_tokens": 6,
        "temperature": 0,
    }
    r = httpx.post(url + "/reply", json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    return r.json()["reply"].strip()


async def until(cond, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


async def session(client: FakeClient, opts: DraftsOptions, script, **kw):
    """Run watch() while ``script()`` plays on the client; then disconnect. Returns watch()'s stats."""
    task = asyncio.create_task(watch(client, opts, **kw))
    await until(lambda: client.handlers or task.done(), 10)
    if not task.done():
        play = asyncio.create_task(script())
        await asyncio.wait({play, task}, return_when=asyncio.FIRST_COMPLETED)  # the watcher may stop itself
        play.cancel()
        await client.disconnect()
        if play.done() and not play.cancelled() and play.exception() is not None:
            task.cancel()
            raise play.exception()
    return await asyncio.wait_for(task, 10)


def test_incoming_message_becomes_a_draft_with_the_servers_reply_once(server):
    client = account()

    async def script():
        await client.emit(msg(ANNA, 3, "are you coming tonight?"))
        await until(lambda: client.saved_drafts)
        await client.emit(msg(ANNA, 3, "are you coming tonight?"))  # replayed after a reconnect
        await asyncio.sleep(0.5)

    stats = asyncio.run(session(client, options(server), script))
    expected = direct_reply(server, "hello\nare you coming tonight?", [{"role": "me", "text": "hi Anna"}])
    assert expected and client.saved_drafts == [{"peer_id": ANNA_ID, "text": expected, "reply_to": 3}]
    assert stats.drafts == 1 and client.sent == []


def test_burst_of_three_within_the_debounce_is_one_suggestion_from_all_three(server):
    client = account()

    async def script():
        for mid, text in ((3, "wait"), (4, "one more thing"), (5, "where are the keys?")):
            await client.emit(msg(ANNA, mid, text))
            await asyncio.sleep(0.05)
        await until(lambda: client.saved_drafts)
        await asyncio.sleep(0.4)

    asyncio.run(session(client, options(server, debounce=0.3), script))
    merged = "hello\nwait\none more thing\nwhere are the keys?"
    expected = direct_reply(server, merged, [{"role": "me", "text": "hi Anna"}])
    assert client.saved_drafts == [{"peer_id": ANNA_ID, "text": expected, "reply_to": 5}]


def test_other_chat_group_bot_and_own_messages_make_nothing(server):
    client = account()

    async def script():
        await client.emit(msg(BOB, 2, "hey"))
        await client.emit(msg(FAMILY, 2, "who buys bread?"))
        await client.emit(msg(HELPER, 2, "menu"))
        await client.emit(msg(ANNA, 3, "sent from my phone", out=True))
        await asyncio.sleep(0.6)

    stats = asyncio.run(session(client, options(server), script))
    assert client.saved_drafts == [] and client.sent == [] and stats.drafts == 0


def test_users_own_draft_is_untouched_and_twins_unchanged_draft_is_replaced(server, caplog):
    client = account()
    caplog.set_level(logging.INFO, logger="twin.drafts")

    async def script():
        await client.emit(msg(ANNA, 3, "first question"))
        await until(lambda: len(client.saved_drafts) == 1)
        await client.emit(msg(ANNA, 4, "second question"))  # twin's draft untouched: replaced
        await until(lambda: len(client.saved_drafts) == 2)
        client.drafts[ANNA_ID] = types.DraftMessage(message="my own words", date=None)  # the user types
        await client.emit(msg(ANNA, 5, "third question"))
        await until(lambda: "left untouched" in caplog.text)

    stats = asyncio.run(session(client, options(server), script))
    assert [d["reply_to"] for d in client.saved_drafts] == [3, 4]
    assert client.drafts[ANNA_ID].message == "my own words" and stats.kept_your_draft == 1


def test_user_answered_first_means_no_suggestion(server, caplog):
    client = account()
    caplog.set_level(logging.INFO, logger="twin.drafts")

    async def script():
        await client.emit(msg(ANNA, 3, "lunch?"))
        client.add(ANNA, msg(ANNA, 4, "sure, 1pm", out=True))  # from your phone, within the debounce
        await until(lambda: "you answered already" in caplog.text)

    stats = asyncio.run(session(client, options(server), script))
    assert client.saved_drafts == [] and stats.you_answered == 1


class Flaky:
    """A TCP front for the real server: closed (connection refused), then 503s, then forwarding."""

    def __init__(self, target_port: int, n503: int) -> None:
        self.port, self.target, self.n503 = free_port(), target_port, n503
        self.server: asyncio.AbstractServer | None = None

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.n503 > 0:
            self.n503 -= 1
            await reader.read(65536)
            writer.write(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )
            await writer.drain()
            writer.close()
            return
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


def test_server_down_then_503_then_up_gives_the_suggestion_after_recovery(server, caplog):
    client = account()
    caplog.set_level(logging.INFO, logger="twin.drafts")
    flaky = Flaky(int(server.rsplit(":", 1)[1]), n503=2)
    backoffs: list[float] = []

    async def sleep(seconds: float) -> None:
        if seconds != 0.25:  # not the debounce: a retry
            backoffs.append(seconds)
            if len(backoffs) == 2:
                await flaky.up()  # the server comes back, answering 503 first
        await asyncio.sleep(seconds)

    async def script():
        await client.emit(msg(ANNA, 3, "ping"))
        await until(lambda: client.saved_drafts)
        await flaky.close()

    opts = options(f"http://127.0.0.1:{flaky.port}", debounce=0.25)
    stats = asyncio.run(session(client, opts, script, sleep=sleep))
    assert len(client.saved_drafts) == 1 and stats.server_retries == 4
    assert backoffs == [0.05, 0.1, 0.2, 0.2]  # doubling, capped at retry_max_s
    assert caplog.text.count("retrying with backoff") == 1 and "answers again" in caplog.text


def test_flood_wait_is_honoured_then_the_draft_is_written(server):
    client = account()
    client.raise_on["SaveDraftRequest"] = [errors.FloodWaitError(request=None, capture=7)]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(min(seconds, 0.2))

    async def script():
        await client.emit(msg(ANNA, 3, "hey"))
        await until(lambda: client.saved_drafts)

    stats = asyncio.run(session(client, options(server), script, sleep=sleep))
    assert slept == [0.2, 8] and stats.flood_waits == 1 and len(client.saved_drafts) == 1


def test_send_mode_is_refused_without_its_flags(tmp_path):
    for bad, says in (
        (dict(mode="send", chats=["Anna K"]), "--i-understand-it-sends"),
        (dict(mode="send", i_understand_it_sends=True, chats=[], recent=3), "--chat"),
        (dict(mode="send", i_understand_it_sends=True, chats=["Anna K"], max_per_hour=0), "--max-per-hour"),
        (dict(chats=[]), "--chat NAME"),
        (dict(mode="mail"), "--mode"),
    ):
        with pytest.raises(TwinError, match=says.replace("-", r"\-")):
            check_options(DraftsOptions(**bad))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEGRAM_")}
    out = subprocess.run(_twin("drafts", "--mode", "send", "--chat", "Anna K"), capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=60)  # fmt: skip
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0
    assert out.stderr.startswith("error: --mode send") and "--i-understand-it-sends" in out.stderr


def test_send_mode_types_waits_signs_and_enforces_the_hourly_limit(server):
    client = account()
    now = [1000.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(min(seconds, 0.2))

    async def script():
        for mid in (3, 5, 7):  # ids leave room for the sent replies
            await client.emit(msg(ANNA, mid, f"question {mid}"))
            await until(lambda n=(mid - 1) // 2: len(client.sent) + len(client.saved_drafts) == n)
        now[0] += 3601  # an hour later the limit has room again
        await client.emit(msg(ANNA, 9, "question 9"))
        await until(lambda: len(client.sent) == 3)

    opts = options(server, mode="send", i_understand_it_sends=True, max_per_hour=2, signature=" (bot)",
                   chars_per_second=100.0)  # fmt: skip
    stats = asyncio.run(session(client, opts, script, sleep=sleep, clock=lambda: now[0]))
    assert [s["reply_to"] for s in client.sent] == [3, 5, 9]
    assert all(s["text"].endswith(" (bot)") and s["peer_id"] == ANNA_ID for s in client.sent)
    assert [d["reply_to"] for d in client.saved_drafts] == [7] and stats.rate_limited == 1
    assert client.actions == [(ANNA_ID, "typing")] * 3
    typing = [s for s in slept if s != 0.2]
    assert typing == [len(s["text"]) / 100.0 for s in client.sent]


def test_no_message_text_in_the_log_and_dry_run_prints_only_to_the_terminal(server, caplog):
    client = account()
    caplog.set_level(logging.DEBUG)
    printed: list[str] = []
    text = f"call me at {PII[0]}, card {PII[1]}, mail {PII[2]}, secret word purple-elephant"

    async def script():
        await client.emit(msg(ANNA, 3, text))
        await until(lambda: printed)

    opts = options(server, dry_run=True)
    stats = asyncio.run(session(client, opts, script, out=printed.append))
    assert client.saved_drafts == [] and stats.dry_run == 1 and "draft of Anna K (2001)" in printed[0]
    reply = printed[0].split(": ", 1)[1]
    # the status line says nothing was written (it said "draft written")
    assert "chat 2001: printed to the terminal, nothing written (dry run)" in caplog.text
    assert "draft written" not in caplog.text
    replies = [reply] if len(reply) > 4 else []  # a one-word reply ("ok") is inside ordinary log words
    for secret in (*PII, "purple-elephant", "hi Anna", "Anna K", *replies):
        assert secret not in caplog.text


def test_saved_mode_posts_the_suggestion_to_saved_messages(server):
    client = account()

    async def script():
        await client.emit(msg(ANNA, 3, "see you?"))
        await until(lambda: client.sent)

    asyncio.run(session(client, options(server, mode="saved"), script))
    expected = direct_reply(server, "hello\nsee you?", [{"role": "me", "text": "hi Anna"}])
    assert client.sent == [
        {"peer_id": "me", "text": f"Suggested reply to Anna K: {expected}", "reply_to": None}
    ]
    assert client.saved_drafts == []


def test_a_groups_request_shows_media_and_forwards_as_prepares_marks():
    """In a group's request, as in prepare's turns: a sticker, a photo, a forward are marks in the history;
    the message answered is their newest with words."""
    import dataclasses

    chat = dataclasses.replace(asyncio.run(resolve_chats(account(), ["@ANNA_K"], None))[0], group=True)
    msgs = [
        msg(ANNA, 1, "who's in tonight?"),
        msg(ANNA, 2, None, out=True, media=sticker()),
        msg(ANNA, 3, None, media=photo()),
        msg(ANNA, 4, "look", forwarded=True),
        msg(ANNA, 5, "at 8?"),
    ]
    conv = conversation(
        records_of(msgs, chat), chat, last_out=2, gap_hours=24, scrubber=Scrubber(), context_chars=1024
    )
    assert [(h["role"], h["text"]) for h in conv.payload["history"]] == [
        ("them", "who's in tonight?"), ("me", "[sticker 🙂]"), ("them", "[photo]"), ("them", "[forwarded message]"),
    ]  # fmt: skip
    assert conv.payload["message"] == "at 8?"


def test_conversation_is_the_last_session_scrubbed_like_training():
    chat_client = account()
    old = msg(ANNA, 1, "old news", minutes=0)
    later = [msg(ANNA, 2, "hi", out=True, minutes=3000), msg(ANNA, 3, f"my card {PII[1]}", minutes=3001)]
    chat = asyncio.run(resolve_chats(chat_client, ["@ANNA_K"], None))[0]
    conv = conversation(
        records_of([*later, old], chat),
        chat,
        last_out=2,
        gap_hours=24,
        scrubber=Scrubber(),
        context_chars=1024,
    )
    assert conv.payload == {"message": "my card [CARD]", "history": [{"role": "me", "text": "hi"}],
                            "contact": "Anna K", "chat_id": chat.dialog_id}  # fmt: skip
    assert conv.last_incoming_id == 3
    media_only = [msg(ANNA, 4, None, media=types.MessageMediaGeo(geo=types.GeoPointEmpty()))]
    assert (
        conversation(
            records_of(media_only, chat),
            chat,
            last_out=0,
            gap_hours=24,
            scrubber=Scrubber(),
            context_chars=99,
        )
        is None
    )


def test_chats_resolve_by_id_username_name_and_refuse_the_rest():
    client = account()

    def resolve(named, recent=None):
        return [c.dialog_id for c in asyncio.run(resolve_chats(client, named, recent))]

    assert resolve(["2001", "@anna_k", "Anna K", "Family"]) == [2001, 3001]  # a group only when named
    assert set(resolve([], recent=5)) == {2001, 2002}  # people only: no bot, group, Saved Messages
    with pytest.raises(TwinError, match="did you mean: Anna K"):
        resolve(["Ana K"])
    with pytest.raises(TwinError, match="a bot"):
        resolve(["Helper"])
    client.add(user(2004, "Anna", "K"), msg(user(2004, "Anna", "K"), 1, "hi"))
    with pytest.raises(TwinError, match="ambiguous: Anna K \\(id 200[14].*Anna K \\(id 200[14]"):
        resolve(["Anna K"])


def test_a_wrong_server_token_stops_with_one_line(server):
    client = account()

    async def script():
        await client.emit(msg(ANNA, 3, "hey"))
        await asyncio.sleep(30)  # the watcher stops itself long before this ends

    with pytest.raises(TwinError, match="refused the token \\(401\\): set TWIN_API_TOKEN"):
        asyncio.run(session(client, options(server, token="wrong"), script))
    assert client.saved_drafts == []


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (
            {"adapter": "nobody"},
            "--adapter nobody: http://127.0.0.1:\\d+ does not serve it; it serves: me, base",
        ),
        ({"token": "wrong"}, "refused the token \\(401\\): set TWIN_API_TOKEN"),
        ({"token": ""}, "needs a token and none is set \\(401\\): set TWIN_API_TOKEN"),
        ({"max_new_tokens": 100000}, "--max-new-tokens 100000: the server allows at most 512"),
        ({"server": "NOT_TWIN"}, "not a twin server \\(GET /adapters answered 404\\)"),
    ],
)
def test_what_every_suggestion_would_be_refused_for_stops_the_start_before_the_login(server, change, error):
    """A wrong --adapter (404), --max-new-tokens over the server's cap (422) or a URL that is not twin
    serve dropped every suggestion with a warning, found only at someone's first message, maybe hours
    into the run; a wrong token stopped it then. Now each is one line at start, before Telegram."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    class NotTwin(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_error(404)

        def log_message(self, *args):
            pass

    other = ThreadingHTTPServer(("127.0.0.1", 0), NotTwin)
    Thread(target=other.serve_forever, daemon=True).start()
    if change.get("server") == "NOT_TWIN":
        change = {"server": f"http://127.0.0.1:{other.server_address[1]}"}
    built = []
    try:
        with pytest.raises(TwinError, match=error):
            run_drafts(options(server, env_file=None, **change), client_factory=lambda *a: built.append(a))
    finally:
        other.shutdown()
    assert built == []  # no Telegram client was made


def test_revoked_session_stops_with_one_line_and_first_run_logs_in(tmp_path, monkeypatch, server):
    client = account()
    client.raise_on["get_messages"] = [errors.SessionRevokedError(request=None)]

    async def script():
        await client.emit(msg(ANNA, 3, "hey"))
        await asyncio.sleep(30)  # the watcher stops itself long before this ends

    with pytest.raises(TwinError, match="run `twin export telegram` to log in again"):
        asyncio.run(session(client, options(server), script))

    monkeypatch.setenv("TELEGRAM_API_ID", "12345")
    monkeypatch.setenv("TELEGRAM_API_HASH", "0" * 32)
    opts = options(server, session=tmp_path / "tg", env_file=None)
    # No session yet: the export's own interactive login runs (telethon's start), the file is 0600.
    first = account()
    first.session_path = tmp_path / "tg.session"
    opts.chats = ["Nobody Known"]  # then stop at choosing the chats
    with pytest.raises(TwinError, match="Nobody Known"):
        run_drafts(opts, client_factory=lambda *a: first)
    assert first.started is not None and (tmp_path / "tg.session").stat().st_mode & 0o777 == 0o600
    opts = options(server, session=tmp_path / "tg", env_file=None)
    expired = account()
    expired.authorized = False
    with pytest.raises(TwinError) as e:
        run_drafts(opts, client_factory=lambda *a: expired)
    assert str(e.value) == SESSION_GONE and expired.disconnected


def test_importing_drafts_does_not_import_torch():
    code = ("import sys, twin.drafts.cli, twin.drafts.run, twin.drafts.watcher, twin.cli; "
            "print([m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers')])")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "[]"


def test_stopping_with_a_suggestion_pending_is_quick_and_writes_nothing(server):
    """Ctrl-C: asyncio.run cancels the main task; the pending suggestion goes with it."""
    client = account()

    async def main() -> float:
        task = asyncio.create_task(watch(client, options(server, debounce=0.3)))
        await until(lambda: client.handlers)
        await client.emit(msg(ANNA, 3, "hey"))
        await asyncio.sleep(0.1)  # inside the debounce
        started = time.monotonic()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.5)  # nothing left running could still write
        return time.monotonic() - started - 0.5

    assert asyncio.run(main()) < 1.0
    assert client.saved_drafts == [] and client.sent == []


def test_real_telethon_client_carries_events_drafts_typing_and_sends(server):
    """telethon's own TelegramClient methods and event dispatch; only its wire is scripted."""
    from helpers.fake_telethon import scripted_live_client
    from telethon import functions

    def history():
        return [
            (ANNA, [msg(ANNA, 1, "hi Anna", out=True), msg(ANNA, 2, "hello")]),
            (BOB, [msg(BOB, 1, "yo")]),
        ]

    async def run(opts: DraftsOptions, done) -> Any:
        client = scripted_live_client(history(), ME_USER)
        task = asyncio.create_task(watch(client, opts))
        await until(lambda: client._event_builders or task.done(), 10)
        await client.deliver(msg(BOB, 2, "not a chosen chat"))
        await client.deliver(msg(ANNA, 3, "coming *tonight*?"))
        await until(lambda: done(client))
        await client.disconnect()
        await asyncio.wait_for(task, 10)
        return client

    expected = direct_reply(server, "hello\ncoming *tonight*?", [{"role": "me", "text": "hi Anna"}])
    client = asyncio.run(run(options(server), lambda c: c.drafts))
    assert list(client.drafts) == [ANNA_ID] and client.drafts[ANNA_ID].message == expected
    assert client.drafts[ANNA_ID].reply_to.reply_to_msg_id == 3
    assert any(isinstance(r, functions.messages.GetPeerDialogsRequest) for r in client.requests)

    opts = options(
        server, mode="send", i_understand_it_sends=True, signature=" — my twin", chars_per_second=1e6
    )
    client = asyncio.run(run(opts, lambda c: any(isinstance(r, functions.messages.SendMessageRequest)
                                                 for r in c.requests)))  # fmt: skip
    sent = [r for r in client.requests if isinstance(r, functions.messages.SendMessageRequest)]
    typing = [r for r in client.requests if isinstance(r, functions.messages.SetTypingRequest)]
    assert len(sent) == 1 and sent[0].message == expected + " — my twin" and not sent[0].entities
    assert sent[0].reply_to.reply_to_msg_id == 3 and utils.get_peer_id(sent[0].peer) == ANNA_ID
    assert typing and isinstance(typing[0].action, types.SendMessageTypingAction)
    assert client.requests.index(typing[0]) < client.requests.index(sent[0])


CTRL_C_SCRIPT = """
import asyncio, sys, time
from helpers.fake_telethon import FakeClient, msg, user
from twin.drafts.options import DraftsOptions
from twin.drafts.run import run_drafts
from twin.logs import setup_logging

setup_logging()
anna = user(2001, "Anna", "K")
client = FakeClient([(anna, [msg(anna, 1, "hello")])])

async def arrive():
    await client.emit(msg(anna, 2, "hey"))
    print("PENDING", flush=True)

def factory(*args):
    asyncio.get_running_loop().call_later(0.5, lambda: asyncio.ensure_future(arrive()))
    return client

opts = DraftsOptions(chats=["Anna K"], server=sys.argv[1], debounce=30, session=sys.argv[2], env_file=None,
                     feedback_dir=None)
try:
    run_drafts(opts, client_factory=factory)
except KeyboardInterrupt:
    print("STOPPED_AT", time.time(), flush=True)
    print("drafts", client.saved_drafts, "sent", client.sent, "disconnected", client.disconnected, flush=True)
    sys.exit(130)
"""


@pytest.mark.slow
def test_ctrl_c_stops_within_a_second_with_a_summary_and_nothing_written(tmp_path):
    import signal

    (tmp_path / "tg.session").write_bytes(b"SQLite format 3\x00")
    env = {**os.environ, "TELEGRAM_API_ID": "12345", "TELEGRAM_API_HASH": "0" * 32, "COLUMNS": "200"}
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(__file__), env.get("PYTHONPATH", "")])  # helpers/
    url = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.Popen([sys.executable, "-c", CTRL_C_SCRIPT, url, str(tmp_path / "tg")], env=env,
                            cwd=os.path.dirname(os.path.dirname(__file__)), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "PENDING" in line:
            break
    started = time.time()
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=10)
    stopped = float(
        rest.split("STOPPED_AT ", 1)[1].split()[0]
    )  # run_drafts returned (interpreter exit follows)
    assert stopped - started < 1.0, "".join(lines) + rest
    assert proc.returncode == 130 and "stopped: drafts 0" in rest
    assert "drafts [] sent [] disconnected True" in rest


def test_the_real_client_catches_up_after_a_reconnect_and_leaves_flood_waits_to_us(tmp_path):
    """telethon replays updates missed while disconnected only with catch_up=True (telethon's own flag)."""
    from twin.drafts.run import _catch_up_client
    from twin.telegram import prepare_session, session_file

    path = session_file(tmp_path / "s")
    prepare_session(path)

    async def build():
        client = _catch_up_client(path, 12345, "0" * 32)
        client.session.close()
        return client

    client = asyncio.run(build())
    assert client._catch_up is True and client.flood_sleep_threshold == 0


def test_send_mode_drops_the_message_when_you_answer_during_the_typing_delay(server, caplog):
    client = account()
    caplog.set_level(logging.INFO, logger="twin.drafts")

    async def sleep(seconds: float) -> None:
        if seconds != 0.2:  # the typing delay: you answer from your phone meanwhile
            client.add(ANNA, msg(ANNA, 4, "on my way", out=True))
        await asyncio.sleep(min(seconds, 0.2))

    async def script():
        await client.emit(msg(ANNA, 3, "where are you?"))
        await until(lambda: "not sent" in caplog.text)

    opts = options(server, mode="send", i_understand_it_sends=True)
    stats = asyncio.run(session(client, opts, script, sleep=sleep))
    assert client.sent == [] and client.actions == [(ANNA_ID, "typing")] and stats.you_answered == 1


# ---------------------------------------------------------------------- the twin never writes over you
# Each write kind meets a flood wait; what you do during the wait (type a draft, answer with text,
# a sticker, a location, then a call) must win over the twin's retried write.

FLOOD_S = 7  # the twin sleeps FLOOD_S + 1


def flood_sleep(during_wait):
    """An injected sleep: the debounce (0.2) passes, and during the flood wait ``during_wait()`` runs."""

    async def sleep(seconds: float) -> None:
        if seconds == FLOOD_S + 1:
            during_wait()
        await asyncio.sleep(min(seconds, 0.2))

    return sleep


def your_draft(client: FakeClient, text: str = "my own words") -> None:
    client.drafts[ANNA_ID] = types.DraftMessage(message=text, date=None)


def you_answer(*extra: Any):
    """You answer (and then ``extra`` messages arrive) from your phone, during the wait."""
    return lambda client: client.add(ANNA, *extra)


WRITES = {  # mode -> (the fake's failing call, what a write looks like on the fake client)
    "draft": ("SaveDraftRequest", lambda c: c.saved_drafts),
    "saved": ("send_message", lambda c: c.sent),
    "send": ("send_message", lambda c: c.sent),
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode, during",
    [
        ("draft", your_draft),
        ("draft", you_answer(msg(ANNA, 4, "yes, 8 is fine", out=True))),
        ("saved", you_answer(msg(ANNA, 4, None, out=True, media=sticker()), service(ANNA, 5))),
        ("send", you_answer(msg(ANNA, 4, "да, иду", out=True))),
        ("send", your_draft),
        ("send", you_answer(msg(ANNA, 4, None, out=True, media=location()), service(ANNA, 5))),
    ],
    ids=[
        "draft-you-type",
        "draft-you-send",
        "saved-sticker-then-call",
        "send-you-send",
        "send-you-type",
        "send-location-then-call",
    ],  # fmt: skip
)
def test_a_flood_wait_on_any_write_never_writes_over_what_you_did_meanwhile(server, caplog, mode, during):
    client = account()
    caplog.set_level(logging.INFO, logger="twin.drafts")
    call, written = WRITES[mode]
    client.raise_on[call] = [errors.FloodWaitError(request=None, capture=FLOOD_S)]
    sleep = flood_sleep(lambda: during(client))

    async def script():
        await client.emit(msg(ANNA, 3, "dinner at 8?"))
        await until(lambda: "nothing written" in caplog.text or "left untouched" in caplog.text
                    or written(client))  # fmt: skip
        await asyncio.sleep(0.3)

    opts = options(server, mode=mode, i_understand_it_sends=True, chars_per_second=1e6)
    stats = asyncio.run(session(client, opts, script, sleep=sleep))
    assert written(client) == [] and stats.flood_waits == 1 and stats.writes_dropped == 1
    assert stats.drafts == stats.saved == stats.sent == 0
    if during is your_draft:
        assert client.drafts[ANNA_ID].message == "my own words" and stats.kept_your_draft == 1
    else:
        assert stats.you_answered == 1


@pytest.mark.slow
def test_an_answer_followed_by_a_call_stops_the_send_after_the_typing_delay(server, caplog):
    """Not only the newest message is read: your answer, then a call, is still your answer."""
    client = account()
    caplog.set_level(logging.INFO, logger="twin.drafts")

    async def sleep(seconds: float) -> None:
        if seconds != 0.2:  # the typing delay: you answer from your phone, then they call you
            client.add(ANNA, msg(ANNA, 4, "on my way", out=True), service(ANNA, 5))
        await asyncio.sleep(min(seconds, 0.2))

    async def script():
        await client.emit(msg(ANNA, 3, "where are you?"))
        await until(lambda: "not sent" in caplog.text or client.sent)

    opts = options(server, mode="send", i_understand_it_sends=True)
    stats = asyncio.run(session(client, opts, script, sleep=sleep))
    assert client.sent == [] and stats.you_answered == 1 and stats.writes_dropped == 1
    guard = client.reads[-1]  # every message after their message was read, not just the newest
    assert guard["min_id"] == 3 and guard["limit"] is None


class SlowServer:
    """A TCP front for the real server that runs ``meanwhile()`` before forwarding (a slow server)
    and keeps the bytes of each request it forwards."""

    def __init__(self, target_port: int, meanwhile=lambda: None) -> None:
        self.port, self.target, self.meanwhile = free_port(), target_port, meanwhile
        self.server: asyncio.AbstractServer | None = None
        self.received: list[bytes] = []

    def bodies(self) -> list[dict]:
        import json

        joined = b"".join(self.received).split(b"POST ")[1:]
        return [json.loads(r.split(b"\r\n\r\n", 1)[1]) for r in joined]

    async def __aenter__(self) -> SlowServer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.meanwhile()
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, keep: list | None) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    if keep is not None:
                        keep.append(data)
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_w, self.received), pipe(up_r, writer, None))


@pytest.mark.slow
@pytest.mark.parametrize(
    "answer",
    [
        (msg(ANNA, 4, "see you", out=True), service(ANNA, 5)),  # text, then a call
        (msg(ANNA, 4, None, out=True, media=voice()),),  # a voice message only
        (service(ANNA, 4, out=True),),  # you called them back
    ],
    ids=["text-then-call", "voice-only", "your-call"],
)
def test_you_answer_while_the_server_is_slow_then_no_draft(server, caplog, answer):
    client = account()
    caplog.set_level(logging.INFO, logger="twin.drafts")

    async def main():
        async with SlowServer(int(server.rsplit(":", 1)[1]), lambda: client.add(ANNA, *answer)) as slow:

            async def script():
                await client.emit(msg(ANNA, 3, "are you coming?"))
                await until(lambda: "nothing written" in caplog.text or client.saved_drafts)

            return await session(client, options(f"http://127.0.0.1:{slow.port}"), script)

    stats = asyncio.run(main())
    assert client.saved_drafts == [] and stats.you_answered == 1 and stats.drafts == 0


@pytest.mark.slow
def test_a_location_you_sent_closes_their_earlier_question(server, caplog):
    """They ask, you answer with a location only, they send a location: nothing to answer."""
    client = account()
    caplog.set_level(logging.INFO, logger="twin.drafts")
    client.add(ANNA, msg(ANNA, 3, "dinner at 8? where?"), msg(ANNA, 4, None, out=True, media=location()))

    async def script():
        await client.emit(msg(ANNA, 5, None, media=location()))
        await until(lambda: "no text to answer" in caplog.text or client.saved_drafts)

    stats = asyncio.run(session(client, options(server), script))
    assert client.saved_drafts == [] and stats.nothing_to_answer == 1


@pytest.mark.slow
def test_the_trigger_is_only_what_came_after_your_last_message_of_any_kind(server):
    """You answered "dinner at 8?" with a sticker; their next words are what the twin answers."""
    client = account()
    client.add(ANNA, msg(ANNA, 3, "dinner at 8?"), msg(ANNA, 4, None, out=True, media=sticker()))

    async def main() -> list[dict]:
        async with SlowServer(int(server.rsplit(":", 1)[1])) as front:

            async def script():
                await client.emit(msg(ANNA, 5, "great, and bring wine"))
                await until(lambda: client.saved_drafts)

            await session(client, options(f"http://127.0.0.1:{front.port}"), script)
            return front.bodies()

    (body,) = asyncio.run(main())
    # the sticker is in the history as prepare's turns show it: its mark
    history = [
        {"role": "me", "text": "hi Anna"},
        {"role": "them", "text": "hello\ndinner at 8?"},
        {"role": "me", "text": "[sticker 🙂]"},
    ]
    assert body["message"] == "great, and bring wine" and body["history"] == history
    expected = direct_reply(server, "great, and bring wine", history)
    assert client.saved_drafts == [{"peer_id": ANNA_ID, "text": expected, "reply_to": 5}]


@pytest.mark.slow
def test_real_telethon_client_flood_on_send_then_your_answer_and_a_call_means_not_sent(server, caplog):
    """telethon's own get_messages(min_id=..., limit=None) reads past the call to your answer."""
    from helpers.fake_telethon import scripted_live_client
    from telethon import functions

    caplog.set_level(logging.INFO, logger="twin.drafts")
    client_box: list[Any] = []

    async def sleep(seconds: float) -> None:
        if seconds == FLOOD_S + 1:  # during the flood wait: you answer, then they call
            client_box[0].fake.add(ANNA, msg(ANNA, 4, "yes!", out=True), service(ANNA, 5))
        await asyncio.sleep(min(seconds, 0.2))

    async def run() -> Any:
        client = scripted_live_client([(ANNA, [msg(ANNA, 1, "hi Anna", out=True), msg(ANNA, 2, "hello")])],
                                      ME_USER)  # fmt: skip
        client_box.append(client)
        client.flood[functions.messages.SendMessageRequest] = [FLOOD_S]
        opts = options(server, mode="send", i_understand_it_sends=True, chars_per_second=1e6)
        task = asyncio.create_task(watch(client, opts, sleep=sleep))
        await until(lambda: client._event_builders or task.done(), 10)
        await client.deliver(msg(ANNA, 3, "coming?"))
        await until(lambda: "not sent" in caplog.text or len(sent_requests(client)) > 1)
        await client.disconnect()
        return client, await asyncio.wait_for(task, 10)

    def sent_requests(client: Any) -> list[Any]:
        return [r for r in client.requests if isinstance(r, functions.messages.SendMessageRequest)]

    client, stats = asyncio.run(run())
    assert (
        len(sent_requests(client)) == 1
        and stats.flood_waits == 1
        and stats.you_answered == 1
        and stats.sent == 0
    )


@pytest.mark.slow
def test_an_answer_that_crosses_the_draft_write_withdraws_the_draft(server, caplog):
    """The race no guard can close: your answer reaches Telegram while the twin's draft is in flight."""
    client = account()
    caplog.set_level(logging.INFO, logger="twin.drafts")
    client.on_request["SaveDraftRequest"] = [lambda: client.add(ANNA, msg(ANNA, 4, "yes!", out=True))]

    async def script():
        await client.emit(msg(ANNA, 3, "coming?"))
        await until(lambda: "withdrawn" in caplog.text)

    stats = asyncio.run(session(client, options(server), script))
    assert [d["text"] for d in client.saved_drafts][1:] == [""] and client.drafts[ANNA_ID].message == ""
    assert stats.drafts == 1 and stats.drafts_withdrawn == 1


@pytest.mark.slow
def test_your_answer_after_the_draft_withdraws_it_unless_the_draft_is_yours_now(server, caplog):
    client = account()
    caplog.set_level(logging.INFO, logger="twin.drafts")

    async def script():
        await client.emit(msg(ANNA, 3, "coming?"))
        await until(lambda: client.saved_drafts)
        await client.emit(msg(ANNA, 4, "yes, at 8", out=True))  # from a device the draft had not reached
        await until(lambda: len(client.saved_drafts) == 2)
        await client.emit(msg(ANNA, 5, "and Bob?"))
        await until(lambda: len(client.saved_drafts) == 3)
        your_draft(client, "he comes too, and")  # you edit the twin's draft into your own words...
        await client.emit(msg(ANNA, 6, "he comes", out=True))  # ...and send from your phone
        await asyncio.sleep(0.3)

    stats = asyncio.run(session(client, options(server), script))
    assert [d["text"] == "" for d in client.saved_drafts] == [False, True, False]
    assert client.drafts[ANNA_ID].message == "he comes too, and" and stats.drafts_withdrawn == 1


@pytest.mark.slow
def test_a_flood_wait_on_a_guard_read_makes_both_guards_read_again(server, caplog):
    """Your draft was read empty, then the "did you answer?" read waits out a flood limit while you
    type: the draft read from before the wait must not let the twin write over you."""
    client = account()
    caplog.set_level(logging.INFO, logger="twin.drafts")
    # the 1st get_messages reads the chat; the 2nd (the guard's) meets the flood wait
    client.raise_on["get_messages"] = [None, errors.FloodWaitError(request=None, capture=FLOOD_S)]
    sleep = flood_sleep(lambda: your_draft(client))

    async def script():
        await client.emit(msg(ANNA, 3, "dinner at 8?"))
        await until(lambda: "left untouched" in caplog.text or client.saved_drafts)

    stats = asyncio.run(session(client, options(server), script, sleep=sleep))
    assert client.saved_drafts == [] and client.drafts[ANNA_ID].message == "my own words"
    assert stats.flood_waits == 1 and stats.kept_your_draft == 1 and stats.writes_dropped == 1


@pytest.mark.slow
def test_the_contacts_name_is_scrubbed_in_the_request(server):
    """A contact saved with a phone and an e-mail in the name: the server sees placeholders."""
    oleg = user(2005, "Oleg +1 212 555 0199", "oleg.k@example.org")
    client = FakeClient([(oleg, [msg(oleg, 1, "hello")])])

    async def main() -> list[dict]:
        async with SlowServer(int(server.rsplit(":", 1)[1])) as front:

            async def script():
                await client.emit(msg(oleg, 2, "how are you?"))
                await until(lambda: client.saved_drafts)

            await session(client, options(f"http://127.0.0.1:{front.port}", chats=["2005"]), script)
            return front.bodies()

    (body,) = asyncio.run(main())
    assert body["contact"] == "Oleg [PHONE] [EMAIL]" and body["message"] == "hello\nhow are you?"


# ---------------------------------------------------------------------- feedback: what you did with each suggestion

OLEG = user(2005, "Oleg", "oleg.k@example.org")  # a contact saved with an e-mail in the name
OLEG_ID = 2005


def oleg_account() -> FakeClient:
    return FakeClient([(OLEG, [msg(OLEG, 1, "hi Oleg", out=True), msg(OLEG, 2, "hello")])])


def lines(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.slow
def test_each_outcome_is_recorded_scrubbed_0600_in_a_0700_dir(server, tmp_path):
    """unchanged / edited / something else / media only / nothing, each closed by their next message;
    a suggestion still open and unanswered when the command stops is not recorded."""
    client = oleg_account()
    fb = tmp_path / "feedback"
    drafts: list[str] = []

    async def draft_for(mid: int) -> str:
        await until(lambda: any(d["reply_to"] == mid for d in client.saved_drafts))
        return next(d["text"] for d in client.saved_drafts if d["reply_to"] == mid)

    async def script():
        await client.emit(msg(OLEG, 3, "what's the wifi password?"))
        drafts.append(await draft_for(3))
        await client.emit(msg(OLEG, 4, "pelican7", out=True))  # something else, and a secret
        await client.emit(msg(OLEG, 5, "thanks! coming tonight?"))
        drafts.append(await draft_for(5))
        await client.emit(msg(OLEG, 6, drafts[-1], out=True))  # you sent the draft as it was
        await client.emit(msg(OLEG, 7, "great, bring the cake"))
        drafts.append(await draft_for(7))
        await client.emit(msg(OLEG, 8, drafts[-1] + "!", out=True))  # one character added
        await client.emit(msg(OLEG, 9, "where do we meet?"))
        drafts.append(await draft_for(9))
        await client.emit(msg(OLEG, 10, None, out=True, media=location()))  # a location only
        await client.emit(msg(OLEG, 11, "ok see you"))
        drafts.append(await draft_for(11))
        await client.emit(msg(OLEG, 12, "hello??"))  # you did not answer: nothing
        drafts.append(await draft_for(12))  # then the command stops before you answer this one

    stats = asyncio.run(session(client, options(server, chats=["2005"], feedback_dir=fb), script))
    path = fb / f"{OLEG_ID}.jsonl"
    assert stat.S_IMODE(os.stat(fb).st_mode) == 0o700 and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(fb) == [f"{OLEG_ID}.jsonl"]  # nothing else kept, no temp files left
    rows = lines(path)
    assert [r["outcome"] for r in rows] == ["other", "unchanged", "edited", "other", "none"]
    assert [r["sent"] for r in rows] == ["[PASSWORD]", drafts[1], drafts[2] + "!", None, None]
    assert [r["edit_distance"] for r in rows][1:] == [0, 1, None, None]
    assert rows[0]["edit_distance"] == edit_distance(drafts[0], "pelican7")
    assert [r["draft"] for r in rows] == drafts[:5] and stats.feedback == 5
    assert all(list(r) == list(KEYS) and r["dialog_id"] == OLEG_ID for r in rows)
    assert {r["contact"] for r in rows} == {"Oleg [EMAIL]"}
    assert rows[0]["instruction"] == "hello\nwhat's the wifi password?"
    assert rows[1]["context"] == [{"role": "me", "text": "hi Oleg"},
                                  {"role": "them", "text": "hello\nwhat's the wifi password?"},
                                  {"role": "me", "text": "[PASSWORD]"}]  # fmt: skip
    assert all(r["ts"].endswith("Z") for r in rows)
    raw = path.read_text(encoding="utf-8")
    assert "pelican7" not in raw and "oleg.k@example.org" not in raw
    assert read_feedback(fb) == rows


@pytest.mark.slow
def test_the_window_closes_after_feedback_hours_and_no_feedback_keeps_nothing(server, tmp_path):
    now = [1000.0]

    def run(fb, **kw):
        client = account()

        async def script():
            await client.emit(msg(ANNA, 3, "lunch?"))
            await until(lambda: client.saved_drafts or client.sent)
            now[0] += 2 * 3600 + 1  # past a 2-hour window
            await client.emit(msg(ANNA, 4, "yes, 1pm", out=True))
            await client.emit(msg(ANNA, 5, "??"))
            await until(lambda: len(client.saved_drafts) + len(client.sent) == 2)

        opts = options(server, feedback_dir=fb, feedback_hours=2.0, **kw)
        return asyncio.run(session(client, opts, script, clock=lambda: now[0]))

    stats = run(tmp_path / "fb")  # your answer came after the window: the suggestion got nothing
    assert [r["outcome"] for r in read_feedback(tmp_path / "fb")] == ["none"] and stats.feedback == 1
    stats = run(None)  # --no-feedback
    assert stats.feedback == 0 and not (tmp_path / "none").exists()
    # --mode send: the twin's own messages are not feedback (you did not choose them)
    stats = run(tmp_path / "send", mode="send", i_understand_it_sends=True, chars_per_second=1e6)
    assert stats.sent == 2 and stats.feedback == 0 and not (tmp_path / "send").exists()


@pytest.mark.slow
def test_saved_mode_and_stopping_after_you_answered_are_recorded(server, tmp_path):
    client = account()
    fb = tmp_path / "fb"

    async def script():
        await client.emit(msg(ANNA, 3, "see you?"))
        await until(lambda: client.sent)
        await client.emit(msg(ANNA, 4, "yes!! see you at 8", out=True))
        await asyncio.sleep(0.1)  # then Ctrl-C: your answer is known, the suggestion is recorded

    stats = asyncio.run(session(client, options(server, mode="saved", feedback_dir=fb), script))
    (row,) = read_feedback(fb)
    assert row["sent"] == "yes!! see you at 8" and row["outcome"] in ("edited", "other")
    assert client.sent[0]["text"] == f"Suggested reply to Anna K: {row['draft']}" and stats.feedback == 1


@pytest.mark.slow
def test_real_telethon_client_delivers_your_messages_as_feedback(server, tmp_path):
    """telethon's own event dispatch brings your outgoing messages (sent from another device)."""
    from helpers.fake_telethon import scripted_live_client

    fb = tmp_path / "fb"

    async def run():
        client = scripted_live_client([(ANNA, [msg(ANNA, 1, "hi Anna", out=True), msg(ANNA, 2, "hello")])],
                                      ME_USER)  # fmt: skip
        task = asyncio.create_task(watch(client, options(server, feedback_dir=fb)))
        await until(lambda: client._event_builders or task.done(), 10)
        await client.deliver(msg(ANNA, 3, "coming tonight?"))
        await until(lambda: client.drafts)
        await client.deliver(msg(ANNA, 4, client.drafts[ANNA_ID].message, out=True))  # sent as suggested
        await client.deliver(msg(ANNA, 5, "cool"))
        await until(lambda: fb.exists())
        await client.disconnect()
        return await asyncio.wait_for(task, 10)

    stats = asyncio.run(run())
    (row,) = read_feedback(fb)
    assert row["outcome"] == "unchanged" and row["edit_distance"] == 0 and stats.feedback == 1
