"""``twin prepare`` end to end on small raw dirs: outputs, stats, formats, bad input, atomicity."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin.cli import app
from twin.errors import TwinError
from twin.prepare import pipeline
from twin.prepare.config import PrepareConfig
from twin.prepare.pipeline import run_prepare
from twin.records import iso_utc, make_record, write_dialog

T0 = 1_700_000_000
H = 3600


def rec(d: int, i: int, t: float, out: bool, text: str, **kw) -> dict:
    return make_record(
        source="telegram",
        dialog_id=d,
        dialog_name=f"Friend {d}",
        id=i,
        date=iso_utc(t),
        out=out,
        text=text,
        **kw,
    )


def make_raw(root: Path) -> Path:
    """Two dialogs with hand-computed answers (see the asserts in test_counts_match_hand_computed)."""
    tg = root / "raw" / "telegram"
    # dialog 1: session A = them, them, me | them, me ; session B (30 h later) = me, them, me
    write_dialog(
        tg / "1.jsonl",
        [
            rec(1, 1, T0, False, "hi"),
            rec(1, 2, T0 + 10, False, "my mail is bob@example.com"),
            rec(1, 3, T0 + 20, True, "hey 😅"),
            rec(1, 4, T0 + 30, False, "", media="photo"),
            rec(1, 5, T0 + 40, False, "call +7 916 482-73-15"),
            rec(1, 6, T0 + 50, True, "ok"),
            rec(1, 7, T0 + 30 * H, True, "morning"),
            rec(1, 8, T0 + 30 * H + 60, False, "Привет"),
            rec(1, 9, T0 + 30 * H + 90, True, "как дела?"),
        ],
    )
    # dialog 2: one-sided (saved-messages-like): no examples
    write_dialog(tg / "2.jsonl", [rec(2, 1, T0, True, "note"), rec(2, 2, T0 + 60, True, "note 2")])
    return root / "raw"


def run_cli(*args: str):
    return CliRunner().invoke(app, ["prepare", *args], catch_exceptions=True)


def test_counts_match_hand_computed(tmp_path):
    raw = make_raw(tmp_path)
    out = tmp_path / "processed"
    stats = run_prepare(PrepareConfig(raw=str(raw), out=str(out), val_fraction=0.0))
    c = stats["counts"]
    assert (c["dialogs"], c["dialogs_with_examples"], c["messages"], c["messages_no_text"]) == (2, 1, 11, 1)
    assert (c["sessions"], c["turns"], c["examples"], c["train"], c["val"]) == (3, 8, 3, 3, 0)
    assert stats["pii"]["EMAIL"] == 1 and stats["pii"]["PHONE"] == 1
    rows = [json.loads(x) for x in (out / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["session"], r["instruction"], r["response"]) for r in rows] == [
        ("1-0", "hi\nmy mail is [EMAIL]", "hey 😅"),
        ("1-0", "[photo]\ncall [PHONE]", "ok"),  # the photo they sent, as its mark
        ("1-1", "Привет", "как дела?"),
    ]
    assert rows[1]["context"] == [
        {"role": "them", "text": "hi\nmy mail is [EMAIL]"},
        {"role": "me", "text": "hey 😅"},
    ]
    assert rows[2]["context"] == [{"role": "me", "text": "morning"}]
    assert all(r["contact"] == "Friend 1" and r["dialog_id"] == 1 for r in rows)
    assert (out / "val.jsonl").read_text() == ""


def test_stats_contract_and_summary_table(tmp_path):
    raw = make_raw(tmp_path)
    out = tmp_path / "p"
    r = run_cli("--raw", str(raw), "--out", str(out), "--format", "alpaca", "--format", "sharegpt")
    assert r.exit_code == 0, r.output
    assert "examples" in r.output and "PII [EMAIL]" in r.output and "p90" in r.output
    # kinds with no hit share one row instead of a row of zeros each
    assert "PII [SEED]" not in r.output and "PII, other kinds" in r.output
    assert "bob@example.com" not in r.output
    stats = json.loads((out / "stats.json").read_text())
    cfg = stats["config"]
    assert cfg["max_context_tokens"] == 512 and cfg["context_unit"] == "chars"
    assert cfg["chars_per_token"] == 4.0 and cfg["tokenizer"] is None and cfg["scrub"] is True
    assert {"counts", "pii", "lengths", "val"} <= stats.keys()
    # tiny input: the split still gives val one session (and no session is in both)
    train = [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()]
    val = [json.loads(x) for x in (out / "val.jsonl").read_text().splitlines()]
    assert val and not {x["session"] for x in train} & {x["session"] for x in val}
    assert stats["counts"]["train"] == len(train) and stats["counts"]["val"] == len(val)
    for fmt in ("alpaca", "sharegpt"):
        assert len((out / f"train.{fmt}.jsonl").read_text().splitlines()) == len(train)
        assert len((out / f"val.{fmt}.jsonl").read_text().splitlines()) == len(val)
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["twin_train_alpaca"]["columns"]["history"] == "history"
    assert info["twin_train_sharegpt"]["tags"]["user_tag"] == "human"
    # a rerun without --format removes the stale format files and is byte-identical otherwise
    before = (out / "train.jsonl").read_bytes()
    assert run_cli("--raw", str(raw), "--out", str(out)).exit_code == 0
    assert (out / "train.jsonl").read_bytes() == before
    assert not (out / "train.alpaca.jsonl").exists()


def test_no_scrub_warns_and_keeps_text(tmp_path, caplog):
    raw = make_raw(tmp_path)
    with caplog.at_level("WARNING"):
        stats = run_prepare(PrepareConfig(raw=str(raw), out=str(tmp_path / "o"), scrub=False))
    assert any("no-scrub" in r.message for r in caplog.records)
    assert stats["pii"] == {} and stats["config"]["scrub"] is False
    text = (tmp_path / "o" / "train.jsonl").read_text() + (tmp_path / "o" / "val.jsonl").read_text()
    assert "bob@example.com" in text


@pytest.mark.slow
def test_pool_output_equals_single_process(tmp_path, monkeypatch):
    raw = make_raw(tmp_path)
    tg = raw / "telegram"
    for d in range(3, 9):  # more dialogs so both workers get some
        write_dialog(
            tg / f"{d}.jsonl",
            [
                rec(d, i, T0 + i * 600 + (i // 7) * 30 * H, i % 3 == 0, f"msg {i} of {d}")
                for i in range(1, 60)
            ],
        )
    run_prepare(PrepareConfig(raw=str(raw), out=str(tmp_path / "one"), workers=1))
    monkeypatch.setattr(pipeline, "_POOL_MIN_BYTES", 0)
    run_prepare(PrepareConfig(raw=str(raw), out=str(tmp_path / "two"), workers=2))
    for name in ("train.jsonl", "val.jsonl"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    a = json.loads((tmp_path / "one" / "stats.json").read_text())
    b = json.loads((tmp_path / "two" / "stats.json").read_text())
    assert a["counts"] == b["counts"] and a["lengths"] == b["lengths"]


def _existing_outputs(out: Path) -> dict[str, bytes]:
    out.mkdir(parents=True, exist_ok=True)
    for name in ("train.jsonl", "val.jsonl", "stats.json"):
        (out / name).write_text(f"old {name}\n")
    return {p.name: p.read_bytes() for p in out.iterdir()}


@pytest.mark.parametrize(
    "line,message",
    [
        ("{not json", r"2\.jsonl:2: not valid JSON"),
        ('{"dialog_id":2,"id":5,"out":true,"text":"x"}', r"2\.jsonl:2: record is missing 'date'"),
        (
            '{"dialog_id":2,"id":5,"date":"2024-01-01T00:00:00Z","text":"x"}',
            r"2\.jsonl:2: record is missing 'out'",
        ),
    ],
)
def test_bad_line_names_file_and_line_and_writes_nothing(tmp_path, line, message):
    raw = make_raw(tmp_path)
    bad = raw / "telegram" / "2.jsonl"
    bad.write_text(bad.read_text().splitlines()[0] + "\n" + line + "\n")
    out = tmp_path / "processed"
    before = _existing_outputs(out)
    with pytest.raises(TwinError, match=message):
        run_prepare(PrepareConfig(raw=str(raw), out=str(out)))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched, no temp files left


def test_empty_or_missing_raw_dir(tmp_path):
    (tmp_path / "raw").mkdir()
    with pytest.raises(TwinError, match=r"raw: no dialog files"):
        run_prepare(PrepareConfig(raw=str(tmp_path / "raw"), out=str(tmp_path / "o")))
    with pytest.raises(TwinError, match=r"nope: raw data directory not found"):
        run_prepare(PrepareConfig(raw=str(tmp_path / "nope"), out=str(tmp_path / "o")))
    export = tmp_path / "result.json"  # the Desktop export passed to prepare instead of its import
    export.write_text("{}")
    with pytest.raises(TwinError, match=r"result.json: is a file.*make export-desktop FILE="):
        run_prepare(PrepareConfig(raw=str(export), out=str(tmp_path / "o")))
    assert not (tmp_path / "o").exists()


def test_cli_error_is_one_line_exit_2(tmp_path):
    raw = make_raw(tmp_path)
    (raw / "telegram" / "1.jsonl").write_text("oops\n")
    p = subprocess.run(
        [sys.executable, "-m", "twin.cli", "prepare", "--raw", str(raw), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        f"error: {raw / 'telegram' / '1.jsonl'}:1: not valid JSON (Expecting value at column 1); "
        "fix or delete the line, or re-export the dialog"
    ]


def test_bad_options_fail_cleanly(tmp_path):
    raw = make_raw(tmp_path)
    r = run_cli("--raw", str(raw), "--out", str(tmp_path / "o"), "--region", "XX")
    assert isinstance(r.exception, TwinError) and "region" in str(r.exception)
    r = run_cli("--raw", str(raw), "--out", str(tmp_path / "o"), "--format", "csv")
    assert isinstance(r.exception, TwinError) and "format" in str(r.exception)
    with pytest.raises(TwinError, match="tokenizer directory not found"):
        run_prepare(PrepareConfig(raw=str(raw), out=str(tmp_path / "o"), tokenizer=str(tmp_path / "none")))


def _tiny_tokenizer(path: Path) -> Path:
    """A real (tiny) BPE tokenizer saved the way Hugging Face models ship one."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(
        ["hi hey ok morning", "как дела привет"] * 50,
        trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>"]),
    )
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>").save_pretrained(path)
    return path


