"""``twin export telegram``: the real exporter against a fake client made of telethon's own types.

Everything but the network is real: telethon's Message/User/Chat/Channel/Dialog classes, the raw
record writer, the session-file handling, the credentials loader and the CLI.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers.fake_telethon import (
    ME,
    T0,
    Failure,
    FakeClient,
    channel,
    gif,
    group,
    msg,
    pdf,
    photo,
    service,
    sticker,
    user,
    video_note,
    voice,
    webpage,
)
from telethon.errors import ApiIdInvalidError, FloodWaitError

from twin import telegram as telegram_client
from twin.errors import TwinError
from twin.records import read_dialog
from twin.sources import telegram_api
from twin.sources.telegram_api import export_dialogs, export_telegram
from twin.telegram import load_credentials, media_kind

HASH = "0123456789abcdef0123456789abcdef"
REPO = Path(__file__).resolve().parents[1]


def run(client, out, **kw):
    kw.setdefault("progress", False)
    return asyncio.run(export_dialogs(client, out, **kw))


def on_disk(out: Path, dialog_id: int) -> list[dict]:
    return read_dialog(out / "telegram" / f"{dialog_id}.jsonl")


def ids(out: Path, dialog_id: int) -> list[int]:
    return [r["id"] for r in on_disk(out, dialog_id)]


@pytest.fixture
def account():
    """Alice (rich messages), Bob, a bot, saved messages, a deleted account, a group, a megagroup, a channel."""
    alice = user(2002, "Alice", "Smith")
    bob = user(2003, "Bob")
    bot = user(3001, "Helper", bot=True)
    me = user(ME, "Me", is_self=True)
    ghost = user(2004, deleted=True)
    grp = group(55, "Family")
    mega = channel(66, "Climbing club", megagroup=True)
    news = channel(77, "News")
    chats = [
        (
            alice,
            [
                msg(alice, 101, "hey!"),
                msg(alice, 102, "hi Alice", out=True, reply_to=101),
                service(alice, 103),  # a call: not a message of a person
                msg(alice, 104, "look at this", media=photo()),  # caption counts as text
                msg(alice, 105, "", out=True, media=sticker()),  # media only: kept, text ""
                msg(alice, 106, "fwd text", forwarded=True),
                msg(alice, 107, "", media=voice()),
                msg(alice, 108, "see https://example.org", out=True, media=webpage()),
            ],
        ),
        (bob, [msg(bob, 201, "yo"), msg(bob, 202, "yo bob", out=True)]),
        (bot, [msg(bot, 301, "/start", out=True), msg(bot, 302, "Welcome")]),
        (me, [msg(me, 401, "note to self", out=True)]),
        (ghost, [msg(ghost, 501, "from a deleted account"), msg(ghost, 502, "still here", out=True)]),
        (grp, [msg(grp, 601, "family news")]),
        (mega, [msg(mega, 701, "climb sunday?")]),
        (news, [msg(news, 801, "breaking")]),
    ]
    return chats


def test_first_export_writes_people_only_with_exact_records(tmp_path, account):
    client = FakeClient(account)
    summary = run(client, tmp_path)

    files = sorted(p.name for p in (tmp_path / "telegram").iterdir())
    assert files == ["2002.jsonl", "2003.jsonl", "2004.jsonl"]  # no bot, self, group, channel
    lines = (tmp_path / "telegram" / "2002.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {"source": "telegram", "dialog_id": 2002, "dialog_name": "Alice Smith", "id": 101,
         "date": "2024-03-01T10:41:00Z", "out": False, "text": "hey!", "reply_to": None,
         "forwarded": False, "media": None},
        {"source": "telegram", "dialog_id": 2002, "dialog_name": "Alice Smith", "id": 102,
         "date": "2024-03-01T10:42:00Z", "out": True, "text": "hi Alice", "reply_to": 101,
         "forwarded": False, "media": None},
        {"source": "telegram", "dialog_id": 2002, "dialog_name": "Alice Smith", "id": 104,
         "date": "2024-03-01T10:44:00Z", "out": False, "text": "look at this", "reply_to": None,
         "forwarded": False, "media": "photo"},
        {"source": "telegram", "dialog_id": 2002, "dialog_name": "Alice Smith", "id": 105,
         "date": "2024-03-01T10:45:00Z", "out": True, "text": "", "reply_to": None,
         "forwarded": False, "media": "sticker", "sticker_emoji": "🙂"},
        {"source": "telegram", "dialog_id": 2002, "dialog_name": "Alice Smith", "id": 106,
         "date": "2024-03-01T10:46:00Z", "out": False, "text": "fwd text", "reply_to": None,
         "forwarded": True, "media": None},
        {"source": "telegram", "dialog_id": 2002, "dialog_name": "Alice Smith", "id": 107,
         "date": "2024-03-01T10:47:00Z", "out": False, "text": "", "reply_to": None,
         "forwarded": False, "media": "voice_message"},
        {"source": "telegram", "dialog_id": 2002, "dialog_name": "Alice Smith", "id": 108,
         "date": "2024-03-01T10:48:00Z", "out": True, "text": "see https://example.org", "reply_to": None,
         "forwarded": False, "media": None},
    ]  # fmt: skip
    # Canonical form: compact JSON in the records field order, exactly what records.dumps_record writes.
    assert lines[0].startswith('{"source":"telegram","dialog_id":2002,"dialog_name":"Alice Smith","id":101,')
    assert on_disk(tmp_path, 2004)[0]["dialog_name"] == "Deleted Account"
    assert ids(tmp_path, 2004) == [501, 502]
    assert summary["dialogs"] == 3
    assert summary["new messages"] == 7 + 2 + 2
    assert summary["of them media only"] == 2
    assert summary["skipped service/empty messages"] == 1
    assert summary["skipped dialogs"] == {"bots": 1, "channels": 1, "groups": 2, "saved_messages": 1}
    # Only people were fetched, each once, oldest first, from the start.
    assert sorted(c["dialog_id"] for c in client.calls) == [2002, 2003, 2004]
    assert all(c["reverse"] is True and c["min_id"] == 0 for c in client.calls)


def test_include_groups_adds_groups_and_megagroups_not_channels(tmp_path, account):
    summary = run(FakeClient(account), tmp_path, include_groups=True)
    files = sorted(p.stem for p in (tmp_path / "telegram").iterdir())
    # Bare ids, as Telegram Desktop writes them, not telethon's marked -55 / -1000000000066.
    assert files == sorted(["2002", "2003", "2004", "55", "66"])
    assert on_disk(tmp_path, 55)[0]["dialog_name"] == "Family"
    assert {r["dialog_id"] for r in on_disk(tmp_path, 66)} == {66}
    assert summary["skipped dialogs"] == {"bots": 1, "channels": 1, "saved_messages": 1}


def test_incremental_rerun_fetches_only_newer_without_duplicates(tmp_path, account):
    client = FakeClient(account)
    run(client, tmp_path)
    before = (tmp_path / "telegram" / "2003.jsonl").read_bytes()

    # Nothing new: the file is byte-identical, and the fetch started after the newest id on disk.
    client.calls.clear()
    summary = run(client, tmp_path)
    assert summary["new messages"] == 0
    assert (tmp_path / "telegram" / "2003.jsonl").read_bytes() == before
    assert {c["dialog_id"]: c["min_id"] for c in client.calls} == {2002: 108, 2003: 202, 2004: 502}

    bob = account[1][0]
    client.add(bob, msg(bob, 203, "new one"), msg(bob, 204, "answer", out=True))
    client.calls.clear()
    summary = run(client, tmp_path)
    assert summary["new messages"] == 2
    assert next(c for c in client.calls if c["dialog_id"] == 2003)["min_id"] == 202
    assert ids(tmp_path, 2003) == [201, 202, 203, 204]
    assert (tmp_path / "telegram" / "2003.jsonl").read_bytes().startswith(before)


def test_rerun_continues_after_a_desktop_import_of_the_same_chat(tmp_path, account):
    # Any raw file for the dialog (e.g. from `twin export desktop`) sets the resume point.
    alice = account[0][0]
    first = FakeClient([(alice, account[0][1][:2])])
    run(first, tmp_path)
    client = FakeClient([(alice, account[0][1])])
    run(client, tmp_path)
    assert client.calls[0]["min_id"] == 102
    assert ids(tmp_path, 2002) == [101, 102, 104, 105, 106, 107, 108]


def test_a_deleted_account_imported_both_ways_is_one_dialog_under_one_name(tmp_path):
    """Desktop writes "name": null for a deleted account's chat; the API exporter names it "Deleted
    Account". A Desktop import then an API export of the same chat: one file, one name, one contact."""
    from twin.prepare.config import PrepareConfig
    from twin.prepare.pipeline import process_dialog
    from twin.sources.telegram_desktop import import_desktop

    def desk(mid: int, out: bool, text: str) -> dict:
        unix = int(T0.timestamp()) + 60 * mid
        return {"id": mid, "type": "message", "date": datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "date_unixtime": str(unix), "from": "Me" if out else None, "from_id": f"user{ME if out else 2004}",
                "text": text}  # fmt: skip

    chat = {"name": None, "type": "personal_chat", "id": 2004,
            "messages": [desk(501, False, "from a deleted account"), desk(502, True, "still here")]}  # fmt: skip
    export = tmp_path / "result.json"
    export.write_text(json.dumps({"personal_information": {"user_id": ME}, "chats": {"list": [chat]}}))
    import_desktop(export, tmp_path / "raw")
    assert [r["dialog_name"] for r in on_disk(tmp_path / "raw", 2004)] == ["Deleted Account"] * 2
    ghost = user(2004, deleted=True)
    said = [msg(ghost, 501, "from a deleted account"), msg(ghost, 502, "still here", out=True),
            msg(ghost, 503, "and now?"), msg(ghost, 504, "yes", out=True)]  # fmt: skip
    run(FakeClient([(ghost, said)]), tmp_path / "raw")
    assert sorted(p.name for p in (tmp_path / "raw" / "telegram").glob("*.jsonl")) == ["2004.jsonl"]
    records = on_disk(tmp_path / "raw", 2004)
    assert [r["id"] for r in records] == [501, 502, 503, 504]
    assert {r["dialog_name"] for r in records} == {"Deleted Account"}
    res = process_dialog(tmp_path / "raw" / "telegram" / "2004.jsonl", PrepareConfig(val_fraction=0.0), len)
    examples = [json.loads(line) for line in res["text"]["main"]["train"].splitlines()]
    assert [ex["contact"] for ex in examples] == ["Deleted Account"] * 2


