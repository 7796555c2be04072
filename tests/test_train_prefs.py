"""The preference stage (twin/train/prefs.py) on the tiny Falcon: DPO's numbers, the pairs, the adapter."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.training import tiny_train_config

from twin.errors import TwinError

REPO = Path(__file__).resolve().parents[1]
TWIN = [sys.executable, "-m", "twin.cli"]
BETA = 0.5

# Two rewrites (pairs), one accepted draft and one ignored (no pair): the drafts feedback contract.
FEEDBACK = [
    {"outcome": "edited", "draft": "I will be there at eight, see you", "sent": "ok ok, at 8 :)"},
    {"outcome": "other", "draft": "Certainly, I would be glad to help.", "sent": "ага, щас гляну"},
    {"outcome": "unchanged", "draft": "sure", "sent": "sure"},
    {"outcome": "none", "draft": "maybe later", "sent": None},
]


def write_feedback(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, r in enumerate(FEEDBACK):
        lines.append(json.dumps({
            "ts": f"2026-12-0{i + 1}T10:00:00Z", "dialog_id": "42", "contact": "Masha",
            "context": [{"role": "them", "text": "hey"}, {"role": "me", "text": "hi"}],
            "instruction": "are you coming tonight?", "edit_distance": 3, **r,
        }))  # fmt: skip
    (d / "42.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return d


def feedback_examples(chosen: bool) -> list[dict]:
    key = "sent" if chosen else "draft"
    return [
        {"contact": "Masha", "context": [{"role": "them", "text": "hey"}, {"role": "me", "text": "hi"}],
         "instruction": "are you coming tonight?", "response": r[key]}
        for r in FEEDBACK if r["outcome"] in ("edited", "other")
    ]  # fmt: skip


def seq_logps(adapter: Path, base: Path, examples: list[dict]) -> list[float]:
    """Summed log-prob of each reply (+EOS) given its prompt, from the full model's logits (independent
    of the loss module): log_softmax over the vocabulary, gathered at the reply tokens."""
    import torch
    from peft import PeftModel

    from twin.examples import collate, encode_examples
    from twin.model.load import load_base

    model, tok = load_base(base)
    model = PeftModel.from_pretrained(model, str(adapter)).eval()
    enc = encode_examples(examples, tok, "plain-v1", 384)
    out = []
    with torch.no_grad():
        for i in range(len(enc)):
            b = collate(enc, [i], tok.pad_token_id)
            logp = torch.log_softmax(model(input_ids=b["input_ids"]).logits[0, :-1].double(), -1)
            targets = b["input_ids"][0, 1:]
            keep = b["labels"][0, 1:] != -100
            out.append(float(logp[torch.arange(len(targets)), targets][keep].sum()))
    return out


def prefs_config(base: Path, data: Path, out: Path, init: Path, run: str, **prefs):
    # no loss guard: these tests check what DPO does to the pairs (the guard: tests/test_prefs_guard.py)
    return tiny_train_config(
        base, data, out, run=run, prefs={"init": str(init), "beta": BETA, "steps": 8, "batch_size": 4,
                                         "micro_batch_size": 2, "lr": 2e-2, "max_loss_increase": None, **prefs},
    )  # fmt: skip


@pytest.fixture(scope="module")
def feedback_only(tiny_base: Path, processed_dir: Path, tiny_adapter: Path, tmp_path_factory) -> dict:
    """A feedback-only stage (every pair's text known here), with model loads counted."""
    import transformers

    from twin.train.prefs import train_prefs

    out = tmp_path_factory.mktemp("prefs-fb")
    fb = write_feedback(out / "feedback")
    cfg = prefs_config(
        tiny_base, processed_dir, out, tiny_adapter, "fb", sources=["feedback"], feedback=str(fb)
    )
    loads = []
    real = transformers.AutoModelForCausalLM.from_pretrained.__func__

    def counting(cls, *a, **kw):  # the real loader, counted: the stage must hold one model
        loads.append(a[0] if a else kw)
        return real(cls, *a, **kw)

    mp = pytest.MonkeyPatch()
    mp.setattr(transformers.AutoModelForCausalLM, "from_pretrained", classmethod(counting))
    try:
        record = train_prefs(cfg)
    finally:
        mp.undo()
    return {"record": record, "adapter": out / "adapters" / "fb", "loads": loads, "out": out}


@pytest.mark.slow
def test_dpo_loss_is_minus_logsigmoid_of_beta_margin(tiny_base: Path, tiny_adapter: Path) -> None:
    import torch

    from twin.examples import collate, encode_examples
    from twin.model.load import load_base
    from twin.train.loop import _trainable
    from twin.train.loss import make_loss_module
    from twin.train.prefs import dpo_loss, pair_rows

    rows = feedback_examples(True) + feedback_examples(False)
    want = seq_logps(tiny_adapter, tiny_base, rows)  # chosen 0, 1; rejected 2, 3
    model, tok = load_base(tiny_base)
    module = make_loss_module(_trainable(model, tiny_adapter)).eval()
    enc = encode_examples(rows, tok, "plain-v1", 384)
    with torch.no_grad():
        got = -module(**collate(enc, pair_rows([0, 1], 2), tok.pad_token_id), per_row=True)
    assert torch.allclose(got.double(), torch.tensor(want, dtype=torch.float64), atol=1e-3), (got, want)
    ref = [want[0] + 0.7, want[1] - 1.3, want[2] - 0.2, want[3] + 2.0]  # any reference values
    loss = dpo_loss(got[:2], got[2:], torch.tensor(ref[:2]), torch.tensor(ref[2:]), BETA)
    for i in range(2):
        margin = (want[i] - ref[i]) - (want[2 + i] - ref[2 + i])
        by_hand = math.log1p(math.exp(-BETA * margin))  # -log sigmoid(x) = log(1 + e^-x)
        assert loss[i].item() == pytest.approx(by_hand, abs=1e-3)


@pytest.mark.slow
def test_stage_raises_the_margin_on_its_pairs(
    feedback_only: dict, tiny_base: Path, tiny_adapter: Path
) -> None:
    rec = feedback_only["record"]
    assert rec["pairs"] == 2 and rec["pair_sources"] == {"feedback": 2}
    chosen, rejected = feedback_examples(True), feedback_examples(False)
    before = seq_logps(tiny_adapter, tiny_base, chosen + rejected)
    after = seq_logps(feedback_only["adapter"], tiny_base, chosen + rejected)
    m_before = sum(before[:2]) / 2 - sum(before[2:]) / 2
    m_after = sum(after[:2]) / 2 - sum(after[2:]) / 2
    # The recorded reference margin is the SFT adapter's, computed before any update ...
    assert rec["margin_before"] == pytest.approx(m_before, abs=1e-2)
    assert rec["margin_after"] == pytest.approx(m_after, abs=1e-2)
    assert m_after > m_before + 1.0, (m_before, m_after)  # ... and the stage widened it
    assert rec["reward_accuracy_after"] == 1.0
    assert sum(after[:2]) > sum(before[:2]) - 1.0  # the NLL term keeps the real replies likely


@pytest.mark.slow
def test_reference_needs_no_second_model(feedback_only: dict, tiny_base: Path) -> None:
    assert [str(x) for x in feedback_only["loads"]] == [str(tiny_base)]


@pytest.mark.slow
def test_twin_json_records_the_stage(feedback_only: dict, tiny_adapter: Path) -> None:
    from twin.adapter_meta import read_meta

    meta = read_meta(feedback_only["adapter"])
    sft = read_meta(tiny_adapter)
    assert (meta.train, meta.template, meta.budget) == (
        sft.train,
        sft.template,
        sft.budget,
    )  # what serving needs, kept
    p = meta.prefs
    assert p["stage"] == "prefs" and p["objective"] == "dpo" and p["beta"] == BETA
    assert p["pairs"] == 2 and p["pair_sources"] == {"feedback": 2} and p["steps"] == 8
    assert p["init"] == str(tiny_adapter) and p["val_loss_before"] and p["val_loss_after"]
    rows = (feedback_only["out"] / "runs" / "fb" / "prefs_metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,loss,dpo") and len(rows) == 9
    assert "ok ok" not in (feedback_only["adapter"] / "twin.json").read_text()  # counts, never text


@pytest.fixture(scope="module")
def full_run(tiny_base: Path, processed_dir: Path, tiny_adapter: Path, tmp_path_factory) -> dict:
    """Sampled pairs (twin and base) and feedback pairs, through the CLI."""
    from typer.testing import CliRunner

    from twin.cli import app

    out = tmp_path_factory.mktemp("prefs-full")
    fb = write_feedback(out / "feedback")
    args = ["train", "--config", str(REPO / "pipelines" / "tiny.yaml"), "--stage", "prefs",
            "--base", str(tiny_base), "--data", str(processed_dir), "--from", str(tiny_adapter),
            "--run", "full", "--feedback", str(fb), "--precision", "32-true",
            "--set", f"out_dir={out}", "--set", "num_threads=2", "--set", "prefs.prompts=12",
            "--set", "prefs.samples=2", "--set", "prefs.max_new_tokens=8", "--set", "prefs.steps=3",
            "--set", "prefs.batch_size=4", "--set", "prefs.micro_batch_size=4",
            "--set", "prefs.max_loss_increase=null"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return {"adapter": out / "adapters" / "full", "output": result.output}


@pytest.mark.slow
def test_pairs_from_twin_base_and_feedback(full_run: dict) -> None:
    from twin.adapter_meta import read_meta

    p = read_meta(full_run["adapter"]).prefs
    src = p["pair_sources"]
    assert src["feedback"] == 2 and 0 < src["twin"] <= 12 and 0 < src["base"] <= 12
    assert p["pairs"] == sum(src.values())
    assert p["config"]["samples"] == 2 and p["verifier"] in ("ok", "too_little_data")
    assert "preference stage (dpo" in full_run["output"]


@pytest.mark.slow
def test_eval_and_serve_load_the_result(
    full_run: dict, tiny_base: Path, tiny_adapter: Path, processed_dir: Path, tmp_path: Path
) -> None:
    from twin.eval.run import EvalConfig, run_eval
    from twin.inference.generate import Conversation, GenParams, build_reply_prompt
    from twin.serve.engine import Engine

    r = run_eval(
        EvalConfig(adapter=str(full_run["adapter"]), data=str(processed_dir), out_dir=str(tmp_path),
                   max_examples=3, max_new_tokens=6, samples=3),
        progress=False,
    )  # fmt: skip
    assert r["examples"] == 3 and math.isfinite(r["loss"]["twin"]["loss"])
    assert r["loss"]["twin"]["loss"] != r["loss"]["base"]["loss"]
    engine = Engine(tiny_base, [("twin", full_run["adapter"])])
    twin = engine.resolve("twin")
    assert twin.meta.prefs["stage"] == "prefs" and twin.template == "plain-v1"
    history = [{"role": "them", "text": "hey"}]
    params = GenParams(max_new_tokens=6, min_new_tokens=6, seed=1)
    gen = engine.run(twin, Conversation(history, "coming?", "Masha"), params)
    prompt = build_reply_prompt(twin.meta, engine.tokenizer, Conversation(history, "coming?", "Masha"))
    assert gen.prompt_tokens == len(engine.tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert gen.completion_tokens == 6 or gen.stopped_by == "stop"  # as asked, unless a stop string
    # served with the preference-tuned weights: the reply is not the SFT adapter's it started from
    sft = Engine(tiny_base, [("sft", tiny_adapter)])
    assert gen.text != sft.run(sft.resolve("sft"), Conversation(history, "coming?", "Masha"), params).text


def test_feedback_reader_contract(tmp_path: Path) -> None:
    from twin.feedback import preference_pairs, read_feedback

    pairs = preference_pairs(read_feedback(write_feedback(tmp_path / "fb")))
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [
        ("ok ok, at 8 :)", "I will be there at eight, see you"),
        ("ага, щас гляну", "Certainly, I would be glad to help."),
    ]
    assert pairs[0]["contact"] == "Masha" and pairs[0]["instruction"] == "are you coming tonight?"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "7.jsonl").write_text('{"dialog_id": "7", "context": [], "instruction": "x"}\n')
    with pytest.raises(
        TwinError, match=r"7\.jsonl:1: .*missing field\(s\) ts, contact, draft, sent, outcome, edit_distance"
    ):
        read_feedback(bad)


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", HF_HUB_OFFLINE="1")
    return subprocess.run([*TWIN, "train", "--config", str(REPO / "pipelines" / "tiny.yaml"), *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["--stage", "prefs", "--set", "prefs.beta=0"], "prefs.beta"),
        (["--stage", "prefs", "--set", "prefs.batch_size=6", "--set", "prefs.micro_batch_size=4"],
         "prefs.batch_size 6 must be a multiple"),
        (["--stage", "dpo"], "--stage 'dpo': use sft or prefs"),
        (["--stage", "prefs", "--resume"], "the preference stage has no resume"),
        (["--stage", "prefs", "--run", "nope"], "no SFT adapter to continue"),
    ],
)  # fmt: skip
def test_bad_prefs_config_is_one_line_exit_2(tmp_path: Path, args: list[str], expect: str) -> None:
    proc = _cli(args, tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect in lines[0], lines


@pytest.mark.slow
def test_in_place_twice_is_refused(feedback_only: dict, tiny_base: Path, processed_dir: Path) -> None:
    from twin.train.prefs import train_prefs

    out = feedback_only["out"]
    cfg = tiny_train_config(tiny_base, processed_dir, out, run="fb", prefs={"sources": ["feedback"]})
    with pytest.raises(TwinError, match="already has a preference stage"):
        train_prefs(cfg)


@pytest.mark.slow
def test_recipe_key_runs_sft_then_prefs_in_place(
    tiny_base: Path, processed_dir: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from twin.adapter_meta import read_meta
    from twin.cli import app

    fb = write_feedback(tmp_path / "feedback")
    args = ["train", "--config", str(REPO / "pipelines" / "tiny.yaml"), "--base", str(tiny_base),
            "--data", str(processed_dir), "--run", "both", "--max-steps", "2", "--precision", "32-true",
            "--feedback", str(fb), "--set", f"out_dir={tmp_path}", "--set", "num_threads=2",
            "--set", "prefs.enabled=true", "--set", "prefs.sources=[feedback]", "--set", "prefs.steps=2",
            "--set", "prefs.batch_size=2", "--set", "prefs.micro_batch_size=2"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    meta = read_meta(tmp_path / "adapters" / "both")
    kept = read_meta(tmp_path / "runs" / "both" / "sft-adapter")  # the step back
    assert meta.prefs["init"] == str(tmp_path / "adapters" / "both") and kept.prefs is None
    assert meta.metrics == kept.metrics and meta.prefs["pair_sources"] == {"feedback": 2}
    assert "trained 2 steps" in result.output and "preference stage (dpo" in result.output
