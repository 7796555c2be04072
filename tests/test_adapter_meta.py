"""twin.json through twin.adapter_meta.AdapterMeta: read, validate (one line, exit 2), upgrade, round trip."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from twin.adapter_meta import AdapterMeta, read_meta
from twin.errors import TwinError

# A twin.json as adapters trained before the prompt budget, precision and memory scope were recorded
# wrote it: v1 fingerprint (config + tokenizer), prepare's settings of that time, no budget.
OLD = {
    "format": 1,
    "base_model": {
        "path": "checkpoints/tiny",
        "fingerprint": "sha256:0123456789abcdef",
        "model_type": "falcon",
    },
    "template": "plain-v1",
    "prepare": {
        "max_context_tokens": 256,
        "chars_per_token": 4.0,
        "tokenizer": None,
        "context_unit": "chars",
    },
    "train": {"data": {"max_seq_length": 256}},
    "metrics": {"val_loss": 3.2},
    "created": "2024-01-01T00:00:00Z",
}
BUDGET = {"unit": "tokens", "seq_tokens": 384, "reply_tokens": 128, "prompt_tokens": 256}


def _write(d: Path, meta: dict) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "twin.json").write_text(json.dumps(meta))
    return d


def test_an_old_twin_json_loads_as_it_was_served(tmp_path):
    meta = read_meta(_write(tmp_path / "old", OLD))
    assert meta.base_model.fingerprint == "sha256:0123456789abcdef" and meta.template == "plain-v1"
    assert meta.budget is None and meta.prompt_tokens is None  # prompts were only cut to fit the model
    assert meta.memory is None and meta.prefs is None and meta.trained("max_seq_length") == 256
    assert meta.context.context_unit == "chars" and meta.context.context_budget == 1024
    assert meta.to_json() == OLD  # nothing added on the way through: an old reader reads it back


@pytest.mark.parametrize(
    ("old", "check"),
    [
        # the smallest file the reader ever accepted: prepare's settings unrecorded -> 256, its default then
        ({"prepare": {}}, lambda m: m.context.max_context_tokens == 256 and m.base_model.path is None),
        # memory from before its scope and dir were recorded: the private default, the usual dir
        (
            {"memory": {"k": 2}},
            lambda m: (m.memory.k, m.memory.dir, m.memory.scope) == (2, "memory", "contact"),
        ),
        ({"memory": {}}, lambda m: m.memory is None),  # an empty record meant no memory
        # a budget as written since it was recorded: prompt_tokens is checked, then computed again
        ({"budget": BUDGET}, lambda m: m.prompt_tokens == 256 and m.budget.reply_tokens == 128),
    ],
)
def test_older_shapes_upgrade(tmp_path, old, check):
    base = {"format": 1, "base_model": {"fingerprint": "sha256:0"}, "template": "plain-v1", "train": {}}
    meta = read_meta(_write(tmp_path / "a", {**base, "prepare": OLD["prepare"], **old}))
    assert check(meta)
    assert read_meta(meta.write(tmp_path / "b").parent) == meta  # upgraded once, stable after


def test_round_trip_keeps_every_field_and_unknown_ones(tmp_path):
    new = {**OLD, "budget": BUDGET, "precision": {"precision": "32-true", "reason": "auto: cpu"},
           "memory": {"k": 3, "dir": "memory", "scope": "all"}, "prefs": {"stage": "prefs", "pairs": 4},
           "added_by_a_newer_twin": {"x": 1}}  # fmt: skip
    meta = AdapterMeta.from_dict(new)
    out = tmp_path / "adapter"
    out.mkdir()
    meta.write(out)
    assert json.loads((out / "twin.json").read_text()) == new
    assert read_meta(out) == meta and [p.name for p in out.iterdir()] == ["twin.json"]  # no temp file left


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        ({"budget": {**BUDGET, "seq_tokens": "lots"}}, "budget.seq_tokens"),
        ({"budget": {**BUDGET, "prompt_tokens": 300}}, "budget.prompt_tokens"),
        ({"base_model": {"path": "x", "fingerprint": 7}}, "base_model.fingerprint"),
        ({"prepare": {"max_context_tokens": -1}}, "prepare.max_context_tokens"),
        ({"prepare": {"context_unit": "words"}}, "prepare.context_unit"),
        ({"memory": {"k": "two"}}, "memory.k"),
        ({"memory": {"k": 2, "scope": "everyone"}}, "memory.scope"),
        ({"metrics": [1, 2]}, "metrics"),
        ({"template": ""}, "template"),
        ({"train": None}, "train"),
    ],
)
def test_a_wrong_field_is_one_line_naming_it(tmp_path, edit, field):
    d = _write(tmp_path / "bad", {**OLD, **edit})
    with pytest.raises(TwinError) as e:
        read_meta(d)
    msg = str(e.value)
    assert e.value.exit_code == 2 and "\n" not in msg
    assert msg.startswith(f"{d / 'twin.json'}: ") and f"'{field}'" in msg and "retrain the adapter" in msg


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "missing, so this is not a twin adapter"),
        ("{not json", "not valid JSON"),
        ("[1]", "expected a JSON object"),
        (json.dumps({**OLD, "format": 2}), "format 2 is not supported"),
        (json.dumps({k: v for k, v in OLD.items() if k != "base_model"}), "field 'base_model' is missing"),
    ],
)
def test_unreadable_files_are_clear_errors(tmp_path, content, match):
    d = tmp_path / "adapter"
    d.mkdir()
    if content is not None:
        (d / "twin.json").write_text(content)
    with pytest.raises(TwinError, match=match):
        read_meta(d)
    with pytest.raises(TwinError, match="adapter directory not found"):
        read_meta(tmp_path / "nope")


def test_a_missing_run_names_the_runs_trained_beside_it(tmp_path):
    """`make train` (RUN=demo) then `make eval RUN=me`: the line says which runs exist."""
    _write(tmp_path / "adapters" / "demo", OLD)
    with pytest.raises(
        TwinError, match=r"adapters/me: adapter directory not found; trained runs there: demo \(RUN=demo"
    ):
        read_meta(tmp_path / "adapters" / "me")
    with pytest.raises(
        TwinError,
        match=r"nope: adapter directory not found; train one with `make train RUN=NAME` or `twin train --run NAME`",
    ):
        read_meta(tmp_path / "elsewhere" / "nope")


def test_the_cli_refuses_a_bad_twin_json_with_exit_2_before_loading(tmp_path, monkeypatch, capsys):
    from twin.cli import main

    d = _write(tmp_path / "bad", {**OLD, "budget": {**BUDGET, "reply_tokens": 0}})
    monkeypatch.setattr(
        sys, "argv", ["twin", "publish", "merge", "--adapter", str(d), "--out", str(tmp_path / "m")]
    )
    with pytest.raises(SystemExit) as e:
        main()
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.count("\n") == 0
    assert "'budget.reply_tokens'" in err and str(d / "twin.json") in err
    assert not (tmp_path / "m").exists()
