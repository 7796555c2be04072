"""Drafts feedback: the shared module (twin/feedback.py) that `twin drafts` writes and eval and train
read, the refusals before login, and eval's acceptance section. The end-to-end cases (scripted
Telegram client, real `twin serve`) are in test_drafts.py, to share its server process."""

from __future__ import annotations

import json

import pytest

from twin.drafts.options import DraftsOptions
from twin.drafts.run import run_drafts
from twin.errors import TwinError
from twin.feedback import (
    acceptance,
    acceptance_by_week,
    append_record,
    edit_distance,
    outcome,
    preference_pairs,
    read_feedback,
)


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
    from helpers.eval_inputs import VAL, eval_config

    from twin.eval.run import run_eval

    data = tmp_path / "processed"
    data.mkdir()
    (data / "val.jsonl").write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in VAL), "utf-8")
    fb = tmp_path / "fb"
    for r in (record("2026-11-30T10:00:00Z", "unchanged", sent="ok", d=0),
              record("2026-12-07T08:00:00Z", "edited", sent="ok!", d=1)):  # fmt: skip
        append_record(fb, r)
    result = run_eval(
        eval_config(random_lora_adapter, data, tmp_path / "out", feedback=str(fb)), progress=False
    )
    acc = json.loads((tmp_path / "out" / "runs" / result["run"] / "eval.json").read_text())["acceptance"]
    assert acc["n"] == 2 and acc["share_unchanged"] == 0.5
    assert [w["week"] for w in acc["weeks"]] == ["2026-W49", "2026-W50"]
    page = (tmp_path / "out" / "runs" / result["run"] / "report.html").read_text()
    section = page.split('<section id="acceptance">')[1].split("</section>")[0]
    assert "You sent 50% of 2 suggestions unchanged" in section and "2026-W50" in section
    (fb / "1.jsonl").write_text("not json\n")
    with pytest.raises(TwinError, match=r"1\.jsonl:1: not valid JSON"):
        run_eval(eval_config(random_lora_adapter, data, tmp_path / "out2", feedback=str(fb)), progress=False)
