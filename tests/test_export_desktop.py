"""`twin export desktop`: real Desktop exports, owner rules, dates, merging, and bad input leaving data/raw alone."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from twin import cli
from twin.errors import TwinError
from twin.records import FIELDS, decode_rows, dumps_record, encode_rows, read_dialog, write_dialog
from twin.sources import telegram_desktop as td
from twin.sources.telegram_desktop import import_desktop
from twin.sources.telegram_desktop import parse as td_parse
from twin.sources.telegram_desktop import single as td_single

FIX = Path(__file__).resolve().parent / "fixtures" / "telegram"
DM = FIX / "DM_2A_7M.json"
MULTI = FIX / "MultiChat_2C_6M.json"
LANGCHAIN = FIX / "langchain_result.json"
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "result.json"
# A one-chat export in Desktop 2024's exact layout with every kind of message (tests/data/export/README.md)
PERSONAL_2024 = Path(__file__).resolve().parent / "data" / "export" / "personal_chat_2024.json"


def tree_hash(root: Path) -> str:
    """Names, bytes (and nothing else) of every file under ``root``; '' if it does not exist."""
    if not root.exists():
        return ""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode() + b"\0")
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def records(raw: Path, dialog_id: int) -> dict[int, dict]:
    return {r["id"]: r for r in read_dialog(raw / "telegram" / f"{dialog_id}.jsonl")}


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def msg(mid: int, sender: str | int | None, text, t: int = 1_700_000_000, **extra) -> dict:
    m = {"id": mid, "type": "message", "date": "2023-11-14T22:13:20", "date_unixtime": str(t + mid)}
    m |= {"from": None if sender is None else f"N{sender}", "from_id": sender, "text": text}
    return m | extra


def account(chats: list[dict], user_id: int | None = 1, left: list[dict] | None = None) -> dict:
    data: dict = {"about": "x"}
    if user_id is not None:
        data["personal_information"] = {"user_id": user_id, "first_name": "Me", "last_name": "Self"}
    data["chats"] = {"about": "x", "list": chats}
    if left is not None:
        data["left_chats"] = {"about": "x", "list": left}
    return data


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """Run ``twin ...`` in-process through ``twin.cli.main`` (the console script's entry point)."""
    monkeypatch.setattr(sys, "argv", ["twin", *args])
    try:
        cli.main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 0
    return code, capsys.readouterr().err


# ------------------------------------------------------------------------------ the real fixtures


def test_single_chat_with_mixed_dates_owner_from_chat_peer(tmp_path):
    s = import_desktop(DM, tmp_path, tz="Europe/Berlin")
    assert s["owner"] == "user300000000" and s["dialogs"] == 1 and s["messages"] == 6
    assert s["skipped_messages"] == {"service": 1} and s["local_dates"] == 2 and s["media_only"] == 2
    recs = records(tmp_path, 700000000)
    assert list(recs) == [3644, 3645, 3662, 3663, 3672, 3673]  # sorted by date
    # zone-less 'date' read as Berlin wall time: CEST (+2) in July, CET (+1) in March
    assert recs[3644]["date"] == "2019-07-12T14:55:32Z" and recs[3645]["date"] == "2022-03-08T12:07:42Z"
    assert recs[3662]["date"] == "2022-05-09T22:23:53Z"  # date_unixtime 1652135033 is already UTC
    assert recs[3644]["text"] == "https://google.com 👀"  # entity list starting with a link
    assert [recs[i]["out"] for i in recs] == [False, True, False, True, True, True]
    assert recs[3672] | {} == {
        "source": "telegram", "dialog_id": 700000000, "dialog_name": "Bob", "id": 3672,
        "date": "2022-06-10T22:06:38Z", "out": True, "text": "", "reply_to": None,
        "forwarded": False, "media": "photo",
    }  # fmt: skip


def test_a_2024_one_chat_export_with_every_kind_of_message(tmp_path):
    s = import_desktop(PERSONAL_2024, tmp_path)
    assert (s["owner"], s["owner_from"]) == ("user5550002", "personal chats")  # the one who is not the peer
    assert s["skipped_messages"] == {"service": 2, "other_type": 1}  # join, call; "unsupported"
    recs = records(tmp_path, 5550001)
    assert s["messages"] == len(recs) == 23 and s["media_only"] == 7 and 115 not in recs
    assert {r["dialog_name"] for r in recs.values()} == {"נועה כהן"}
    # UTC from date_unixtime, not the exporting machine's wall time (UTC+3) in 'date'
    assert recs[101]["date"] == "2024-06-01T10:00:00Z" and not recs[101]["out"]
    assert recs[102]["text"] == "Привет, всё хорошо. Ты как?" and recs[102]["out"]  # bold piece joined
    got = {i: (recs[i]["text"], recs[i]["media"]) for i in (104, 105, 108, 109, 111, 112, 113, 123)}
    assert got == {
        104: ("תראה מה צילמתי", "photo"), 105: ("", "sticker"), 108: ("", "animation"),
        109: ("", "voice_message"), 111: ("", "poll"), 112: ("", "contact"), 113: ("", "location"),
        123: ("", "photo"),
    }  # fmt: skip
    assert recs[106]["reply_to"] == 104 and recs[117]["reply_to"] is None  # 117 quotes another chat
    # a GIF sent via @gif is no forward, but the bot's: marked, as prepare shows it ([GIF], never words)
    assert recs[107]["forwarded"] and not recs[108]["forwarded"] and recs[108]["via_bot"]
    assert recs[110]["text"] == "Скопировал из письма:\x0bвот так"  # Desktop's "\x0B", repaired
    assert recs[116]["text"] == "Договорились 👍" and recs[124]["text"] == "פרטים בקישור"
    assert recs[118]["pii"] == [[16, 15, "PHONE"]]
    assert [i for i in recs if recs[i]["out"]] == [102, 103, 106, 108, 110, 112, 116, 118, 120, 122, 123, 125]


def test_the_readme_flow_export_then_prepare_learns_the_owners_side(tmp_path, monkeypatch, capsys):
    """`twin export desktop FILE` then `twin prepare`: every response is the owner's (Russian), every
    instruction the contact's (Hebrew), and the phone number Telegram tagged is scrubbed."""
    raw, processed = tmp_path / "raw", tmp_path / "processed"
    code, err = run_cli(monkeypatch, capsys, "export", "desktop", str(PERSONAL_2024), "--out", str(raw))
    assert code == 0, err
    code, err = run_cli(
        monkeypatch, capsys, "prepare", "--raw", str(raw), "--out", str(processed), "--workers", "1"
    )
    assert code == 0, err
    examples = [
        json.loads(line)
        for split in ("train", "val")
        for line in (processed / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert len(examples) >= 5

    def script(text: str) -> set[str]:
        """The scripts of its letters: Hebrew, Cyrillic or other (the scrubber's [PHONE] and the marks
        of media and forwards, [sticker], [forwarded message], are Latin)."""
        words = re.sub(r"\[(?:[A-Za-z ]+|sticker [^\]]+)\]", "", text)
        return {"he" if "\u0590" <= c <= "\u05ff" else "ru" if "\u0400" <= c <= "\u04ff" else "other"
                for c in words if c.isalpha()}  # fmt: skip

    assert all(script(e["instruction"]) in ({"he"}, set()) for e in examples)  # set(): a voice message
    assert all(
        script(e["response"]) == {"ru"} and "[" not in e["response"].replace("[PHONE]", "") for e in examples
    )
    assert any("[PHONE]" in e["response"] for e in examples)
    assert not any("765 4321" in json.dumps(e, ensure_ascii=False) for e in examples)


def test_stickers_voice_forwards_and_bot_results_are_marks_in_view_never_responses(tmp_path):
    """Desktop's media-only messages, a forward and an inline bot's result (@wiki) have no words of their
    sender's own: prepare shows each as a mark where it was sent, so the reply to a contact card is paired
    with it (not with an older question, run together with what came before), their messages on either
    side of my sticker stay apart, and no response is a mark or a bot's text."""
    from twin.prepare.pipeline import PrepareConfig, run_prepare

    ni = "(File not included. Change data exporting settings to download.)"
    wiki = "Quantum mechanics is a fundamental theory in physics."
    msgs = [
        msg(1, "user2", "what's your email?"),
        msg(2, "user1", "dima@example.com"),
        msg(3, "user2", "", contact_information={"first_name": "Oleg", "last_name": "", "phone_number": "+7 916 123 4567"}),
        msg(4, "user1", "thanks, saved"),
        msg(5, "user2", "coming tonight?"),
        msg(6, "user1", "", file=ni, thumbnail=ni, media_type="sticker", sticker_emoji="👍"),
        msg(7, "user2", "great, at 7"),
        msg(8, "user1", "", file="voice_messages/audio_1.ogg", media_type="voice_message", duration_seconds=7),
        msg(9, "user2", "what is quantum mechanics?"),
        msg(10, "user1", wiki, via_bot="@wiki"),
        msg(11, "user2", "read this", forwarded_from="News"),
        msg(12, "user2", "", photo="photos/photo_1.jpg", width=1280, height=960),
        msg(13, "user2", "", photo="photos/photo_2.jpg", width=1280, height=960),  # an album: one mark
        msg(14, "user1", "wow"),
    ]  # fmt: skip
    chat = {"name": "Pal", "type": "personal_chat", "id": 2, "messages": msgs}
    import_desktop(write_json(tmp_path / "e.json", account([chat])), tmp_path / "raw")
    assert records(tmp_path / "raw", 2)[10]["via_bot"] and "via_bot" not in records(tmp_path / "raw", 2)[9]
    run_prepare(PrepareConfig(raw=str(tmp_path / "raw"), out=str(tmp_path / "out"), val_fraction=0.0))
    rows = [
        json.loads(x) for x in (tmp_path / "out" / "train.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert [(r["instruction"], r["response"]) for r in rows] == [
        ("what's your email?", "[EMAIL]"),
        ("[contact]", "thanks, saved"),  # was "[EMAIL]\nthanks, saved" after "what's your email?"
        ("[forwarded message]\n[photo]", "wow"),  # was "what is quantum mechanics?" -> the wiki's text
    ]
    assert [(t["role"], t["text"]) for t in rows[-1]["context"][-6:]] == [
        ("them", "coming tonight?"), ("me", "[sticker 👍]"), ("them", "great, at 7"), ("me", "[voice message]"),
        ("them", "what is quantum mechanics?"), ("me", "[bot message]"),
    ]  # fmt: skip
    assert "916" not in (tmp_path / "out" / "train.jsonl").read_text(encoding="utf-8")


def test_tz_only_changes_messages_without_unixtime(tmp_path):
    import_desktop(DM, tmp_path / "utc", tz="UTC")
    import_desktop(DM, tmp_path / "tokyo", tz="Asia/Tokyo")
    utc, tokyo = records(tmp_path / "utc", 700000000), records(tmp_path / "tokyo", 700000000)
    assert utc[3645]["date"] == "2022-03-08T13:07:42Z" and tokyo[3645]["date"] == "2022-03-08T04:07:42Z"
    assert all(utc[i] == tokyo[i] for i in (3662, 3663, 3672, 3673))


def test_default_tz_is_the_machines_zone(tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        import_desktop(DM, tmp_path)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert records(tmp_path, 700000000)[3645]["date"] == "2022-03-08T18:07:42Z"  # EST, UTC-5


def test_account_export_owner_from_personal_information(tmp_path):
    s = import_desktop(MULTI, tmp_path)
    assert s["owner"] == "user100000001" and s["owner_from"] == "personal_information"
    assert s["dialogs"] == 1 and s["skipped_chats"] == {"private_group": 1}
    recs = records(tmp_path, 700000001)
    assert [r["out"] for r in recs.values()] == [False, False]  # the owner never speaks here
    assert recs[1001]["dialog_name"] == "Chat One" and recs[1001]["date"] == "2023-01-01T12:00:00Z"
    assert sorted(p.name for p in (tmp_path / "telegram").glob("*.jsonl")) == ["700000001.jsonl"]


def test_skipped_groups_are_named_with_the_option_that_adds_them(tmp_path, caplog):
    caplog.set_level("INFO", logger=td.__name__)
    import_desktop(MULTI, tmp_path / "a")
    assert "1 group chat(s) skipped: personal chats only; add --include-groups" in caplog.text
    caplog.clear()
    import_desktop(MULTI, tmp_path / "b", include_groups=True)
    assert "group chat(s) skipped" not in caplog.text


def test_include_groups_adds_the_group(tmp_path):
    s = import_desktop(MULTI, tmp_path, include_groups=True)
    assert s["dialogs"] == 2 and s["skipped_messages"] == {"service": 1}
    group = records(tmp_path, 700000002)
    assert list(group) == [2001, 2002, 2004] and group[2004]["media"] == "photo"


def test_owner_cannot_be_inferred_asks_for_me_and_writes_nothing(tmp_path):
    with pytest.raises(TwinError, match=r"--me") as e:
        import_desktop(LANGCHAIN, tmp_path / "raw")
    assert "langchain_result.json" in str(e.value) and "user6565661032" in str(e.value)
    assert not (tmp_path / "raw").exists()


@pytest.mark.parametrize("me", ["user6565661032", "6565661032", "Batman & Robin"])
def test_me_accepts_id_user_form_and_display_name(tmp_path, me):
    s = import_desktop(LANGCHAIN, tmp_path, me=me)
    assert s["owner"] == "user6565661032"
    recs = records(tmp_path, 5965280513)
    assert [i for i, r in recs.items() if r["out"]] == [2, 5]
    assert recs[5]["text"] == "this is bold text: BOLD TEXT"
    assert recs[6]["text"] == "this is an email: admin@example.com"


def test_me_overrides_personal_information(tmp_path):
    s = import_desktop(MULTI, tmp_path, me="Bob")
    assert s["owner"] == "user700000000" and s["owner_from"].startswith("--me")
    assert [r["out"] for r in records(tmp_path, 700000001).values()] == [False, True]


def test_unknown_display_name_is_an_error(tmp_path):
    with pytest.raises(TwinError, match=r"--me 'Robin'.*no sender"):
        import_desktop(LANGCHAIN, tmp_path, me="Robin")


@pytest.mark.slow
def test_bundled_sample_imports_every_personal_chat(tmp_path):
    data = json.loads(SAMPLE.read_text(encoding="utf-8"))
    s = import_desktop(SAMPLE, tmp_path)
    personal = [c for c in data["chats"]["list"] if c["type"] == "personal_chat"]
    assert s["dialogs"] == len(personal) == 23
    assert s["skipped_chats"] == {"bot_chat": 1, "private_group": 1, "saved_messages": 1}
    # an independent count: every non-service message with text or media
    want = sum(
        m["type"] == "message" and (bool(m["text"]) or "photo" in m or "file" in m)
        for c in personal
        for m in c["messages"]
    )
    service = sum(m["type"] == "service" for c in personal for m in c["messages"])
    assert s["messages"] == want and s["skipped_messages"]["service"] == service > 0
    files = sorted((tmp_path / "telegram").glob("*.jsonl"))
    assert {int(p.stem) for p in files} == {c["id"] for c in personal}
    deleted = records(tmp_path, 200000999)  # a deleted account: "from": null
    assert any(not r["out"] for r in deleted.values()) and any(r["out"] for r in deleted.values())
    everything = [r for p in files for r in read_dialog(p)]
    assert {r["media"] for r in everything} >= {"sticker", "voice_message", "photo", None}
    assert any(r["forwarded"] for r in everything) and any(r["reply_to"] for r in everything)
    mine = sum(r["out"] for r in everything)
    assert 0.3 < mine / len(everything) < 0.7
    # the fast writer's bytes are exactly records.write_dialog's
    for p in files[:5]:
        ref = tmp_path / "ref" / p.name
        write_dialog(ref, read_dialog(p))
        assert ref.read_bytes() == p.read_bytes()


# ------------------------------------------------------------------------- idempotence and merging


def test_reimport_is_byte_identical_and_leaves_files_alone(tmp_path):
    import_desktop(SAMPLE, tmp_path)
    before = tree_hash(tmp_path)
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "telegram").iterdir()}
    s = import_desktop(SAMPLE, tmp_path)
    assert tree_hash(tmp_path) == before
    assert s["files_written"] == 0 and s["new_messages"] == 0 and s["dialogs"] == 23
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "telegram").iterdir()} == mtimes


def test_newer_export_merges_without_duplicates_and_keeps_latest_edit(tmp_path):
    chat = {
        "name": "Pal",
        "type": "personal_chat",
        "id": 2,
        "messages": [msg(i, "user2", f"m{i}") for i in range(1, 6)],
    }
    old = write_json(tmp_path / "old.json", account([chat]))
    chat["messages"][1] = msg(2, "user1", "m2 (edited)", edited_unixtime="1800000000")
    chat["messages"] += [msg(i, "user1", f"m{i}") for i in range(6, 9)]
    del chat["messages"][0]  # deleted in Telegram since: the old copy stays on disk
    new = write_json(tmp_path / "new.json", account([chat]))
    raw = tmp_path / "raw"
    assert import_desktop(old, raw)["new_messages"] == 5
    s = import_desktop(new, raw)
    assert s["new_messages"] == 3 and s["files_written"] == 1
    recs = records(raw, 2)
    assert list(recs) == list(range(1, 9))
    assert recs[2]["text"] == "m2 (edited)" and recs[2]["out"] is True
    once = tree_hash(raw)
    import_desktop(new, raw)
    assert tree_hash(raw) == once


def test_repeated_message_keeps_the_copy_edited_last(tmp_path):
    a = msg(1, "user2", "first", edited_unixtime="1700000500")
    b = msg(1, "user2", "second", edited_unixtime="1700000100")
    for order, want in (([a, b], "first"), ([b, a], "first")):
        chats = [{"name": "P", "type": "personal_chat", "id": 2, "messages": [m]} for m in order]
        out = tmp_path / want / str(len(list(tmp_path.iterdir())))
        s = import_desktop(write_json(tmp_path / "e.json", account(chats)), out)
        assert records(out, 2)[1]["text"] == want and s["skipped_messages"] == {"duplicate": 1}


# ---------------------------------------------------------------------------- shapes and counting


def test_old_layout_int_from_id_and_date_only(tmp_path):
    m1 = {
        "id": 1,
        "type": "message",
        "date": "2018-01-02T03:04:05",
        "from": "Pal",
        "from_id": 2,
        "text": "hi",
    }
    m2 = {"id": 2, "type": "message", "date": "2018-01-02T03:05:00", "from": "Me", "from_id": 1, "text": "yo"}
    f = write_json(
        tmp_path / "old.json", {"name": "Pal", "type": "personal_chat", "id": 2, "messages": [m1, m2]}
    )
    s = import_desktop(f, tmp_path / "raw", tz="UTC")
    assert s["owner"] == "user1" and s["local_dates"] == 2
    recs = records(tmp_path / "raw", 2)
    assert recs[1]["date"] == "2018-01-02T03:04:05Z" and recs[2]["out"] and not recs[1]["out"]


def test_dates_read_in_this_machines_zone_name_it_and_the_tz_fix(tmp_path, monkeypatch, caplog):
    """An old export (no date_unixtime) imported without --tz: the line names the zone the dates were
    read in and how to choose another, not just "this machine's time zone"."""
    caplog.set_level("INFO")
    monkeypatch.setenv("TZ", "Asia/Colombo")
    time.tzset()
    try:
        m = {"id": 1, "type": "message", "date": "2018-01-02T03:04:05", "from_id": 2, "text": "hi"}
        chat = {
            "name": "Pal",
            "type": "personal_chat",
            "id": 2,
            "messages": [m, {**m, "id": 2, "from_id": 1}],
        }
        s = import_desktop(write_json(tmp_path / "old.json", chat), tmp_path / "raw")
        assert records(tmp_path / "raw", 2)[1]["date"] == "2018-01-01T21:34:05Z" and s["local_dates"] == 2
        assert "this machine's time zone (Asia/Colombo, UTC+05:30)" in caplog.text
        assert "--tz Europe/Berlin" in caplog.text
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize("tz", ["Europe/Kyiv", ":Europe/Kyiv", ":/usr/share/zoneinfo/Europe/Kyiv"])
def test_the_machines_zone_is_named_however_tz_names_it(monkeypatch, tz):
    if not Path("/usr/share/zoneinfo/Europe/Kyiv").exists():
        pytest.skip("no system zoneinfo")
    monkeypatch.setenv("TZ", tz)
    time.tzset()
    try:
        assert td_parse.local_zone_name() in ("Europe/Kyiv, UTC+02:00", "Europe/Kyiv, UTC+03:00")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_old_desktop_peer_ids_become_the_bare_ids_newer_exports_and_the_api_use(tmp_path):
    """Desktop before 2021 (integer from_id) wrote a user's chat id + 2**32, a group's + 2**33."""

    def old(mid: int, sender: int, text: str) -> dict:
        return {"id": mid, "type": "message", "date": "2019-05-31T21:28:30", "from": f"N{sender}",
                "from_id": sender, "text": text}  # fmt: skip

    pal = {
        "name": "Pal",
        "type": "personal_chat",
        "id": 2**32 + 2,
        "messages": [old(1, 2, "hi"), old(2, 1, "yo")],
    }
    grp = {
        "name": "Grp",
        "type": "private_supergroup",
        "id": 2**33 + 5,
        "messages": [old(3, 9, "g"), old(4, 1, "!")],
    }
    f = write_json(tmp_path / "old.json", pal)  # a one-chat export: the owner rule needs the peer's bare id
    s = import_desktop(f, tmp_path / "raw", tz="UTC")
    assert (s["owner"], s["owner_from"]) == ("user1", "personal chats")
    assert [r["dialog_id"] for r in records(tmp_path / "raw", 2).values()] == [2, 2]
    s = import_desktop(
        write_json(tmp_path / "acc.json", account([pal, grp])),
        tmp_path / "raw2",
        include_groups=True,
        tz="UTC",
    )
    assert sorted(p.name for p in (tmp_path / "raw2" / "telegram").glob("*.jsonl")) == ["2.jsonl", "5.jsonl"]
    # a newer export of the same chat ("user2", bare id) merges into the same file
    new = {
        "name": "Pal",
        "type": "personal_chat",
        "id": 2,
        "messages": [msg(5, "user2", "again"), msg(6, "user1", "sure")],
    }
    import_desktop(write_json(tmp_path / "new.json", new), tmp_path / "raw", tz="UTC")
    assert list(records(tmp_path / "raw", 2)) == [1, 2, 5, 6]
    # new accounts have ids above 2**32: with "user…" senders the id is already bare
    big = 5_000_000_123
    newbig = {
        "name": "N",
        "type": "personal_chat",
        "id": big,
        "messages": [msg(1, f"user{big}", "hi"), msg(2, "user1", "yo")],
    }
    s = import_desktop(write_json(tmp_path / "big.json", newbig), tmp_path / "raw3")
    assert s["owner"] == "user1" and (tmp_path / "raw3" / "telegram" / f"{big}.jsonl").exists()
    # ...and so is it when a tool rewrote the senders as integers but the peer, speaking, has the chat's id
    rewritten = {**newbig, "messages": [old(1, 1, "hi"), old(2, big, "yo")]}
    s = import_desktop(write_json(tmp_path / "rw.json", rewritten), tmp_path / "raw4", tz="UTC")
    assert s["owner"] == "user1" and (tmp_path / "raw4" / "telegram" / f"{big}.jsonl").exists()


def test_kinds_of_message_and_what_is_skipped(tmp_path):
    msgs = [
        msg(1, "user2", "hello", reply_to_message_id=99, forwarded_from="Someone"),
        msg(2, "user1", "", media_type="sticker", file="(File not included.)", sticker_emoji="👍"),
        msg(3, "user1", "", media_type="voice_message", file="x"),
        msg(4, "user2", "", file="doc.pdf"),
        msg(5, "user2", "", location_information={"latitude": 1.0, "longitude": 2.0}),
        msg(6, "user2", ""),  # nothing at all
        {"id": 7, "type": "service", "date_unixtime": "1700000007", "action": "phone_call", "text": ""},
        msg(8, None, "from a deleted account"),
        msg(9, "user1", ["a ", {"type": "mention", "text": "@b"}, {"type": "custom_emoji", "text": "🔥", "document_id": "x"}]),
        {"id": 10, "type": "some_future_kind", "date_unixtime": "1700000010"},
        # a reply quoting a message of another chat: its id means nothing here
        msg(11, "user1", "re", reply_to_message_id=5, reply_to_peer_id="channel77"),
        msg(12, "user1", "fwd", saved_from="News"),
    ]  # fmt: skip
    chats = [
        {"name": "Pal", "type": "personal_chat", "id": 2, "messages": msgs},
        {"name": "Bot", "type": "bot_chat", "id": 3, "messages": [msg(1, "user3", "beep")]},
        {"type": "saved_messages", "id": 1, "messages": [msg(1, "user1", "note")]},
        {"name": "News", "type": "public_channel", "id": 4, "messages": [msg(1, "channel4", "post")]},
        {"name": "Grp", "type": "private_supergroup", "id": 5, "messages": [msg(1, "user9", "g")]},
        {"name": "Calls", "type": "personal_chat", "id": 6, "messages": [msgs[6]]},  # service only: no file
    ]
    f = write_json(
        tmp_path / "k.json",
        account(
            chats,
            left=[{"name": "Old", "type": "private_group", "id": 7, "messages": [msg(1, "user8", "bye")]}],
        ),
    )
    s = import_desktop(f, tmp_path / "raw")
    assert s["dialogs"] == 1 and s["messages"] == 9 and s["media_only"] == 4
    assert s["skipped_chats"] == {
        "bot_chat": 1, "empty": 1, "private_group": 1, "private_supergroup": 1, "public_channel": 1,
        "saved_messages": 1,
    }  # fmt: skip
    assert s["skipped_messages"] == {"service": 2, "empty": 1, "other_type": 1, "in_skipped_chats": 5}
    recs = records(tmp_path / "raw", 2)
    assert recs[1]["reply_to"] == 99 and recs[1]["forwarded"] and not recs[1]["out"]
    assert recs[11]["reply_to"] is None and recs[11]["text"] == "re"
    assert recs[12]["forwarded"] and not recs[11]["forwarded"]  # only saved_from: still a forward
    assert [recs[i]["media"] for i in (2, 3, 4, 5)] == ["sticker", "voice_message", "file", "location"]
    assert recs[8]["out"] is False and recs[9]["text"] == "a @b🔥" and recs[9]["out"]
    assert sorted(p.name for p in (tmp_path / "raw" / "telegram").glob("*.jsonl")) == ["2.jsonl"]
    s = import_desktop(f, tmp_path / "groups", include_groups=True)  # groups yes, channels never
    assert s["dialogs"] == 3 and s["skipped_chats"] == {
        "bot_chat": 1,
        "empty": 1,
        "public_channel": 1,
        "saved_messages": 1,
    }


def test_every_text_entity_desktop_writes_reads_as_typed_and_service_actions_are_skipped(tmp_path):
    """Each entity type of export_output_json.cpp's SerializeText, in a message's ``text`` as Desktop writes
    it (plain pieces as strings): the text is what the person typed, a text_link its visible words (never
    the href), a mention_name the name shown; the service actions of a group are skipped and counted."""
    pieces = [
        "a ", {"type": "bold", "text": "b"}, " ", {"type": "italic", "text": "i"}, " ",
        {"type": "underline", "text": "u"}, " ", {"type": "strikethrough", "text": "s"}, " ",
        {"type": "spoiler", "text": "sp"}, " ", {"type": "code", "text": "x=1"}, "\n",
        {"type": "pre", "text": "print(1)", "language": "python"}, "\n",
        {"type": "blockquote", "text": "quoted", "collapsed": False}, "\n",
        {"type": "text_link", "text": "this place", "href": "https://maps.example/?token=s3cr3t"}, " ",
        {"type": "link", "text": "https://example.org"}, " ", {"type": "mention", "text": "@bob"}, " ",
        {"type": "mention_name", "text": "Bob Smith", "user_id": 123}, " ", {"type": "hashtag", "text": "#yes"}, " ",
        {"type": "cashtag", "text": "$BTC"}, " ", {"type": "bot_command", "text": "/start"}, " ",
        {"type": "email", "text": "dima@example.com"}, " ", {"type": "phone", "text": "+7 916 765 4321"}, " ",
        {"type": "bank_card", "text": "4111 1111 1111 1111"}, " ",
        {"type": "custom_emoji", "text": "🔥", "document_id": "5368324170671202286"},
        {"type": "unknown", "text": "?"},
    ]  # fmt: skip
    typed = (
        "a b i u s sp x=1\nprint(1)\nquoted\nthis place https://example.org @bob Bob Smith #yes $BTC /start "
        "dima@example.com +7 916 765 4321 4111 1111 1111 1111 🔥?"
    )
    actions = [
        {"action": "create_group", "title": "Trip", "members": ["A", None]},
        {"action": "invite_members", "members": ["Tom"]},
        {"action": "edit_group_title", "title": "Trip 2"},
        {"action": "pin_message", "message_id": 2},
        {"action": "join_group_by_link", "inviter": "A"},
        {"action": "phone_call", "duration_seconds": 125, "discard_reason": "hangup"},
        {"action": "group_call", "duration": 60},
    ]
    service = [
        {"id": 10 + k, "type": "service", "date_unixtime": str(1_700_000_010 + k), "actor": "A", "actor_id": "user2"}
        | a | {"text": "", "text_entities": []}
        for k, a in enumerate(actions)
    ]  # fmt: skip
    msgs = [msg(1, "user2", "hi all"), msg(2, "user1", pieces), *service]
    chat = {"name": "Trip", "type": "private_supergroup", "id": 5, "messages": msgs}
    s = import_desktop(
        write_json(tmp_path / "t.json", account([chat])), tmp_path / "raw", include_groups=True
    )
    rec = records(tmp_path / "raw", 5)[2]
    assert rec["text"] == typed and "token" not in rec["text"] and rec["out"]
    assert rec["pii"] == [[typed.index("dima"), 16, "EMAIL"], [typed.index("+7"), 15, "PHONE"]]
    assert s["skipped_messages"] == {"service": len(actions)} and s["messages"] == 2


def test_every_media_desktop_writes_is_media_not_empty_and_keeps_no_contact_or_place(tmp_path):
    """Each media of export_output_json.cpp's SerializeMessage, as it writes it: kept as media-only with
    its kind (a venue without a point, a to-do list and paid media were counted 'empty'), and a shared
    contact's phone, a location's coordinates, a venue's address never reach data/raw."""
    ni = "(File not included. Change data exporting settings to download.)"
    contact = {"first_name": "Oleg", "last_name": "Petrov", "phone_number": "+7 916 123 4567"}
    todo = {
        "title": "Shop",
        "others_can_append": True,
        "others_can_complete": True,
        "answers": [{"text": "milk", "id": 1}],
    }
    msgs = [
        msg(1, "user2", "", contact_information=contact, contact_vcard="contacts/contact_1.vcard"),
        msg(2, "user1", "", location_information={"latitude": 55.751244, "longitude": 37.618423}, live_location_period_seconds=900),
        msg(3, "user2", "", place_name="Cafe Pushkin", address="Tverskoy Blvd 26A", location_information={"latitude": 55.7638, "longitude": 37.6047}),
        msg(4, "user2", "", place_name="Red Square", address="Moscow"),  # a venue without a point
        msg(5, "user1", "", todo_list=todo),
        msg(6, "user2", "", paid_stars_amount=10),
        msg(7, "user2", "", giveaway_results={"channel": 1, "winners": [], "months": 3}),
        msg(8, "user1", "", game_title="Lumberjack", game_description="Chop", via_bot="@gamebot"),
        msg(9, "user2", "", invoice_information={"title": "Pizza", "description": "L", "amount": 1200, "currency": "USD"}),
        msg(10, "user1", "", file=ni, thumbnail=ni, media_type="sticker", sticker_emoji="😂"),
        msg(11, "user2", "", file="round_video_messages/v.mp4", media_type="video_message", mime_type="video/mp4"),
        msg(12, "user1", "", file="files/song.mp3", media_type="audio_file", performer="X", title="Y"),
        msg(13, "user2", "", file="video_files/v.mp4", media_type="video_file", mime_type="video/mp4"),
        msg(14, "user2", ""),  # a dice: Desktop writes no media for it, so nothing is there
    ]  # fmt: skip
    chat = {"name": "Pal", "type": "personal_chat", "id": 2, "messages": msgs}
    data = account([chat])
    data["personal_information"]["phone_number"] = "+7 916 000 1122"
    # an account export's address book and top peers, as Desktop writes them: never imported
    data["contacts"] = {"about": "x", "list": [
        {"user_id": 2, "first_name": "Pal", "last_name": "", "phone_number": "+1 202 555 0134", "date": "x", "date_unixtime": "1"},
    ]}  # fmt: skip
    data["frequent_contacts"] = {"about": "x", "list": [{"id": 2, "category": "people", "type": "user", "name": "Pal", "rating": 1.0}]}  # fmt: skip
    s = import_desktop(write_json(tmp_path / "m.json", data), tmp_path / "raw")
    recs = records(tmp_path / "raw", 2)
    assert s["skipped_messages"] == {"empty": 1} and s["media_only"] == 13 == len(recs)
    assert [recs[i]["media"] for i in range(1, 14)] == [
        "contact", "location", "location", "location", "other", "other", "giveaway", "game", "invoice",
        "sticker", "video_message", "audio_file", "video_file",
    ]  # fmt: skip
    assert all(r["text"] == "" for r in recs.values())
    assert recs[10]["sticker_emoji"] == "😂" and [i for i in recs if "sticker_emoji" in recs[i]] == [10]
    written = "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "raw" / "telegram").iterdir())
    assert sorted(p.name for p in (tmp_path / "raw" / "telegram").iterdir()) == ["2.jsonl", "account.json"]
    private = (
        "916",
        "123 4567",
        "Oleg",
        "55.75",
        "37.61",
        "Tverskoy",
        "Red Square",
        "milk",
        "555 0134",
        "000 1122",
    )
    assert [p for p in private if p in written] == []


def test_a_chat_of_unknown_type_is_skipped_not_fatal(tmp_path):
    """Desktop writes "type": null (and "name": null) for a chat whose peer it could not load."""
    chats = [
        {"name": None, "type": None, "id": 9, "messages": [msg(1, "user9", "?")]},
        {"name": "Pal", "type": "personal_chat", "id": 2, "messages": [msg(2, "user2", "hi"), msg(3, "user1", "yo")]},
    ]  # fmt: skip
    s = import_desktop(write_json(tmp_path / "u.json", account(chats)), tmp_path / "raw", include_groups=True)
    assert s["dialogs"] == 1 and s["skipped_chats"] == {"unknown": 1}
    assert s["skipped_messages"] == {"in_skipped_chats": 1}
    single = write_json(tmp_path / "one.json", chats[0])
    assert import_desktop(single, tmp_path / "raw2")["skipped_chats"] == {"unknown": 1}


def test_telegrams_own_accounts_are_skipped_not_imported_as_people(tmp_path):
    """Desktop types the chat with "Telegram" (login codes) a personal chat; the API exporter skips it too."""
    chats = [
        {"name": "Telegram", "type": "personal_chat", "id": 777000, "messages": [msg(1, "user777000", "Login code: 12345")]},
        {"name": "Verification Codes", "type": "personal_chat", "id": 489000, "messages": [msg(2, "user489000", "Code 777")]},
        {"name": "Pal", "type": "personal_chat", "id": 2, "messages": [msg(3, "user2", "hi"), msg(4, "user1", "yo")]},
    ]  # fmt: skip
    s = import_desktop(write_json(tmp_path / "a.json", account(chats, user_id=None)), tmp_path / "raw")
    assert s["owner"] == "user1" and s["dialogs"] == 1 and s["skipped_chats"] == {"service": 2}
    assert sorted(p.name for p in (tmp_path / "raw" / "telegram").glob("*.jsonl")) == ["2.jsonl"]
    s = import_desktop(write_json(tmp_path / "one.json", chats[0]), tmp_path / "raw2")  # no --me asked for
    assert s["dialogs"] == 0 and s["skipped_chats"] == {"service": 1}


def test_a_one_group_export_asks_for_me_naming_the_group_senders(tmp_path):
    """A group's one-chat export has no personal_information and no peer id to rule out: ask, never guess."""
    grp = {"name": "Друзья ✨", "type": "private_supergroup", "id": 1234567890, "messages": [
        msg(1, "user11", "привет", **{"from": "Анна"}), msg(2, "user12", "שלום", **{"from": "דני"}),
        msg(3, "user13", "hi all"), msg(4, "user13", "", media_type="sticker", file="x"),
    ]}  # fmt: skip
    f = write_json(tmp_path / "result.json", grp)
    with pytest.raises(
        TwinError, match=r"a group's export does not record who exported it.*'Анна' = user11.*--me"
    ):
        import_desktop(f, tmp_path / "raw", include_groups=True)
    assert not (tmp_path / "raw").exists()
    s = import_desktop(f, tmp_path / "raw", include_groups=True, me="user13")
    recs = records(tmp_path / "raw", 1234567890)
    assert s["dialogs"] == 1 and [recs[i]["out"] for i in (1, 2, 3, 4)] == [False, False, True, True]
    assert recs[1]["dialog_name"] == "Друзья ✨" and recs[2]["text"] == "שלום"


def test_owner_from_personal_chats_when_account_info_is_missing(tmp_path):
    chats = [
        {"name": "A", "type": "personal_chat", "id": 2, "messages": [msg(1, "user2", "hi"), msg(2, "user5", "yo")]},
        {"name": "B", "type": "personal_chat", "id": 3, "messages": [msg(3, "user5", "hey")]},
    ]  # fmt: skip
    f = write_json(tmp_path / "a.json", account(chats, user_id=None))
    assert import_desktop(f, tmp_path / "raw")["owner"] == "user5"
    chats[1]["messages"].append(msg(4, "user3", "hm"))
    chats[1]["messages"].append(msg(5, "user6", "?"))  # a chat where user6, not user5, is the other side
    f = write_json(tmp_path / "b.json", account(chats, user_id=None))
    with pytest.raises(
        TwinError, match='cannot tell which sender is you.*--me.*with make: ARGS="--me user123"'
    ):
        import_desktop(f, tmp_path / "raw2")


def test_nothing_to_import_is_a_warning_not_an_error(tmp_path, caplog):
    saved = {"type": "saved_messages", "id": 1, "messages": [msg(1, "user1", "note to self")]}
    s = import_desktop(write_json(tmp_path / "s.json", saved), tmp_path / "raw")
    assert s["dialogs"] == 0 and s["skipped_chats"] == {"saved_messages": 1}
    assert "nothing to import" in caplog.text and not (tmp_path / "raw").exists()


def test_an_account_export_without_chats_says_to_tick_personal_chats(tmp_path, monkeypatch, capsys, caplog):
    """Only "Account information" ticked: Desktop writes no 'chats' at all (an error naming the box
    to tick, not "not a Telegram Desktop export"), or an empty chat list (a warning saying the same)."""
    s = import_desktop(write_json(tmp_path / "b.json", account([])), tmp_path / "raw")
    assert s["dialogs"] == 0 and "no chats: export again with 'Personal chats' ticked" in caplog.text
    info = account([])
    del info["chats"]
    code, out = run_cli(monkeypatch, capsys, "export", "desktop", str(write_json(tmp_path / "a.json", info)))
    assert code == 2 and "holds no chats" in out and "'Personal chats' ticked" in out
    assert "not a Telegram Desktop export" not in out


@pytest.mark.parametrize("ctype", ["saved_messages", "bot_chat", "public_channel", "private_group"])
def test_nothing_to_import_suggests_include_groups_only_when_it_would_import_something(
    tmp_path, caplog, ctype
):
    one = {"name": "X", "type": ctype, "id": 7, "messages": [msg(1, "user1", "hi"), msg(2, "user7", "yo")]}
    s = import_desktop(write_json(tmp_path / "one.json", one), tmp_path / "raw")
    assert s["dialogs"] == 0 and "nothing to import" in caplog.text
    group = ctype == "private_group"
    assert ("--include-groups to import groups" in caplog.text) == group
    assert ("never channels, bots or saved messages" in caplog.text) != group


@pytest.mark.parametrize(
    "me,hint",
    [
        ("alex", "(did you mean --me 'Alex Morozov', user1?)"),  # the first name alone, any case
        (" alex  MOROZOV ", "(did you mean --me 'Alex Morozov', user1?)"),  # spaces and case
        ("@alexmoroz", "(an export has display names, not @usernames)"),
        ("Bob", "display name; senders: "),  # nothing near: the senders alone
    ],
)
def test_a_near_miss_me_name_says_what_was_meant(tmp_path, me, hint):
    chat = {"name": "G", "type": "private_group", "id": 9,
            "messages": [msg(1, "user1", "hi", **{"from": "Alex Morozov"}), msg(2, "user2", "yo", **{"from": "Alexandra K"})]}  # fmt: skip
    with pytest.raises(TwinError, match="no sender .* has exactly that display name") as e:
        import_desktop(write_json(tmp_path / "g.json", chat), tmp_path / "raw", me=me, include_groups=True)
    assert hint in str(e.value)


def test_a_me_that_sent_nothing_is_warned_about(tmp_path, caplog):
    chat = {
        "name": "P",
        "type": "personal_chat",
        "id": 2,
        "messages": [msg(1, "user2", "hi"), msg(2, "user1", "yo")],
    }
    f = write_json(tmp_path / "p.json", chat)
    import_desktop(f, tmp_path / "raw", me="user1")
    assert "none of the" not in caplog.text
    import_desktop(f, tmp_path / "raw2", me="12345")  # a typo: nobody in the export
    assert "none of the 2 imported messages is from you (user12345, from --me)" in caplog.text
    assert "--list-senders" in caplog.text


def test_only_the_peer_speaks_needs_me(tmp_path):
    f = write_json(
        tmp_path / "p.json",
        {"name": "P", "type": "personal_chat", "id": 2, "messages": [msg(1, "user2", "hi")]},
    )
    with pytest.raises(TwinError, match="--me"):
        import_desktop(f, tmp_path / "raw")
    assert import_desktop(f, tmp_path / "raw", me="7")["messages"] == 1


def test_an_html_export_or_the_folder_above_the_export_is_one_line_saying_what_to_pass(
    tmp_path, monkeypatch, capsys
):
    """What a newcomer passes instead of result.json: an HTML export (the folder or its messages.html,
    an account's export_results.html) or the folder holding the export folder."""
    chat = tmp_path / "ChatExport_2024-05-01"
    (chat / "css").mkdir(parents=True)
    (chat / "messages.html").write_text("<!DOCTYPE html><html><body>hi</body></html>", encoding="utf-8")
    account = tmp_path / "Telegram Desktop" / "DataExport_2024-05-01"
    account.mkdir(parents=True)
    (account / "export_results.html").write_text("<!DOCTYPE html>", encoding="utf-8")
    above = tmp_path / "Downloads"
    shutil.copytree(tmp_path / "Telegram Desktop", above / "html")
    (above / "ChatExport_2024-06-01").mkdir(parents=True)
    shutil.copy(DM, above / "ChatExport_2024-06-01" / "result.json")
    found = above / "ChatExport_2024-06-01" / "result.json"
    cases = [
        (chat, "HTML export"),
        (chat / "messages.html", "HTML export"),
        (account, "HTML export"),
        (tmp_path / "Telegram Desktop", "HTML export"),  # one folder deeper
        (above, f"no result.json at its top, but {found}; pass that file instead (FILE={found} with make)"),
    ]
    for path, says in cases:
        code, err = run_cli(
            monkeypatch, capsys, "export", "desktop", str(path), "--out", str(tmp_path / "raw")
        )
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (path, err)
        assert says in lines[0], (path, err)
        if says == "HTML export":
            assert "'Machine-readable JSON'" in lines[0] and "Export chat history" in lines[0]
    assert not (tmp_path / "raw").exists()
    assert import_desktop(found, tmp_path / "raw", tz="UTC")["messages"] == 6  # the file it points at


def test_a_tilde_path_is_the_home_folder(tmp_path, monkeypatch, capsys):
    """zsh leaves "~" in `make export-desktop FILE=~/Downloads/result.json`, and make quotes it."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "Downloads").mkdir()
    shutil.copy(DM, tmp_path / "Downloads" / "result.json")
    code, err = run_cli(
        monkeypatch,
        capsys,
        "export",
        "desktop",
        "~/Downloads/result.json",
        "--out",
        str(tmp_path / "raw"),
        "--tz",
        "UTC",
    )
    assert code == 0, err
    assert len(list((tmp_path / "raw" / "telegram").glob("*.jsonl"))) == 1


def test_export_folder_and_bom_and_lone_surrogates(tmp_path):
    folder = tmp_path / "DataExport_2024"
    folder.mkdir()
    shutil.copy(MULTI, folder / "result.json")
    assert import_desktop(folder, tmp_path / "raw")["dialogs"] == 1
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + DM.read_bytes())
    assert import_desktop(bom, tmp_path / "raw2", tz="UTC")["messages"] == 6
    # a lone surrogate escape: orjson refuses it, the fallback parser keeps the rest of the text
    lone = DM.read_text(encoding="utf-8").replace('"hello world"', '"hello \\ud83d world"')
    (tmp_path / "lone.json").write_text(lone, encoding="utf-8")
    import_desktop(tmp_path / "lone.json", tmp_path / "raw3", tz="UTC")
    assert records(tmp_path / "raw3", 700000000)[3645]["text"] == "hello \ufffd world"


def test_the_invalid_json_telegram_desktop_writes_is_repaired(tmp_path):
    """Desktop escapes a control character as "\x0b" (not JSON) and 4.1 left a custom emoji's
    document_id unquoted: both are Telegram's own output, so exporting again would not help."""
    chat = {"name": "Bob", "type": "personal_chat", "id": 2, "messages": [
        msg(1, "user2", "VT@ FF@ literal@ pair@"),
        msg(2, "user1", ["hi ", {"type": "custom_emoji", "text": "😮", "document_id": "@DOC@"}, "!"]),
    ]}  # fmt: skip
    text = json.dumps(chat, ensure_ascii=False, indent=1)
    # as Desktop writes them: \x0B, \x0C, a literal backslash before "x0B" (no escape), an escaped
    # backslash followed by a real \x1F
    for real in ("\\x0B", "\\x0C", "\\\\x0B", "\\\\\\x1F"):
        text = text.replace("@", real, 1)
    text = text.replace('"@DOC@"', "video_files/sticker (2).webm")
    (tmp_path / "result.json").write_text(text, encoding="utf-8")
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)  # really invalid
    s = import_desktop(tmp_path / "result.json", tmp_path / "raw")
    recs = records(tmp_path / "raw", 2)
    assert s["messages"] == 2 and s["owner"] == "user1"
    assert recs[1]["text"] == "VT\x0b FF\x0c literal\\x0B pair\\\x1f"
    assert recs[2]["text"] == "hi 😮!" and recs[2]["out"]
    # a real error after a repaired escape still names its own line
    broken = text.replace('"hi ",', '"hi ",,')
    (tmp_path / "broken.json").write_text(broken, encoding="utf-8")
    line = broken[: broken.index(",,")].count("\n") + 1
    with pytest.raises(TwinError, match=rf"broken\.json:{line}:\d+: not valid JSON"):
        import_desktop(tmp_path / "broken.json", tmp_path / "raw2")