def test_tokenizer_budget_counts_tokens(tmp_path):
    raw = make_raw(tmp_path)
    tok_dir = _tiny_tokenizer(tmp_path / "tok")
    stats = run_prepare(
        PrepareConfig(raw=str(raw), out=str(tmp_path / "o"), tokenizer=str(tok_dir), max_context_tokens=3)
    )
    assert stats["config"]["context_unit"] == "tokens" and stats["config"]["tokenizer"] == str(tok_dir)
    assert stats["lengths"]["context_size"]["unit"] == "tokens"
    assert stats["lengths"]["context_size"]["max"] <= 3


def test_config_yaml_and_set_overrides(tmp_path):
    raw = make_raw(tmp_path)
    yaml_path = tmp_path / "prepare.yaml"
    yaml_path.write_text("gap_hours: 48\nval_fraction: 0.0\n")
    out = tmp_path / "o"
    assert run_cli("--raw", str(raw), "--out", str(out), "--config", str(yaml_path)).exit_code == 0
    stats = json.loads((out / "stats.json").read_text())
    assert (
        stats["config"]["gap_hours"] == 48 and stats["counts"]["sessions"] == 2
    )  # 30 h gap no longer splits
    r = run_cli("--raw", str(raw), "--out", str(out), "--config", str(yaml_path), "--set", "gap_hours=0.01")
    assert r.exit_code == 0, r.output
    assert json.loads((out / "stats.json").read_text())["counts"]["sessions"] > 3
    r = run_cli("--raw", str(raw), "--out", str(out), "--set", "gap_hour=3")
    assert isinstance(r.exception, TwinError) and "unknown key 'gap_hour'" in str(r.exception)