@pytest.mark.parametrize("exc", [KeyboardInterrupt, ConnectionError])
def test_interruption_mid_dialog_keeps_what_arrived_and_rerun_completes(tmp_path, exc):
    carol = user(2005, "Carol")
    history = [msg(carol, i, f"m{i}", out=i % 2 == 0) for i in range(1, 11)]
    client = FakeClient([(carol, history)], failures=[Failure(2005, after=7, make=exc)])
    if exc is KeyboardInterrupt:
        with pytest.raises(KeyboardInterrupt):
            run(client, tmp_path, chunk_size=3)
    else:
        with pytest.raises(TwinError, match="run the same command again"):
            run(client, tmp_path, chunk_size=3)
    # Chunks of 3 were written at 3 and 6; the 7th arrived before the failure and is kept too.
    assert ids(tmp_path, 2005) == [1, 2, 3, 4, 5, 6, 7]
    assert [p.name for p in (tmp_path / "telegram").iterdir()] == ["2005.jsonl"]  # no temp files left

    client.calls.clear()
    summary = run(client, tmp_path, chunk_size=3)
    assert client.calls[0]["min_id"] == 7
    assert summary["new messages"] == 3
    assert ids(tmp_path, 2005) == list(range(1, 11))


def test_kill_during_a_chunk_write_leaves_the_previous_chunk_intact(tmp_path, monkeypatch):
    """Ctrl-C while a chunk is being written: the file is the last complete chunk, never half of one."""
    carol = user(2005, "Carol")
    history = [msg(carol, i, f"m{i}") for i in range(1, 11)]
    real_write = telegram_api.write_dialog
    calls = {"n": 0}

    def write_then_die(path, records):
        calls["n"] += 1
        if calls["n"] < 2:
            return real_write(path, records)

        def dying():
            for i, rec in enumerate(records):
                if i == 4:
                    raise KeyboardInterrupt  # killed with the temp file half written
                yield rec

        return real_write(path, dying())

    monkeypatch.setattr(telegram_api, "write_dialog", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        run(FakeClient([(carol, history)]), tmp_path, chunk_size=3)
    raw = tmp_path / "telegram" / "2005.jsonl"
    assert ids(tmp_path, 2005) == [1, 2, 3]
    assert raw.read_text(encoding="utf-8").count("\n") == 3
    assert [p.name for p in raw.parent.iterdir()] == ["2005.jsonl"]

    monkeypatch.setattr(telegram_api, "write_dialog", real_write)
    client = FakeClient([(carol, history)])
    run(client, tmp_path, chunk_size=3)
    assert client.calls[0]["min_id"] == 3
    assert ids(tmp_path, 2005) == list(range(1, 11))


def test_flood_wait_is_waited_out_visibly_and_resumes(tmp_path, caplog):
    carol = user(2005, "Carol")
    history = [msg(carol, i, f"m{i}") for i in range(1, 9)]
    flood = Failure(2005, after=5, make=lambda: FloodWaitError(request=None, capture=42))
    client = FakeClient([(carol, history)], failures=[flood])
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    with caplog.at_level(logging.WARNING, logger="twin"):
        summary = run(client, tmp_path, chunk_size=100, sleep=fake_sleep)
    assert slept == [43]  # the requested 42 s plus a second of margin
    assert "Telegram asks to wait 42 s" in caplog.text
    # The 5 messages before the flood were written, and the fetch resumed after them.
    assert [c["min_id"] for c in client.calls] == [0, 5]
    assert ids(tmp_path, 2005) == list(range(1, 9))
    assert summary["flood waits"] == 1
    assert summary["new messages"] == 8


def test_flood_wait_while_listing_dialogs(tmp_path, account):
    client = FakeClient(account)
    real = client.iter_dialogs
    state = {"raised": False}

    async def flaky(**kw):
        if not state["raised"]:
            state["raised"] = True
            raise FloodWaitError(request=None, capture=3)
        async for d in real(**kw):
            yield d

    client.iter_dialogs = flaky
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    summary = run(client, tmp_path, sleep=fake_sleep)
    assert slept == [4] and summary["dialogs"] == 3


def test_since_and_limit_dialogs(tmp_path):
    alice, bob = user(2002, "Alice"), user(2003, "Bob")
    client = FakeClient(
        [
            (alice, [msg(alice, 1, "old", minutes=0), msg(alice, 2, "midnight", minutes=15 * 60),
                     msg(alice, 3, "new", minutes=20 * 60)]),
            (bob, [msg(bob, 4, "old bob", minutes=1)]),
        ]
    )  # fmt: skip
    summary = run(client, tmp_path, since="2024-03-02")  # T0 is 2024-03-01 09:00 UTC
    assert ids(tmp_path, 2002) == [2, 3]  # 2024-03-02T00:00:00Z is "on or after"
    assert not (tmp_path / "telegram" / "2003.jsonl").exists()  # its last message is older
    assert summary["skipped dialogs"]["no_messages_since"] == 1
    assert client.calls[0]["offset_date"] == datetime(2024, 3, 1, 23, 59, 59, tzinfo=UTC)

    # Resuming (min_id from disk) cannot use offset_date at the same time: older messages are
    # filtered locally instead.
    carol = user(2005, "Carol")
    resumed = FakeClient([(carol, [msg(carol, 10, "before", minutes=0)])])
    out1 = tmp_path / "resume"
    run(resumed, out1)
    resumed.add(carol, msg(carol, 11, "still before", minutes=60), msg(carol, 12, "after", minutes=16 * 60))
    resumed.calls.clear()
    run(resumed, out1, since="2024-03-02")
    assert resumed.calls[0]["min_id"] == 10 and resumed.calls[0]["offset_date"] is None
    assert ids(out1, 2005) == [10, 12]

    out2 = tmp_path / "limited"
    client.calls.clear()
    summary = run(client, out2, limit_dialogs=1)
    assert summary["dialogs"] == 1
    assert [c["dialog_id"] for c in client.calls] == [2002]  # the most recent one


def test_bad_since_and_bad_raw_file_are_one_line_errors(tmp_path, account):
    with pytest.raises(TwinError, match="--since 'yesterday'"):
        run(FakeClient(account), tmp_path, since="yesterday")
    bad = tmp_path / "telegram" / "2002.jsonl"
    bad.parent.mkdir(parents=True)
    bad.write_text('{"id": 1\n', encoding="utf-8")
    with pytest.raises(TwinError, match=r"2002\.jsonl:1: not valid JSON"):
        run(FakeClient(account), tmp_path)
    assert bad.read_text(encoding="utf-8") == '{"id": 1\n'  # left as it was


def test_telegrams_own_accounts_are_not_people(tmp_path):
    """ "Replies" holds strangers' answers to your channel comments; none of these is a chat with a person."""
    accounts = [user(777000, "Telegram"), user(1271266957, "Replies"), user(489000, "Verification Codes")]
    pal = user(2002, "Pal")
    chats = [
        (a, [msg(a, 10 + i, "code 12345" if i != 1 else "a stranger's reply")])
        for i, a in enumerate(accounts)
    ]
    summary = run(FakeClient([*chats, (pal, [msg(pal, 20, "hi")])]), tmp_path)
    assert summary["skipped dialogs"] == {"service": 3}
    assert sorted(p.name for p in (tmp_path / "telegram").iterdir()) == ["2002.jsonl"]


def test_albums_cross_chat_replies_and_empty_messages(tmp_path):
    """An album is one message per item (the caption on one of them); a reply quoting another chat
    keeps no reply_to, as the Desktop importer does; a deleted (empty) message is skipped."""
    from telethon.tl import types

    alice = user(2002, "Alice")
    album = [msg(alice, 10, "our trip", media=photo()), msg(alice, 11, "", media=photo()),
             msg(alice, 12, "", media=photo())]  # fmt: skip
    for m in album:
        m.grouped_id = 777
    quoting = msg(alice, 13, "ha, see that post", out=True)
    quoting.reply_to = types.MessageReplyHeader(reply_to_msg_id=5, reply_to_peer_id=types.PeerChannel(77))
    here = msg(alice, 14, "this one", out=True, reply_to=12)
    gone = types.MessageEmpty(id=15, peer_id=types.PeerUser(2002))
    summary = run(FakeClient([(alice, [*album, quoting, here, gone])]), tmp_path)
    recs = {r["id"]: r for r in on_disk(tmp_path, 2002)}
    assert list(recs) == [10, 11, 12, 13, 14]
    assert [(recs[i]["text"], recs[i]["media"]) for i in (10, 11, 12)] == [
        ("our trip", "photo"), ("", "photo"), ("", "photo"),
    ]  # fmt: skip
    assert recs[13]["reply_to"] is None and recs[13]["out"] and recs[14]["reply_to"] == 12
    assert summary["of them media only"] == 2 and summary["skipped service/empty messages"] == 1


def test_media_kinds_from_telethon_types():
    alice = user(2002, "Alice")
    kinds = {
        name: media_kind(msg(alice, 1, "", media=m))
        for name, m in [("photo", photo()), ("sticker", sticker()), ("voice", voice()), ("gif", gif()),
                        ("video_note", video_note()), ("document", pdf()), ("webpage", webpage()), ("none", None)]
    }  # fmt: skip
    assert kinds == {
        "photo": "photo", "sticker": "sticker", "voice": "voice_message", "gif": "animation",
        "video_note": "video_message", "document": "file", "webpage": None, "none": None,
    }  # fmt: skip


def test_an_inline_bots_result_is_marked_as_the_desktop_importer_marks_it():
    """A message sent via @wiki carries the bot's words: ``via_bot`` in the raw record, as Desktop's."""
    alice = user(2002, "Alice")
    sent = msg(alice, 1, "Quantum mechanics is a theory.", out=True)
    sent.via_bot_id = 109
    assert telegram_client.message_record(sent, 2002, "Alice")["via_bot"] is True
    assert "via_bot" not in telegram_client.message_record(msg(alice, 2, "mine", out=True), 2002, "Alice")


# ----------------------------------------------------------------------------- credentials, session, CLI


def clean_env(monkeypatch):
    for name in ("TELEGRAM_API_ID", "TELEGRAM_API_HASH", "TELEGRAM_PHONE"):
        monkeypatch.delenv(name, raising=False)


def test_credentials_from_env_file_and_environment(tmp_path, monkeypatch):
    clean_env(monkeypatch)
    env = tmp_path / ".env"
    with pytest.raises(TwinError) as e:
        load_credentials(env)
    assert "https://my.telegram.org" in str(e.value) and "TELEGRAM_API_ID" in str(e.value)
    assert "\n" not in str(e.value) and f"the environment ({env} not found)" in str(e.value)
    # no file on purpose (`--env-file /dev/null`) or none at all: not "not found", nor "None"
    for nothing, looked in (("/dev/null", "the environment and /dev/null;"), (None, "the environment;")):
        with pytest.raises(TwinError, match="credentials missing") as e:
            load_credentials(nothing)
        assert looked in str(e.value)

    env.write_text(f"TELEGRAM_API_ID=12345\nTELEGRAM_API_HASH={HASH}\nTELEGRAM_PHONE=+15550001\n")
    creds = load_credentials(env)
    assert (creds.api_id, creds.api_hash, creds.phone) == (12345, HASH, "+15550001")
    assert HASH not in repr(creds)

    monkeypatch.setenv("TELEGRAM_API_ID", "999")  # the environment wins over .env
    assert load_credentials(env).api_id == 999

    monkeypatch.setenv("TELEGRAM_API_ID", "12ab")
    with pytest.raises(TwinError, match="environment variable TELEGRAM_API_ID must be the numeric") as e:
        load_credentials(env)
    assert HASH not in str(e.value)

    clean_env(monkeypatch)
    env.write_text("TELEGRAM_API_ID=1\nTELEGRAM_API_HASH=not-a-hash-value\n")
    with pytest.raises(TwinError, match=r"TELEGRAM_API_HASH in .*\.env does not look like") as e:
        load_credentials(env)
    assert "not-a-hash-value" not in str(e.value)


def test_export_telegram_session_modes_login_and_no_secret_in_output(tmp_path, monkeypatch, caplog, capsys):
    clean_env(monkeypatch)
    monkeypatch.setenv("TELEGRAM_API_ID", "12345")
    monkeypatch.setenv("TELEGRAM_API_HASH", HASH)
    monkeypatch.setenv("TELEGRAM_PHONE", "+15550001")
    alice = user(2002, "Alice")
    made: dict = {}

    def factory(session_path: Path, api_id: int, api_hash: str) -> FakeClient:
        made.update(session_path=session_path, api_id=api_id, api_hash=api_hash)
        client = FakeClient([(alice, [msg(alice, 1, "hi")])], session_path=session_path)
        made["client"] = client
        return client

    session = tmp_path / "private" / "nested" / "tg"  # telethon would add ".session"
    with caplog.at_level(logging.DEBUG):
        summary = export_telegram(
            tmp_path / "raw",
            session=session,
            env_file=tmp_path / "none.env",
            client_factory=factory,
            progress=False,
        )
    path = session.with_name("tg.session")
    assert made["session_path"] == path and made["api_id"] == 12345 and made["api_hash"] == HASH
    assert made["client"].started == {"phone": "+15550001"} and made["client"].disconnected
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # the fake wrote it 0644, like sqlite would
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert summary["dialogs"] == 1 and ids(tmp_path / "raw", 2002) == [1]
    captured = capsys.readouterr()
    assert HASH not in caplog.text + captured.out + captured.err


def test_default_client_is_real_telethon_and_accepts_the_prepared_session(tmp_path):
    """The pre-created empty 0600 file is a valid telethon/sqlite session, and stays 0600."""
    path = telegram_client.session_file(tmp_path / "s")
    telegram_client.prepare_session(path)

    async def build():
        client = telegram_client.telethon_client(path, 12345, HASH)
        client.session.save()
        client.session.close()
        return client

    client = asyncio.run(build())
    assert client.flood_sleep_threshold == 0
    assert path.stat().st_size > 0  # telethon created its tables in our file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _cli_env(tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEGRAM_")}
    env.update(HOME=str(tmp_path), **extra)
    return env


def test_cli_missing_credentials_exits_2_with_one_line(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "twin.cli", "export", "telegram", "--out", str(tmp_path / "raw")],
        cwd=tmp_path,
        env=_cli_env(tmp_path, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: Telegram API credentials missing")
    assert "https://my.telegram.org" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "raw").exists() and not (tmp_path / ".config").exists()


def test_cli_invalid_api_id_never_prints_the_hash(tmp_path):
    (tmp_path / "my.env").write_text(f"TELEGRAM_API_ID=not-a-number\nTELEGRAM_API_HASH={HASH}\n")
    twin = Path(sys.executable).with_name("twin")
    cmd = [str(twin)] if twin.exists() else [sys.executable, "-m", "twin.cli"]
    r = subprocess.run(
        [*cmd, "-v", "export", "telegram", "--env-file", "my.env"],
        cwd=tmp_path,
        env=_cli_env(tmp_path, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "TELEGRAM_API_ID in my.env must be the numeric" in r.stderr
    assert HASH not in r.stdout + r.stderr


# ----------------------------------------------------------------------------- against telethon's own iterator


def test_real_telethon_iterator_paging_resume_and_flood(tmp_path, monkeypatch):
    """telethon's real iter_messages (reverse, min_id, paging by 100) against a scripted getHistory."""
    from types import SimpleNamespace

    from helpers.fake_telethon import scripted_telegram_client

    paced: list[float] = []

    async def no_sleep(seconds: float) -> None:
        paced.append(seconds)

    # telethon paces getHistory (1 s between requests for unbounded fetches); don't wait in tests.
    monkeypatch.setattr("telethon.requestiter.asyncio", SimpleNamespace(sleep=no_sleep))
    alice, bob = user(2002, "Alice"), user(2003, "Bob")
    history = [msg(alice, i, f"m{i}", out=i % 3 == 0) for i in range(1, 251)]
    chats = [(alice, history), (bob, [msg(bob, 1000 + i, f"b{i}", minutes=i) for i in range(5)])]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    async def export(**kw):
        client = scripted_telegram_client(chats, **kw)
        summary = await export_dialogs(client, tmp_path, chunk_size=100, sleep=fake_sleep, progress=False)
        return client, summary

    # The 2nd request (alice, second page) hits a flood wait: waited out, resumed after the 100 written.
    client, summary = asyncio.run(export(flood_on_request=2))
    assert slept == [8] and summary["flood waits"] == 1
    assert ids(tmp_path, 2002) == list(range(1, 251))
    assert ids(tmp_path, 2003) == [1000, 1001, 1002, 1003, 1004]
    alice_reqs = [r for r in client.requests if r["peer_id"] == 2002]
    assert [r["offset_id"] for r in alice_reqs] == [1, 101, 101, 201, 251]  # page 2 failed, retried; 251: end
    assert alice_reqs[2]["offset_id"] == 101  # resumed from min_id=100 (written before the flood)
    assert len(paced) > 0  # telethon's own pacing ran (and was not slept through here)

    history.extend(msg(alice, i, f"m{i}") for i in range(251, 281))
    client, summary = asyncio.run(export())
    assert summary["new messages"] == 30
    first = next(r for r in client.requests if r["peer_id"] == 2002)
    assert (first["offset_id"], first["add_offset"], first["limit"]) == (251, -100, 100)
    assert ids(tmp_path, 2002) == list(range(1, 281))


def test_real_telethon_iterator_since(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from helpers.fake_telethon import scripted_telegram_client

    async def no_sleep(seconds: float) -> None:
        return None

    monkeypatch.setattr("telethon.requestiter.asyncio", SimpleNamespace(sleep=no_sleep))
    alice = user(2002, "Alice")
    # Minute 900 after T0 (2024-03-01 09:00) is exactly 2024-03-02 00:00:00 UTC.
    history = [msg(alice, i, f"m{i}", minutes=m) for i, m in enumerate([0, 600, 899, 900, 901, 2000], 1)]

    async def export():
        client = scripted_telegram_client([(alice, history)])
        return await export_dialogs(client, tmp_path, since="2024-03-02", progress=False)

    asyncio.run(export())
    assert ids(tmp_path, 2002) == [4, 5, 6]


@pytest.mark.parametrize(
    ("raised", "message"),
    [
        (EOFError, "no terminal to ask for the login code"),
        (lambda: ApiIdInvalidError(request=None), "rejected TELEGRAM_API_ID/TELEGRAM_API_HASH"),
        (lambda: FloodWaitError(request=None, capture=3600), "wait 3600 s before the next login attempt"),
    ],
)
def test_login_failures_are_one_line_errors(tmp_path, monkeypatch, capsys, raised, message):
    clean_env(monkeypatch)
    monkeypatch.setenv("TELEGRAM_API_ID", "12345")
    monkeypatch.setenv("TELEGRAM_API_HASH", HASH)

    class NoLogin(FakeClient):
        async def start(self, *args, **kwargs):
            raise raised()

    client = NoLogin([])
    with pytest.raises(TwinError, match=message) as e:
        export_telegram(
            tmp_path / "raw", session=tmp_path / "s", env_file=None, client_factory=lambda *a: client
        )
    assert HASH not in str(e.value) + "".join(capsys.readouterr())
    assert client.disconnected and not (tmp_path / "raw").exists()


@pytest.mark.parametrize(
    ("phone", "env_phone", "region"), [("94771234567", None, "LK"), (None, "+49 151 12345678", "DE")]
)
def test_the_owners_phone_region_is_kept_never_the_number(tmp_path, monkeypatch, phone, env_phone, region):
    """get_me()'s phone (or else the login phone) gives account.json its region, for `twin prepare`."""
    clean_env(monkeypatch)
    monkeypatch.setenv("TELEGRAM_API_ID", "12345")
    monkeypatch.setenv("TELEGRAM_API_HASH", HASH)
    if env_phone:
        monkeypatch.setenv("TELEGRAM_PHONE", env_phone)
    alice = user(2002, "Alice")
    client = FakeClient([(alice, [msg(alice, 1, "hi")])])
    client.me = user(1, "Me", phone=phone)
    summary = export_telegram(
        tmp_path / "raw",
        session=tmp_path / "s",
        env_file=None,
        client_factory=lambda *a: client,
        progress=False,
    )
    acc = tmp_path / "raw" / "telegram" / "account.json"
    assert summary["phone region"] == region
    assert json.loads(acc.read_text()) == {"owner": "user1", "phone_region": region}
    assert "1234567" not in acc.read_text() and stat.S_IMODE(acc.stat().st_mode) == 0o600


def test_another_accounts_chats_in_the_directory_stop_the_export_before_it_reads_any(tmp_path, monkeypatch):
    """Logged in as someone else than whose chats `data/raw` holds: refused, nothing read or written."""
    clean_env(monkeypatch)
    monkeypatch.setenv("TELEGRAM_API_ID", "12345")
    monkeypatch.setenv("TELEGRAM_API_HASH", HASH)
    alice = user(2002, "Alice")

    def run(me_id: int) -> FakeClient:
        client = FakeClient([(alice, [msg(alice, 1, "hi")])])
        client.me = user(me_id, "Me")
        export_telegram(tmp_path / "raw", session=tmp_path / "s", env_file=None,
                        client_factory=lambda *a: client, progress=False)  # fmt: skip
        return client

    run(1)
    before = {p.name: p.read_bytes() for p in (tmp_path / "raw" / "telegram").iterdir()}
    with pytest.raises(TwinError, match=r"another account \(user1\) and this export is user7's"):
        run(7)
    assert {p.name: p.read_bytes() for p in (tmp_path / "raw" / "telegram").iterdir()} == before
    assert run(1).disconnected  # the same account again exports as before


def test_a_group_message_names_who_wrote_it_mine_and_personal_chats_do_not(tmp_path):
    """As the Desktop importer: a group's records of others carry ``sender`` for prepare's labels."""
    anna, ghost = user(2002, "Anna", "Petrova"), user(2004, deleted=True)
    grp = group(55, "Family")
    hers, gone, mine = (
        msg(grp, 1, "dinner at 7?"),
        msg(grp, 2, "ok"),
        msg(grp, 3, "I'll bring cake", out=True),
    )
    hers._sender, gone._sender = anna, ghost  # telethon sets these from the users its reply carries
    direct = msg(anna, 4, "see you")
    direct._sender = anna
    run(FakeClient([(grp, [hers, gone, mine]), (anna, [direct])]), tmp_path, include_groups=True)
    assert [r.get("sender") for r in on_disk(tmp_path, 55)] == ["Anna Petrova", "Deleted Account", None]
    assert "sender" not in on_disk(tmp_path, 2002)[0]