def test_orjson_writer_matches_the_stdlib_record_encoding(tmp_path):
    texts = ['q"uote \\ back', "tab\tnl\ncr\r\x00\x1f\x7f", "\u2028\u2029 emoji 👍🏽 кириллица", "", "/slash"]
    rows = [
        {k: None for k in FIELDS}
        | {"source": "telegram", "dialog_id": 2**63 + 5 if i == 0 else 7, "id": i, "date": "2024-01-01T00:00:00Z",
           "out": bool(i % 2), "text": t, "forwarded": False}
        for i, t in enumerate(texts)
    ]  # fmt: skip
    reference = "".join(dumps_record(r) + "\n" for r in rows).encode("utf-8")  # stdlib json
    assert encode_rows(rows) == reference  # orjson
    write_dialog(tmp_path / "ref.jsonl", rows)
    assert (tmp_path / "ref.jsonl").read_bytes() == reference
    assert decode_rows(reference) == rows
    huge = [rows[1] | {"dialog_id": 2**64 + 1}]  # orjson refuses it: the exact stdlib fallback
    assert encode_rows(huge) == (dumps_record(huge[0]) + "\n").encode("utf-8")


# --------------------------------------------------------------------------------------- bad input


def _bad_inputs(tmp: Path) -> dict[str, tuple[Path, list[str], str]]:
    """name -> (file, extra CLI args, a regex the one-line error must match)."""
    good = json.loads(MULTI.read_text(encoding="utf-8"))

    def variant(name: str, mutate) -> Path:
        d = json.loads(json.dumps(good))
        mutate(d)
        return write_json(tmp / f"{name}.json", d)

    def put(path: str, value):
        def mutate(d):
            *parents, last = path.split(".")
            node = d
            for k in parents:
                node = node[int(k)] if k.isdigit() else node[k]
            node[int(last) if last.isdigit() else last] = value

        return mutate

    trunc = tmp / "truncated.json"
    trunc.write_bytes(MULTI.read_bytes()[:1500])
    (tmp / "html.json").write_text("<!DOCTYPE html><html><body>chat</body></html>", encoding="utf-8")
    (tmp / "garbage.json").write_text('{"chats": {"list": [}', encoding="utf-8")
    (tmp / "empty.json").write_bytes(b"")
    (tmp / "latin1.json").write_bytes('{"name": "Zo\xeb"}'.encode("latin-1"))
    (tmp / "nofolder").mkdir()
    return {
        "missing": (tmp / "nope.json", [], r"nope\.json: file not found"),
        "folder without result.json": (tmp / "nofolder", [], r"nofolder: is a folder without result\.json"),
        "empty": (tmp / "empty.json", [], r"empty\.json: the file is empty"),
        "html": (tmp / "html.json", [], r"html\.json:1:1: not JSON \(looks like HTML\)"),
        "not json": (tmp / "garbage.json", [], r"garbage\.json:1:\d+: not valid JSON .*line 1, column \d+"),
        "truncated": (trunc, [], r"truncated\.json:\d+:\d+: the JSON ends early .* truncated"),
        "not utf-8": (tmp / "latin1.json", [], r"latin1\.json: not UTF-8"),
        "a list": (write_json(tmp / "list.json", [1, 2]), [], r"list\.json: not a Telegram Desktop export"),
        "other json": (write_json(tmp / "other.json", {"foo": 1}), [], r"other\.json: valid JSON but not a Telegram Desktop export"),
        "chats not a list": (variant("c", put("chats.list", {})), [], r"c\.json: field 'chats\.list' must be a list"),
        "chat id a string": (variant("i", put("chats.list.0.id", "7")), [], r"i\.json: chats\.list\[0\]: field 'id' must be an integer"),
        "messages not a list": (variant("m", put("chats.list.0.messages", "x")), [], r"m\.json: chats\.list\[0\]: field 'messages' must be a list"),
        "text a number": (variant("t", put("chats.list.0.messages.1.text", 5)), [], r"t\.json: chats\.list\[0\]\.messages\[1\] \(id 1002\): field 'text' must be a string or a list"),
        "bad unixtime": (variant("u", put("chats.list.0.messages.0.date_unixtime", "soon")), [], r"u\.json: chats\.list\[0\]\.messages\[0\] \(id 1001\): bad date"),
        "no date": (variant("n", lambda d: [d["chats"]["list"][0]["messages"][0].pop(k) for k in ("date", "date_unixtime")]), [], r"n\.json: .*messages\[0\] \(id 1001\): bad date"),
        "message id a string": (variant("d", put("chats.list.0.messages.0.id", "1001")), [], r"d\.json: chats\.list\[0\]\.messages\[0\]: field 'id' must be an integer"),
        "from_id an object": (variant("f", put("chats.list.0.messages.0.from_id", {"u": 1})), [], r"f\.json: .*field 'from_id' must be like 'user123'"),
        "reply_to a string": (variant("r", put("chats.list.0.messages.0.reply_to_message_id", "5")), [], r"r\.json: .*field 'reply_to_message_id' must be an integer"),
        "user_id not a number": (variant("p", put("personal_information.user_id", "me")), [], r"p\.json: field 'personal_information\.user_id' must be a number"),
        "unknown tz": (DM, ["--tz", "Mars/Olympus"], r"--tz 'Mars/Olympus': unknown time zone"),
        "empty --me, before reading": (trunc, ["--me", " "], r"--me is empty: give your numeric user id"),
    }  # fmt: skip