@pytest.mark.slow
def test_bad_line_in_pool_mode(tmp_path, monkeypatch):
    raw = make_raw(tmp_path)
    for d in range(3, 7):
        write_dialog(
            raw / "telegram" / f"{d}.jsonl", [rec(d, i, T0 + i * 60, i % 2 == 0, "hi") for i in range(1, 30)]
        )
    (raw / "telegram" / "5.jsonl").write_text('{"dialog_id":5,"id":1,"out":true,"text":"x"}\n')
    monkeypatch.setattr(pipeline, "_POOL_MIN_BYTES", 0)
    out = tmp_path / "processed"
    before = _existing_outputs(out)
    with pytest.raises(TwinError, match=r"5\.jsonl:1: record is missing 'date'"):
        run_prepare(PrepareConfig(raw=str(raw), out=str(out), workers=2))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# -- a val split large enough to measure ------------------------------------------------------------


def _chat(root: Path, sessions: int, replies: int) -> Path:
    """One dialog of ``sessions`` sessions (2 days apart), each ``replies`` question/answer pairs."""
    recs, i = [], 0
    for s in range(sessions):
        for k in range(replies):
            t = T0 + s * 48 * H + k * 120
            recs += [
                rec(1, i + 1, t, False, f"q{s}.{k} what now"),
                rec(1, i + 2, t + 60, True, f"a{s}.{k} sure"),
            ]
            i += 2
    write_dialog(root / "raw" / "telegram" / "1.jsonl", recs)
    return root / "raw"


def _texts(ex: dict) -> set[str]:
    return {t["text"] for t in ex["context"]} | {ex["instruction"], ex["response"]}


