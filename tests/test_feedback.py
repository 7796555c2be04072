"""Drafts feedback: what you sent after each suggestion of `twin drafts` (scripted Telegram client,
real `twin serve`), kept scrubbed in data/feedback/, and what eval and train read from it."""

from __future__ import annotations

import asyncio
import json
import os
import stat

import pytest
from live_server import twin_process

from tests.fake_telethon import FakeClient, location, msg, user
from tests.test_drafts import ANNA, ANNA_ID, ME_USER, TOKEN, account, options, session, until
from twin.drafts.options import DraftsOptions
from twin.drafts.run import run_drafts, watch
from twin.errors import TwinError
from twin.feedback import (
    KEYS,
    acceptance,
    acceptance_by_week,
    append_record,
    edit_distance,
    outcome,
    preference_pairs,
    read_feedback,
)

OLEG = user(2005, "Oleg", "oleg.k@example.org")  # a contact saved with an e-mail in the name
OLEG_ID = 2005


@pytest.fixture(scope="module")
def server(tiny_base, tiny_adapter):
    env = {**os.environ, "TWIN_API_TOKEN": TOKEN}
    args = ("--base", str(tiny_base), "--adapter", f"me={tiny_adapter}", "--threads", "1")
    with twin_process("serve", *args, health="/healthz", env=env) as url:
        yield url


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
    from tests.fake_telethon import scripted_live_client

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


def test_a_feedback_dir_that_cannot_be_made_stops_before_login(tmp_path, monkeypatch):
    monkeypatch.setenv("TELEGRAM_API_ID", "12345")
    monkeypatch.setenv("TELEGRAM_API_HASH", "0" * 32)
    (tmp_path / "file").write_text("x")
    opts = DraftsOptions(
        chats=["Anna K"], session=tmp_path / "tg", env_file=None, feedback_dir=tmp_path / "file" / "fb"
    )
    called = []
    with pytest.raises(TwinError, match=r"cannot use it for drafts feedback .*--no-feedback"):
        run_drafts(opts, client_factory=lambda *a: called.append(a))
    assert called == []
    for bad in (0.0, float("nan"), float("inf")):
        with pytest.raises(TwinError, match="--feedback-hours"):
            run_drafts(DraftsOptions(chats=["x"], env_file=None, feedback_hours=bad, feedback_dir=None))


# ---------------------------------------------------------------------- the shared module, on its own


def record(ts: str, kind: str, draft: str = "ok", sent: str | None = None, d: int | None = None) -> dict:
    return {"ts": ts, "dialog_id": 1, "contact": "A", "context": [{"role": "them", "text": "hi"}],
            "instruction": "dinner?", "draft": draft, "sent": sent, "outcome": kind, "edit_distance": d}  # fmt: skip


def test_outcomes_and_edit_distance():
    assert edit_distance("kitten", "sitting") == 3 and edit_distance("", "abc") == 3
    assert edit_distance("привет", "привет!") == 1
    assert outcome("see you at 8", " see you at 8 ", True) == ("unchanged", 0)
    assert outcome("see you at 8", "see u at 8!", True) == ("edited", 3)
    assert outcome("see you at 8", "no, I'm busy tonight", True)[0] == "other"
    assert outcome("ok", None, True) == ("other", None)  # a photo or a location
    assert outcome("ok", None, False) == ("none", None)


def test_acceptance_by_week_and_preference_pairs(tmp_path):
    rows = [
        record("2026-11-30T10:00:00Z", "unchanged", sent="ok", d=0),  # ISO week 49 (Monday)
        record("2026-12-06T23:59:59Z", "edited", sent="ok!", d=1),  # still week 49 (Sunday)
        record("2026-12-06T12:00:00Z", "none"),
        record("2026-12-07T08:00:00Z", "other", sent="no way", d=6),  # week 50
        record("2026-12-08T08:00:00Z", "other"),  # media only: no text, no pair
    ]
    weeks = acceptance_by_week(rows)
    assert [(w["week"], w["n"], w["unchanged"], w["edited"], w["none"]) for w in weeks] == [
        ("2026-W49", 3, 1, 1, 1),
        ("2026-W50", 2, 0, 0, 0),
    ]
    assert weeks[0]["share_unchanged"] == pytest.approx(1 / 3) and weeks[0]["median_edit_distance"] == 0.5
    assert weeks[1]["median_edit_distance"] == 6
    total = acceptance(rows)
    assert total["n"] == 5 and total["share_unchanged"] == 0.2 and total["median_edit_distance"] == 1
    assert acceptance([]) is None
    pairs = preference_pairs(rows)
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [("ok!", "ok"), ("no way", "ok")]
    assert set(pairs[0]) == {"contact", "context", "instruction", "chosen", "rejected"}
    for r in rows:
        append_record(tmp_path / "fb", r)
    assert read_feedback(tmp_path / "fb") == sorted(rows, key=lambda r: r["ts"])
    assert read_feedback(tmp_path / "missing") == []
    (tmp_path / "fb" / "2.jsonl").write_text('{"ts": "2026-12-01T00:00:00Z"}\n')
    with pytest.raises(TwinError, match=r"2\.jsonl:1: not a drafts feedback record"):
        read_feedback(tmp_path / "fb")


@pytest.mark.slow
def test_eval_reports_acceptance_per_week(random_lora_adapter, tmp_path):
    from tests.test_eval_run import VAL, _cfg
    from twin.eval.run import run_eval

    data = tmp_path / "processed"
    data.mkdir()
    (data / "val.jsonl").write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in VAL), "utf-8")
    fb = tmp_path / "fb"
    for r in (record("2026-11-30T10:00:00Z", "unchanged", sent="ok", d=0),
              record("2026-12-07T08:00:00Z", "edited", sent="ok!", d=1)):  # fmt: skip
        append_record(fb, r)
    result = run_eval(_cfg(random_lora_adapter, data, tmp_path / "out", feedback=str(fb)), progress=False)
    acc = json.loads((tmp_path / "out" / "runs" / result["run"] / "eval.json").read_text())["acceptance"]
    assert acc["n"] == 2 and acc["share_unchanged"] == 0.5
    assert [w["week"] for w in acc["weeks"]] == ["2026-W49", "2026-W50"]
    page = (tmp_path / "out" / "runs" / result["run"] / "report.html").read_text()
    section = page.split('<section id="acceptance">')[1].split("</section>")[0]
    assert "You sent 50% of 2 suggestions unchanged" in section and "2026-W50" in section
    (fb / "1.jsonl").write_text("not json\n")
    with pytest.raises(TwinError, match=r"1\.jsonl:1: not valid JSON"):
        run_eval(_cfg(random_lora_adapter, data, tmp_path / "out2", feedback=str(fb)), progress=False)