@pytest.mark.slow
def test_every_bad_input_is_one_line_exit_2_and_data_raw_untouched(tmp_path, monkeypatch, capsys):
    raw = tmp_path / "raw"
    import_desktop(SAMPLE, raw)  # something already on disk that must survive every failure
    (raw / "telegram" / "notes.txt").write_text("mine", encoding="utf-8")
    before = tree_hash(raw)
    cases = _bad_inputs(tmp_path)
    for name, (file, extra, pattern) in cases.items():
        code, err = run_cli(monkeypatch, capsys, "export", "desktop", str(file), "--out", str(raw), *extra)
        assert code == 2, (name, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, err)
        import re

        assert re.search(pattern, lines[0]), (name, lines[0])
        assert "Traceback" not in err
        assert tree_hash(raw) == before, name


@pytest.mark.slow
def test_corrupt_existing_dialog_file_fails_before_any_write(tmp_path):
    raw = tmp_path / "raw"
    import_desktop(SAMPLE, raw)
    victim = raw / "telegram" / "200000211.jsonl"  # the last dialog written
    victim.write_text(victim.read_text(encoding="utf-8") + "{broken\n", encoding="utf-8")
    newer = json.loads(SAMPLE.read_text(encoding="utf-8"))
    for c in newer["chats"]["list"]:  # a newer export: one more message in every chat
        c["messages"].append(msg(10**6 + c["id"] % 1000, "user100000001", "new one", t=1_750_000_000))
    before = tree_hash(raw)
    with pytest.raises(TwinError, match=r"200000211\.jsonl:\d+: not valid JSON"):
        import_desktop(write_json(tmp_path / "newer.json", newer), raw)
    assert tree_hash(raw) == before


