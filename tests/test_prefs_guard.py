"""The preference stage's two protections of the owner's real replies (twin/train/prefs.py): the SFT
adapter's embedding rows stay frozen (only LoRA moves), and the guard on the val loss of the real
replies keeps the last weights within ``prefs.max_loss_increase`` of the SFT adapter's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers.training import tiny_train_config

DELTA = "trainable_tokens_delta"
FEEDBACK = [  # two rewrites: pairs whose text is known, so the stage needs no sampling
    {"outcome": "edited", "draft": "I will be there at eight, see you", "sent": "ok ok, at 8 :)"},
    {"outcome": "other", "draft": "Certainly, I would be glad to help.", "sent": "ага, щас гляну"},
]


# --------------------------------------------------------------------------------------------
# The guard on its own: a real module, a scripted sequence of val losses


def _guard(losses: list[float], limit: float | None = 0.02, every: int = 2, patience: int = 1):
    from twin.train.prefs import Guard

    module = torch.nn.Linear(2, 2)
    seq = iter(losses)
    return Guard(limit, every, 1.0, lambda: next(seq), module, patience), module


def _move(module: torch.nn.Module, value: float) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(value)


def test_guard_keeps_the_last_checked_weights_within_budget_and_stops_past_it() -> None:
    guard, module = _guard([1.01, 1.019, 1.05])  # budget 1.02: steps 2 and 4 within, 6 over
    for step in range(1, 7):
        _move(module, float(step))
        if not guard.check(step, last=step == 10):
            break
    assert step == 6 and guard.stopped_at == 6 and guard.kept_step == 4
    assert [c["step"] for c in guard.checks] == [2, 4, 6]  # measured every 2 steps only
    guard.restore(last_step=6)
    assert all(torch.equal(p, torch.full_like(p, 4.0)) for p in module.parameters())


def test_guard_with_patience_goes_on_through_one_check_over_and_keeps_a_later_one() -> None:
    # budget 1.02: step 2 within, 4 over (the loss may come back as the lr decays), 6 within again,
    # 8 and 10 over: two in a row stop it; the weights kept are step 6's
    guard, module = _guard([1.01, 1.03, 1.015, 1.04, 1.05, 1.0], patience=2)
    for step in range(1, 13):
        _move(module, float(step))
        if not guard.check(step, last=step == 12):
            break
    assert (step, guard.stopped_at, guard.kept_step) == (10, 10, 6)
    guard.restore(last_step=10)
    assert all(torch.equal(p, torch.full_like(p, 6.0)) for p in module.parameters())
    assert guard.record()["patience"] == 2 and len(guard.record()["checks"]) == 5


def test_guard_over_budget_at_the_first_check_restores_the_sft_weights() -> None:
    guard, module = _guard([1.5])
    sft = [p.detach().clone() for p in module.parameters()]
    _move(module, 7.0)
    guard.check(1, last=False)  # not a check step
    _move(module, 8.0)
    assert guard.check(2, last=False) is False and guard.kept_step == 0
    guard.restore(last_step=2)
    assert all(torch.equal(a, b) for a, b in zip(module.parameters(), sft, strict=True))


def test_guard_checks_the_last_step_and_off_keeps_everything() -> None:
    guard, module = _guard([1.0, 1.0], every=4)
    for step in range(1, 6):
        assert guard.check(step, last=step == 5)
    assert [c["step"] for c in guard.checks] == [4, 5] and guard.kept_step == 5
    off, _ = _guard([], limit=None)  # no measurement at all (an empty sequence would raise)
    assert all(off.check(s, last=s == 3) for s in (1, 2, 3)) and off.kept_step == 3 and not off.checks


# --------------------------------------------------------------------------------------------
# The stage on the tiny Falcon, continuing an adapter with embedding rows


@pytest.fixture(scope="module")
def rows_adapter(tiny_base: Path, processed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SFT adapter with LoRA and trained embedding rows (as pipelines/tiny.yaml makes)."""
    from twin.train.loop import train

    out = tmp_path_factory.mktemp("prefs-rows-sft")
    train(tiny_train_config(tiny_base, processed_dir, out, run="sft", max_steps=4, optim={"lr": 1e-2},
                            lora={"train_embeddings": True}))  # fmt: skip
    return out / "adapters" / "sft"


