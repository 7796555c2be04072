"""One sample reply at each validation (eval.sample_reply), on the real tiny Falcon."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest
from helpers.training import tiny_train_config, write_processed

pytestmark = pytest.mark.slow

MARKER = "quokka zebra 7431, still on for tonight?"  # the first val prompt: must stay in the run dir


def _rows(out: Path) -> list[dict]:
    with (out / "runs" / "r" / "metrics.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _data(path: Path) -> Path:
    data = write_processed(path, n_train=32, n_val=8)
    val = data / "val.jsonl"
    rows = [json.loads(line) for line in val.read_text(encoding="utf-8").splitlines()]
    rows[0]["instruction"] = MARKER
    val.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return data


def _greedy_reply_of(adapter: Path, base: Path, data: Path, cfg) -> str:
    """What the saved adapter writes to the first val prompt, loaded afresh (no training code)."""
    from peft import PeftModel

    from twin.examples import read_examples
    from twin.model.load import load_base
    from twin.prompt import resolve_template
    from twin.train.loop import prompt_budget
    from twin.train.sample import sample_prompt, sample_reply

    model, tok = load_base(base)
    peft_model = PeftModel.from_pretrained(model, str(adapter))
    row = read_examples(data / "val.jsonl")[0]
    template = resolve_template(cfg.data.template, tok)
    sample = sample_prompt(peft_model, tok, row, template, prompt_budget(cfg).prompt_tokens, cfg)
    return sample_reply(peft_model, tok, sample)


def test_sample_reply_at_each_validation_is_the_adapters_own_and_stays_in_the_run_dir(
    tiny_base: Path, tmp_path: Path, capfd: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    from twin.train.loop import train

    caplog.set_level(logging.DEBUG)
    data = _data(tmp_path / "d")
    kw = {"max_steps": 4, "optim": {"lr": 3e-2}, "eval": {"every_steps": 2, "keep_best": False}}
    on = tiny_train_config(tiny_base, data, tmp_path / "on", run="r", **kw)
    assert on.eval.sample_reply and on.eval.sample_tokens == 48  # on by default
    m_on = train(on)
    captured = capfd.readouterr()
    term = captured.out + captured.err  # tqdm.write: the terminal, above the progress bar
    rows = _rows(tmp_path / "on")
    replies = {int(r["step"]): r["sample_reply"] for r in rows if r["sample_reply"]}
    assert sorted(replies) == [2, 4], rows  # at each validation, nowhere else
    assert f"each validation's sample reply answers: {json.dumps(MARKER)}" in term
    for step, reply in replies.items():
        assert f"step {step}: sample reply {json.dumps(reply, ensure_ascii=False)}" in term
    # The reply is the current adapter's: the adapter saved after step 4 writes the same, greedily.
    assert replies[4] == _greedy_reply_of(tmp_path / "on" / "adapters" / "r", tiny_base, data, on)

    # Message text: in the terminal and the run dir only, never the logger, twin.json or the adapter.
    assert MARKER not in caplog.text and "sample reply" not in caplog.text
    for f in (tmp_path / "on").rglob("*"):
        if f.is_file() and (tmp_path / "on" / "runs") not in f.parents:
            assert MARKER.encode() not in f.read_bytes(), f

    # Off: the same training to the last digit (greedy sampling draws no random numbers), no replies.
    off = tiny_train_config(tiny_base, data, tmp_path / "off", run="r", **{**kw, "eval": {**kw["eval"], "sample_reply": False}})  # fmt: skip
    m_off = train(off)
    assert "sample reply" not in "".join(capfd.readouterr())
    assert all(not r["sample_reply"] for r in _rows(tmp_path / "off"))
    assert (m_off["train_loss"], m_off["val_loss"]) == (m_on["train_loss"], m_on["val_loss"])
    assert [r["train_loss"] for r in _rows(tmp_path / "off")] == [r["train_loss"] for r in rows]