def test_cli_subprocess_truncated_file(tmp_path):
    trunc = tmp_path / "result.json"
    trunc.write_bytes(DM.read_bytes()[:700])
    twin = Path(sys.executable).parent / "twin"
    proc = subprocess.run(
        [str(twin), "export", "desktop", str(trunc), "--out", str(tmp_path / "raw")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert (
        proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    )
    assert f"{trunc}:" in proc.stderr and "truncated" in proc.stderr
    assert not (tmp_path / "raw").exists()


def test_cli_prints_the_summary(tmp_path, monkeypatch, capsys):
    code, err = run_cli(
        monkeypatch,
        capsys,
        "export",
        "desktop",
        str(LANGCHAIN),
        "--out",
        str(tmp_path),
        "--me",
        "Batman & Robin",
    )
    assert code == 0 and "user6565661032" in err and "dialogs" in err
    assert records(tmp_path, 5965280513)[2]["out"] is True


# ------------------------------------------------------------------- big exports: chat by chat


def _whole_file_only(monkeypatch) -> None:
    monkeypatch.setattr(td_parse, "SPLIT_MIN_BYTES", 10**15)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    if str(SAMPLE.parents[2]) not in sys.path:  # the repo root, for the bench package
        sys.path.insert(0, str(SAMPLE.parents[2]))
    from bench.gen_export import generate_export

    return generate_export(tmp_path_factory.mktemp("gen") / "result.json", 4000, 3)


@pytest.mark.parametrize("include_groups", [False, True])
def test_chat_by_chat_path_gives_the_same_result_as_whole_file(
    tmp_path, monkeypatch, caplog, generated, include_groups
):
    monkeypatch.setattr(td_parse, "SPLIT_MIN_BYTES", 0)
    caplog.set_level("DEBUG", logger=td.__name__)
    results = {}
    for name, export in (("gen", generated), ("sample", SAMPLE)):
        caplog.clear()
        split = import_desktop(export, tmp_path / f"{name}-split", include_groups=include_groups)
        assert "parsed chat by chat" in caplog.text  # the fast path really ran
        results[name] = split
    _whole_file_only(monkeypatch)
    for name, export in (("gen", generated), ("sample", SAMPLE)):
        caplog.clear()
        whole = import_desktop(export, tmp_path / f"{name}-whole", include_groups=include_groups)
        assert "parsed chat by chat" not in caplog.text
        split = results[name]
        assert tree_hash(tmp_path / f"{name}-split") == tree_hash(tmp_path / f"{name}-whole") != ""
        assert {k: v for k, v in split.items() if k not in ("seconds", "out")} == {
            k: v for k, v in whole.items() if k not in ("seconds", "out")
        }
    assert results["gen"]["skipped_messages"]["in_skipped_chats"] > 0  # unparsed chats were counted


def test_chat_by_chat_errors_keep_exact_positions(tmp_path, monkeypatch, caplog, generated):
    monkeypatch.setattr(td_parse, "SPLIT_MIN_BYTES", 0)
    text = generated.read_text(encoding="utf-8")
    third = text.index(
        '\n   {\n    "name"', text.index('\n   {\n    "name"', text.index('\n   {\n    "name"') + 1) + 1
    )
    # broken JSON inside the third chat: the whole-file parse reports the line in the file
    at = text.index('"text_entities": [', third) + len('"text_entities": [')
    (tmp_path / "broken.json").write_text(text[:at] + "," + text[at:], encoding="utf-8")
    line = text[:at].count("\n") + 1
    with pytest.raises(TwinError, match=rf"broken\.json:{line}:\d+: not valid JSON"):
        import_desktop(tmp_path / "broken.json", tmp_path / "raw")
    # a field of the wrong type inside a chat: its JSON path
    at = text.index('"date_unixtime": "', third) + len('"date_unixtime": "')
    (tmp_path / "typed.json").write_text(text[:at] + "x" + text[at:], encoding="utf-8")
    with pytest.raises(TwinError, match=r"typed\.json: chats\.list\[2\]\.messages\[0\] \(id \d+\): bad date"):
        import_desktop(tmp_path / "typed.json", tmp_path / "raw")
    # a lone surrogate in one chat: only that chat takes the careful parser
    at = text.index('"text": "', third) + len('"text": "')
    (tmp_path / "lone.json").write_text(text[:at] + "\\udc00" + text[at:], encoding="utf-8")
    s = import_desktop(tmp_path / "lone.json", tmp_path / "raw")
    assert s["dialogs"] == 3 and not [
        p for p in (tmp_path / "raw" / "telegram").iterdir() if p.name[0] == "."
    ]
    assert any("\ufffd" in p.read_text(encoding="utf-8") for p in (tmp_path / "raw" / "telegram").iterdir())

    # Desktop's "\x01" escape in one chat, and in the account's own fields: only those parts are
    # repaired, the fast path still runs
    at = text.index('"text": "', third) + len('"text": "')
    hex_text = text[:at] + "\\x01" + text[at:]
    name = '"first_name": "'
    hex_text = hex_text.replace(name, name + "\\x0C", 1)
    (tmp_path / "hex.json").write_text(hex_text, encoding="utf-8")
    caplog.set_level("DEBUG", logger=td.__name__)
    s = import_desktop(tmp_path / "hex.json", tmp_path / "raw-hex")
    assert s["dialogs"] == 3 and "parsed chat by chat" in caplog.text
    assert any(
        "\\u0001" in p.read_text(encoding="utf-8") for p in (tmp_path / "raw-hex" / "telegram").iterdir()
    )


def _one_chat_cases(tmp: Path) -> dict[str, tuple[Path, dict]]:
    group = {
        "name": "Grp",
        "type": "private_supergroup",
        "id": 5,
        "messages": [msg(i, "user9", "g") for i in range(1, 40)],
    }
    return {
        "owner from the peer rule": (PERSONAL_2024, {}),
        "old dates": (DM, {"tz": "Europe/Berlin"}),
        "--me id": (PERSONAL_2024, {"me": "user5550001"}),
        "--me name": (PERSONAL_2024, {"me": "Дмитрий Иванов"}),
        "a group, skipped": (write_json(tmp / "group.json", group), {}),
        "a group, --me id": (write_json(tmp / "group2.json", group), {"me": "9", "include_groups": True}),
    }  # fmt: skip


@pytest.mark.parametrize(
    "case",
    ["owner from the peer rule", "old dates", "--me id", "--me name", "a group, skipped", "a group, --me id"],
)
def test_a_big_one_chat_export_in_runs_gives_the_same_result_as_whole(tmp_path, monkeypatch, caplog, case):
    """One-chat exports are parsed a run of messages at a time when big (here: any size, runs of a
    few messages): records, summary and owner are those of the whole-file parse."""
    export, options = _one_chat_cases(tmp_path)[case]
    monkeypatch.setattr(td_parse, "SPLIT_MIN_BYTES", 0)
    monkeypatch.setattr(td_single, "RUNS_MIN_BYTES", 0)
    monkeypatch.setattr(td_single, "RUN_BYTES", 700)
    caplog.set_level("DEBUG", logger=td.__name__)
    runs = import_desktop(export, tmp_path / "runs", **options)
    assert "parsed a run of messages at a time" in caplog.text
    assert len(td_single.message_runs(td_parse.read_export(export), 700)[1]) > 3
    _whole_file_only(monkeypatch)
    caplog.clear()
    whole = import_desktop(export, tmp_path / "whole", **options)
    assert "parsed a run" not in caplog.text
    assert tree_hash(tmp_path / "runs") == tree_hash(tmp_path / "whole")
    assert {k: v for k, v in runs.items() if k not in ("seconds", "out")} == {
        k: v for k, v in whole.items() if k not in ("seconds", "out")
    }


def test_a_big_one_chat_export_fails_or_falls_back_exactly_as_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(td_parse, "SPLIT_MIN_BYTES", 0)
    monkeypatch.setattr(td_single, "RUNS_MIN_BYTES", 0)
    monkeypatch.setattr(td_single, "RUN_BYTES", 500)
    errors = {}
    for path in ("runs", "whole"):
        with pytest.raises(TwinError) as e:  # anonymised: the owner needs --me, senders listed
            import_desktop(LANGCHAIN, tmp_path / path)
        errors[path] = str(e.value)
        _whole_file_only(monkeypatch)
    assert errors["runs"] == errors["whole"] and "--me" in errors["runs"]
    monkeypatch.setattr(td_parse, "SPLIT_MIN_BYTES", 0)
    text = PERSONAL_2024.read_text(encoding="utf-8")
    at = text.index('"text": "', text.index('"id": 121')) + len('"text": "')
    (tmp_path / "broken.json").write_text(text[:at] + '",' + text[at:], encoding="utf-8")
    line = text[:at].count("\n") + 1
    with pytest.raises(TwinError, match=rf"broken\.json:{line}:\d+: not valid JSON"):  # the line in the file
        import_desktop(tmp_path / "broken.json", tmp_path / "raw")
    (tmp_path / "lone.json").write_text(text[:at] + "\\udc00" + text[at:], encoding="utf-8")
    import_desktop(tmp_path / "lone.json", tmp_path / "raw")  # the chat-wide repair still applies
    assert records(tmp_path / "raw", 5550001)[121]["text"] == "\ufffdבשבע, ליד הים"


def test_failed_write_leaves_every_file_as_it_was(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    import_desktop(MULTI, raw)
    before = tree_hash(raw)
    calls = []
    real_fsync = os.fsync

    def failing_fsync(fd):  # the disk fills up while writing the second file
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        import_desktop(SAMPLE, raw)
    assert len(calls) == 2 and tree_hash(raw) == before  # nothing renamed, no temp files left


# ------------------------------------------------------------------- edges found on real exports


def test_messages_sharing_one_id_are_kept_when_their_dates_differ(tmp_path, caplog):
    # tele_dashboard's sample: 250 messages, all with one id, each of its own date (issue 19, section 6)
    same = [msg(1, "user2" if i % 2 else "user1", f"m{i}", t=1_700_000_000 + i) for i in range(250)]
    media = [msg(2, "user2", "", media_type="sticker"), msg(2, "user2", "", media_type="sticker")]
    f = write_json(
        tmp_path / "r.json",
        account([{"name": "P", "type": "personal_chat", "id": 2, "messages": same + media}]),
    )
    s = import_desktop(f, tmp_path / "raw")
    assert s["messages"] == 251 and s["skipped_messages"]["duplicate"] == 1  # the sticker listed twice
    rows = read_dialog(tmp_path / "raw" / "telegram" / "2.jsonl")
    assert [r["text"] for r in rows if r["id"] == 1] == [f"m{i}" for i in range(250)]
    assert s["media_only"] == 1  # counted after de-duplication: one sticker record was written
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2
    assert "1 duplicate message(s) dropped: same id and date" in warnings[0]
    assert "249 message(s) share their id" in warnings[1] and "kept as distinct" in warnings[1]
    # importing the same export again changes nothing, and the shared-id messages stay distinct
    once = tree_hash(tmp_path / "raw")
    import_desktop(f, tmp_path / "raw")
    assert tree_hash(tmp_path / "raw") == once


def test_groups_holding_only_the_owners_messages_are_named(tmp_path, caplog):
    """Desktop exports left groups, and groups with 'Only my messages', without anyone else's messages."""
    talk = {
        "name": "Talk",
        "type": "private_supergroup",
        "id": 5,
        "messages": [msg(1, "user9", "?"), msg(2, "user1", "!")],
    }
    mine = {
        "name": "Mine",
        "type": "private_group",
        "id": 6,
        "messages": [msg(3, "user1", "me"), msg(4, "user1", "again")],
    }
    left = {"name": "Left", "type": "public_supergroup", "id": 7, "messages": [msg(5, "user1", "bye")]}
    f = write_json(tmp_path / "g.json", account([talk, mine], left=[left]))
    s = import_desktop(f, tmp_path / "raw", include_groups=True)
    assert s["dialogs"] == 3
    assert (
        "2 group chat(s) hold only your own messages" in caplog.text and "'Only my messages'" in caplog.text
    )
    caplog.clear()
    import_desktop(write_json(tmp_path / "t.json", account([talk])), tmp_path / "raw2", include_groups=True)
    assert "only your own messages" not in caplog.text


def test_a_chat_in_both_chats_and_left_chats_is_not_a_damaged_export(tmp_path, caplog):
    chat = {
        "name": "P",
        "type": "personal_chat",
        "id": 2,
        "messages": [msg(1, "user2", "a"), msg(2, "user1", "b")],
    }
    s = import_desktop(write_json(tmp_path / "r.json", account([chat], left=[chat])), tmp_path / "raw")
    assert s["messages"] == 2 and s["skipped_messages"]["duplicate"] == 2
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


@pytest.mark.parametrize("zero", ["0", "0000000000", 0])
def test_zero_unixtime_falls_back_to_the_local_date_with_a_warning(tmp_path, caplog, zero):
    m = msg(1, "user2", "hi", date="2021-05-06T07:08:09", date_unixtime=zero)
    f = write_json(
        tmp_path / "z.json",
        {"name": "P", "type": "personal_chat", "id": 2, "messages": [m, msg(2, "user1", "yo")]},
    )
    s = import_desktop(f, tmp_path / "raw", tz="UTC")
    assert records(tmp_path / "raw", 2)[1]["date"] == "2021-05-06T07:08:09Z" and s["local_dates"] == 1
    assert "1 message(s) had date_unixtime 0" in caplog.text


@pytest.mark.slow
def test_me_hint_lists_every_sender_pasteably(tmp_path, monkeypatch, capsys):
    # 25 senders, none decidable as the owner: the error names 20 and says how to see the rest.
    names = [f"P{i} 🌸" for i in range(23)] + ["Al\x07ice", "O'Neil"]
    chats = [
        {
            "name": n,
            "type": "personal_chat",
            "id": 900 + i,
            "messages": [msg(1, f"user{100 + i}", "hi") | {"from": n}],
        }
        for i, n in enumerate(names)
    ]  # the peers' ids are not the chat ids: the owner cannot be inferred
    f = write_json(tmp_path / "m.json", account(chats, user_id=None))
    code, err = run_cli(monkeypatch, capsys, "export", "desktop", str(f), "--out", str(tmp_path / "raw"))
    assert code == 2 and err.count("\n") == 1 and "+5 more (add --list-senders" in err
    twin = Path(sys.executable).parent / "twin"
    listed = subprocess.run(
        [str(twin), "export", "desktop", str(f), "--list-senders"], capture_output=True, text=True, check=True
    ).stdout
    out = [line.split("\t") for line in listed.splitlines()]
    assert len(out) == 25
    # each printed --me value, pasted into a shell, gives back exactly the sender's name
    for (me, uid, _), name in zip(sorted(out, key=lambda r: int(r[1][4:])), names, strict=True):
        echoed = subprocess.run(
            ["bash", "-c", f"printf %s {me[len('--me ') :]}"], capture_output=True, text=True
        )
        assert echoed.stdout == name, (me, name)
        assert import_desktop(f, tmp_path / f"raw-{uid}", me=echoed.stdout)["owner"] == uid


def test_empty_chats_count_as_skipped(tmp_path):
    chats = [
        {"name": "P", "type": "personal_chat", "id": 2, "messages": [msg(1, "user2", "a")]},
        {"name": "Q", "type": "personal_chat", "id": 3, "messages": []},
    ]
    s = import_desktop(write_json(tmp_path / "e.json", account(chats)), tmp_path / "raw")
    assert s["dialogs"] == 1 and s["skipped_chats"] == {"empty": 1}
    # a one-chat export without messages: nothing to import, so no --me asked for (both parse paths)
    one = tmp_path / "one.json"
    one.write_text(
        '{\n "name": "Q",\n "type": "personal_chat",\n "id": 3,\n "messages": [\n ]\n}\n'
    )  # as Desktop
    assert td_single.message_runs(one.read_bytes(), 100)[1] == []
    for whole in (True, False):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(td_parse, "SPLIT_MIN_BYTES", 10**15 if whole else 0)
            mp.setattr(td_single, "RUNS_MIN_BYTES", 0)
            s = import_desktop(one, tmp_path / "raw2")
        assert s["dialogs"] == 0 and s["skipped_chats"] == {"empty": 1}


def test_an_error_is_the_only_line_printed(tmp_path):
    bad = [msg(1, "user2", "a"), msg(2, "user1", "b", reply_to_message_id="x")]
    f = write_json(
        tmp_path / "b.json", account([{"name": "P", "type": "personal_chat", "id": 2, "messages": bad}])
    )
    twin = Path(sys.executable).parent / "twin"
    proc = subprocess.run(
        [str(twin), "export", "desktop", str(f), "--out", str(tmp_path / "raw")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout
    assert proc.stderr.count("\n") == 1 and "reply_to_message_id" in proc.stderr


# ------------------------------------------------------- the owner's phone region, for `twin prepare`

# "77 123 4567": a Sri Lankan mobile as Sri Lankans write it to each other, without the trunk "0"
# and without a phone word before it; only the owner's own region tells it from any other digits.
LK_LINE = "my new one is 77 123 4567"


def _lk_export(tmp_path: Path, phone: str | None) -> Path:
    texts = ["hi, I changed my sim", "oh, what is it now?", LK_LINE, "saved it, thanks", "see you at 6", "ok"]
    chat = {"name": "Kamal", "type": "personal_chat", "id": 42}
    chat["messages"] = [msg(i, 2 if i % 2 else 1, t) for i, t in enumerate(texts, 1)]
    data = account([chat])
    if phone is not None:
        data["personal_information"]["phone_number"] = phone
    return write_json(tmp_path / "result.json", data)


def _prepare_texts(monkeypatch, capsys, raw: Path, out: Path) -> tuple[str, dict]:
    code, err = run_cli(monkeypatch, capsys, "prepare", "--raw", str(raw), "--out", str(out))
    assert code == 0, err
    text = "".join((out / f"{s}.jsonl").read_text(encoding="utf-8") for s in ("train", "val"))
    return text, json.loads((out / "stats.json").read_text(encoding="utf-8"))


def test_the_owners_phone_region_scrubs_their_countrys_numbers(tmp_path, monkeypatch, capsys):
    raw = tmp_path / "raw"
    export = _lk_export(tmp_path, "+94 77 123 4567")
    code, err = run_cli(monkeypatch, capsys, "export", "desktop", str(export), "--out", str(raw))
    assert code == 0, err
    acc = raw / "telegram" / "account.json"
    assert json.loads(acc.read_text()) == {"owner": "user1", "phone_region": "LK"}
    assert "4567" not in acc.read_text() and acc.stat().st_mode & 0o777 == 0o600
    text, stats = _prepare_texts(monkeypatch, capsys, raw, tmp_path / "p")
    assert "my new one is [PHONE]" in text and "4567" not in text
    assert "LK" in stats["phone_regions"] and stats["pii"]["PHONE"] == 1
    # a re-import changes nothing, the account file included
    before, mtime = tree_hash(raw), acc.stat().st_mtime_ns
    assert import_desktop(export, raw)["files_written"] == 0
    assert tree_hash(raw) == before and acc.stat().st_mtime_ns == mtime


def test_without_the_owners_phone_no_account_file_and_the_number_stays(tmp_path, monkeypatch, capsys):
    raw = tmp_path / "raw"
    s = import_desktop(_lk_export(tmp_path, None), raw)
    assert s["dialogs"] == 1 and s["phone_region"] is None
    assert sorted(p.name for p in (raw / "telegram").glob("*.jsonl")) == ["42.jsonl"]
    assert json.loads((raw / "telegram" / "account.json").read_text()) == {"owner": "user1"}
    text, stats = _prepare_texts(monkeypatch, capsys, raw, tmp_path / "p")
    assert LK_LINE in text and "LK" not in stats["phone_regions"]  # what the owner's region is for
    # a later export with the phone records its region; one without it leaves the file as it is
    import_desktop(_lk_export(tmp_path, "+94 77 123 4567"), raw)
    before = tree_hash(raw)
    import_desktop(_lk_export(tmp_path, None), raw)
    assert tree_hash(raw) == before and (raw / "telegram" / "account.json").is_file()


def test_the_phone_of_an_account_that_is_not_the_owner_is_not_used(tmp_path):
    s = import_desktop(_lk_export(tmp_path, "+94 77 123 4567"), tmp_path / "raw", me="2")
    assert s["phone_region"] is None
    assert json.loads((tmp_path / "raw" / "telegram" / "account.json").read_text()) == {"owner": "user2"}


# ------------------------------------------------------- one person's chats per raw directory


def _chat_of(user_id: int, peer: int) -> dict:
    chat = {"name": f"Peer {peer}", "type": "personal_chat", "id": peer}
    chat["messages"] = [msg(i, user_id if i % 2 else peer, f"line {i}") for i in range(1, 5)]
    return account([chat], user_id=user_id)


def test_another_accounts_export_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    """The sample person's chats (or a friend's export) must not end up in the owner's twin."""
    raw = tmp_path / "raw"
    first = write_json(tmp_path / "first.json", _chat_of(1, 42))
    assert run_cli(monkeypatch, capsys, "export", "desktop", str(first), "--out", str(raw))[0] == 0
    assert json.loads((raw / "telegram" / "account.json").read_text()) == {"owner": "user1"}
    before = tree_hash(raw)
    other = write_json(tmp_path / "other.json", _chat_of(9, 43))
    code, err = run_cli(monkeypatch, capsys, "export", "desktop", str(other), "--out", str(raw))
    assert code == 2 and tree_hash(raw) == before
    line = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(line) == 1 and "another account (user1)" in line[0] and "user9" in line[0]
    assert str(raw / "telegram") in line[0] and "--out DIR" in line[0]
    # the same account again (a newer export) is welcome, and so is the other one in its own directory
    again = write_json(tmp_path / "again.json", _chat_of(1, 44))
    assert run_cli(monkeypatch, capsys, "export", "desktop", str(again), "--out", str(raw))[0] == 0
    assert sorted(p.name for p in (raw / "telegram").glob("*.jsonl")) == ["42.jsonl", "44.jsonl"]
    assert (
        run_cli(monkeypatch, capsys, "export", "desktop", str(other), "--out", str(tmp_path / "r9"))[0] == 0
    )


def test_a_directory_from_before_the_owner_was_recorded_takes_the_next_export(tmp_path):
    raw = tmp_path / "raw"
    import_desktop(write_json(tmp_path / "a.json", _chat_of(1, 42)), raw)
    (raw / "telegram" / "account.json").unlink()  # as written before it said whose chats they are
    assert import_desktop(write_json(tmp_path / "b.json", _chat_of(9, 43)), raw)["dialogs"] == 1
    assert json.loads((raw / "telegram" / "account.json").read_text()) == {"owner": "user9"}