def _feedback(fb: Path) -> Path:
    import json

    fb.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"ts": f"2026-12-0{i + 1}T10:00:00Z", "dialog_id": "42", "contact": "Masha",
                         "context": [{"role": "them", "text": "hey"}], "instruction": "coming tonight?",
                         "edit_distance": 3, **r}) for i, r in enumerate(FEEDBACK)]  # fmt: skip
    (fb / "42.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return fb


def _stage(tiny_base: Path, data: Path, init: Path, out: Path, **prefs) -> tuple[dict, dict]:
    """A feedback-only preference stage; returns its record and the saved weights."""
    from safetensors.torch import load_file

    from twin.train.prefs import train_prefs

    fb = _feedback(out / "feedback")
    cfg = tiny_train_config(
        tiny_base, data, out, run="p", prefs={"init": str(init), "sources": ["feedback"], "feedback": str(fb),
                                              "steps": 4, "batch_size": 2, "micro_batch_size": 2, **prefs},
    )  # fmt: skip
    record = train_prefs(cfg)
    return record, load_file(str(out / "adapters" / "p" / "adapter_model.safetensors"))


def _sft_weights(adapter: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(adapter / "adapter_model.safetensors"))


def _changed(a: dict, b: dict, part: str) -> bool:
    keys = [k for k in a if part in k]
    assert keys, part
    return any(not torch.equal(a[k], b[k]) for k in keys)


@pytest.mark.slow
def test_rows_stay_frozen_by_default_and_move_when_asked(
    rows_adapter: Path, tiny_base: Path, processed_dir: Path, tmp_path: Path
) -> None:
    sft = _sft_weights(rows_adapter)
    rec, frozen = _stage(tiny_base, processed_dir, rows_adapter, tmp_path / "a", lr=2e-2,
                         max_loss_increase=None)  # fmt: skip
    assert rec["config"]["train_embeddings"] is False and rec["steps"] == 4
    assert not _changed(sft, frozen, DELTA)  # the embedding rows as SFT left them ...
    assert _changed(sft, frozen, "lora_")  # ... while the LoRA matrices moved
    _, moved = _stage(tiny_base, processed_dir, rows_adapter, tmp_path / "b", lr=2e-2,
                      max_loss_increase=None, train_embeddings=True)  # fmt: skip
    assert _changed(sft, moved, DELTA)


@pytest.mark.slow
def test_a_stage_over_budget_ships_the_sft_weights(
    rows_adapter: Path, tiny_base: Path, processed_dir: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file
    from typer.testing import CliRunner

    from twin.adapter_meta import read_meta
    from twin.cli import app

    fb = _feedback(tmp_path / "feedback")
    # lr 0.5 on two pairs wrecks the real replies' loss at once: both checks (steps 2, 4) are over budget
    args = ["train", "--config", str(Path(__file__).resolve().parents[1] / "pipelines" / "tiny.yaml"),
            "--stage", "prefs", "--base", str(tiny_base), "--data", str(processed_dir), "--from", str(rows_adapter),
            "--run", "p", "--feedback", str(fb), "--precision", "32-true", "--set", f"out_dir={tmp_path}",
            "--set", "num_threads=2", "--set", "prefs.sources=[feedback]", "--set", "prefs.steps=4",
            "--set", "prefs.batch_size=2", "--set", "prefs.micro_batch_size=2", "--set", "prefs.lr=0.5",
            "--set", "prefs.val_every=2", "--set", "prefs.max_loss_increase=0.001"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "stopped at step 4" in result.output and "kept step 0 (the SFT weights)" in result.output
    rec = read_meta(tmp_path / "adapters" / "p").prefs
    g = rec["guard"]
    assert g["stopped_at"] == 4 and g["kept_step"] == 0 and g["patience"] == 2 and rec["steps"] == 4
    assert all(c["val_loss"] > rec["val_loss_before"] * 1.001 for c in g["checks"]) and len(g["checks"]) == 2
    sft = _sft_weights(rows_adapter)
    weights = load_file(str(tmp_path / "adapters" / "p" / "adapter_model.safetensors"))
    assert not _changed(sft, weights, "lora_") and not _changed(sft, weights, DELTA)
    assert rec["val_loss_after"] == pytest.approx(rec["val_loss_before"], rel=1e-5)
    assert "val_loss" in (tmp_path / "runs" / "p" / "prefs_metrics.csv").read_text().splitlines()[0]