@pytest.mark.parametrize("sessions,replies", [(100, 3), (2, 150)])
def test_small_chat_gets_a_val_split_big_enough_to_measure(tmp_path, caplog, sessions, replies):
    """~600 messages: 5% of the sessions would be ~15 val prompts (many short sessions) or a whole half
    of the chat (two long ones). Val gets >= 48 prompts, at most 20% of the examples, and no val
    turn is ever in a training example; prepare warns in one line with the numbers."""
    raw = _chat(tmp_path, sessions, replies)
    with caplog.at_level("WARNING"):
        stats = run_prepare(PrepareConfig(raw=str(raw), out=str(tmp_path / "o")))
    out = tmp_path / "o"
    train = [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()]
    val = [json.loads(x) for x in (out / "val.jsonl").read_text().splitlines()]
    total = sessions * replies
    assert 48 <= len(val) <= 0.2 * total and len(train) + len(val) == total
    val_turns = {ex["response"] for ex in val} | {ex["instruction"] for ex in val}
    assert not val_turns & set().union(*(_texts(ex) for ex in train))
    assert stats["val"] == {"examples": len(val), "sessions": stats["counts"]["val_sessions"],
                            "blocks": stats["val"]["blocks"], "dialogs": 1, "min_examples": 48,
                            "enough": True, "weak": True, "warning": stats["val"]["warning"]}  # fmt: skip
    warning = f"prepare: a chat this small makes a weak twin: {total} replies of yours ({len(train)} train, {len(val)} val)"
    lines = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(lines) == 1 and lines[0].startswith(warning) and "\n" not in lines[0]
    # reruns agree (the split is by hash, not a random draw)
    run_prepare(PrepareConfig(raw=str(raw), out=str(tmp_path / "o2")))
    assert (out / "val.jsonl").read_bytes() == (tmp_path / "o2" / "val.jsonl").read_bytes()


def test_replies_in_one_block_leave_val_empty_and_the_warning_says_eval_has_nothing(tmp_path, caplog):
    raw = _chat(tmp_path, 1, 6)  # one session of 6 replies: one block, which train keeps
    with caplog.at_level("WARNING"):
        stats = run_prepare(PrepareConfig(raw=str(raw), out=str(tmp_path / "o")))
    assert stats["counts"]["val"] == 0 and stats["counts"]["train"] == 6
    assert "no val prompts" in stats["val"]["warning"] and "nothing to measure" in stats["val"]["warning"]
    assert "0 val prompts" not in caplog.text
    none = run_prepare(PrepareConfig(raw=str(raw), out=str(tmp_path / "o2"), val_fraction=0))
    assert "(val_fraction 0)" in none["val"]["warning"] and "one stretch" not in none["val"]["warning"]


def test_a_widened_val_split_is_logged_once_with_its_numbers(tmp_path, caplog):
    raw = _chat(tmp_path, 100, 3)
    with caplog.at_level("INFO"):
        run_prepare(PrepareConfig(raw=str(raw), out=str(tmp_path / "o")))
    lines = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    assert len([x for x in lines if "dialog files" in x]) == 1  # read twice, announced once
    assert [x for x in lines if "val_fraction" in x][0].endswith(
        "val examples (under 48); widening the val split"
    )


def test_the_done_line_counts_sessions_as_the_table_does(tmp_path, caplog):
    """It said 'from 5256 sessions' above a table saying 'sessions 7,491' (90,000 messages): the line
    counted only sessions with a reply of mine, the table all of them."""
    with caplog.at_level("INFO"):
        stats = run_prepare(PrepareConfig(raw=str(make_raw(tmp_path)), out=str(tmp_path / "o")))
    assert stats["counts"]["sessions"] == 3  # dialog 2's one-sided session has no example
    done = [r.getMessage() for r in caplog.records if r.getMessage().startswith("prepare: 3 examples")]
    assert done == [
        f"prepare: 3 examples (1 train / 2 val) from 2 of 3 sessions (the rest hold no reply of yours) -> {tmp_path / 'o'}"
    ]


def test_big_chat_keeps_the_fraction_and_no_warning(tmp_path, caplog):
    raw = _chat(tmp_path, 400, 3)  # 1,200 replies: 5% of 400 sessions is ~60 val prompts
    with caplog.at_level("WARNING"):
        stats = run_prepare(PrepareConfig(raw=str(raw), out=str(tmp_path / "o")))
    assert stats["val"]["enough"] and not stats["val"]["weak"] and stats["val"]["warning"] is None
    assert 48 <= stats["counts"]["val"] < 0.1 * 1200
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_a_message_of_control_characters_alone_counts_as_without_text(tmp_path):
    """The count says what the turns saw: a message that is empty once cleaned carries no text."""
    raw = make_raw(tmp_path)
    write_dialog(
        raw / "telegram" / "3.jsonl",
        [rec(3, 1, T0, False, "\x00\r\n\x0b \x7f"), rec(3, 2, T0 + 9, True, "ok")],
    )
    stats = run_prepare(PrepareConfig(raw=str(raw), out=str(tmp_path / "processed"), val_fraction=0.0))
    assert (stats["counts"]["messages"], stats["counts"]["messages_no_text"]) == (13, 2)
