"""The train stage end to end on the tiny Falcon (CPU): outputs, masking, resume, failures."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from helpers.training import tiny_train_config, write_processed

from twin.adapter_meta import read_meta
from twin.errors import TwinError
from twin.model.load import base_fingerprint, load_base


def _rows(run_dir: Path) -> list[dict]:
    with (run_dir / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def test_adapter_dir_and_twin_json(tiny_adapter: Path, tiny_base: Path, processed_dir: Path) -> None:
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "twin.json"):
        assert (tiny_adapter / name).is_file(), name
    meta = json.loads((tiny_adapter / "twin.json").read_text())  # the file, as other tools read it
    assert read_meta(tiny_adapter).to_json() == meta  # and the record reads back what was written
    assert meta["format"] == 1
    assert meta["base_model"] == {
        "path": str(tiny_base),
        "fingerprint": base_fingerprint(tiny_base),
        "model_type": "falcon",
    }
    assert meta["template"] == "plain-v1"
    stats = json.loads((processed_dir / "stats.json").read_text())
    assert meta["prepare"] == stats["config"]
    assert meta["train"]["lora"]["r"] == 8 and meta["train"]["run"] == "fixture"
    m = meta["metrics"]
    assert m["steps"] == 12 and m["train_examples"] == 96 and m["val_examples"] == 16
    assert 0 <= m["padding_fraction"] < 0.15 and m["tokens_per_s"] > 0
    assert math.isclose(m["val_ppl"], math.exp(m["val_loss"]), rel_tol=1e-3)
    adapter_cfg = json.loads((tiny_adapter / "adapter_config.json").read_text())
    assert adapter_cfg["target_modules"] == ["query_key_value"] and adapter_cfg["r"] == 8


def test_loss_falls_and_metrics_csv(tiny_adapter: Path) -> None:
    rows = _rows(tiny_adapter.parents[1] / "runs" / "fixture")
    assert [int(r["step"]) for r in rows] == list(range(1, 13))
    losses = [float(r["train_loss"]) for r in rows]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.1, losses
    assert rows[-1]["val_loss"] and float(rows[-1]["tokens_per_s"]) > 0


def test_adapter_reloads_through_peft_and_changes_generations(tiny_adapter: Path, tiny_base: Path) -> None:
    import torch
    from peft import PeftModel

    from twin.prompt import build_prompt

    base, tok = load_base(tiny_base)
    prompt = build_prompt([{"role": "them", "text": "wanna grab coffee?"}], "are you coming tonight?")
    enc = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        before = base(**enc).logits[0, -1].clone()
        gen_before = base.generate(**enc, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    model = PeftModel.from_pretrained(base, str(tiny_adapter))
    model.eval()
    with torch.no_grad():
        after = model(**enc).logits[0, -1]
        gen_after = model.generate(**enc, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    assert not torch.allclose(before, after)
    assert gen_before[0].tolist() != gen_after[0].tolist()


def test_response_only_mask_is_exact(tiny_base: Path) -> None:
    import torch
    import torch.nn.functional as F

    from twin.examples import IGNORE_INDEX, collate, count_targets, encode_examples
    from twin.model.load import load_tokenizer
    from twin.model.lora import apply_lora
    from twin.prompt import build_training_pair
    from twin.train.config import LoraConfig
    from twin.train.loss import make_loss_module

    tok = load_tokenizer(tiny_base)
    examples = [
        {"context": [{"role": "them", "text": "hi"}], "instruction": "coffee?", "response": "ok ok, at 8"},
        {"context": [], "instruction": "где ты?", "response": "дома", "contact": "Мама"},
    ]
    data = encode_examples(examples, tok, "plain-v1", 256)
    batch = collate(data, [0, 1], tok.pad_token_id)
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    for row, ex in enumerate(examples):
        prompt, completion = build_training_pair(ex, template="plain-v1")
        p_ids = tok(prompt, add_special_tokens=False).input_ids
        c_ids = tok(completion, add_special_tokens=False).input_ids + [tok.eos_token_id]
        n = len(p_ids) + len(c_ids)
        assert ids[row, :n].tolist() == p_ids + c_ids
        assert labels[row, : len(p_ids)].tolist() == [IGNORE_INDEX] * len(p_ids)  # prompt masked
        assert labels[row, len(p_ids) : n].tolist() == c_ids  # reply + EOS trained
        assert tok.decode(labels[row, len(p_ids) : n]) == completion + tok.eos_token
        assert (labels[row, n:] == IGNORE_INDEX).all() and (mask[row, n:] == 0).all()  # padding
        assert (ids[row, n:] == tok.pad_token_id).all() and (mask[row, :n] == 1).all()
    assert count_targets(data, [0, 1]) == int((labels[:, 1:] != IGNORE_INDEX).sum())

    # The training loss equals cross-entropy of the full model's logits on exactly those tokens.
    model, _ = load_base(tiny_base)
    peft_model = apply_lora(model, LoraConfig(r=4, dropout=0.0))
    module = make_loss_module(peft_model).eval()
    with torch.no_grad():
        got = module(**batch)
        logits = peft_model(input_ids=ids, attention_mask=mask).logits[:, :-1]
        want = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), reduction="sum"
        )
    assert torch.allclose(got, want, rtol=1e-4), (got, want)


def _train_killed(monkeypatch: pytest.MonkeyPatch, cfg, *, after_batches: int) -> None:
    """Run ``cfg`` and interrupt it (as ctrl-C would) when it asks for batch ``after_batches + 1``."""
    import twin.train.loop as loop
    from twin import examples

    real, calls = examples.collate, {"n": 0}

    def dying_collate(*a, **k):
        calls["n"] += 1
        if calls["n"] > after_batches:
            raise KeyboardInterrupt
        return real(*a, **k)

    with monkeypatch.context() as m:
        m.setattr(examples, "collate", dying_collate)
        with pytest.raises(KeyboardInterrupt):
            loop.train(cfg)


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted(
    tiny_base: Path, processed_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from safetensors.torch import load_file

    import twin.train.loop as loop

    # 8 steps of 2 micro-batches; an epoch is 6 steps, so the resumed part crosses an epoch boundary.
    kw = {"max_steps": 8, "checkpoint_every_steps": 5, "optim": {"lr": 1e-2}, "eval": {"every_steps": 4}}
    loop.train(tiny_train_config(tiny_base, processed_dir, tmp_path / "a", run="r", **kw))

    cfg_b = tiny_train_config(tiny_base, processed_dir, tmp_path / "b", run="r", **kw)
    # during step 7, after the step-5 checkpoint: 6 steps of 2 micro-batches, and at step 4 the val
    # set (2 batches) twice, the adapter's and the base's own
    _train_killed(monkeypatch, cfg_b, after_batches=6 * 2 + 2 * 2)
    assert (tmp_path / "b" / "runs" / "r" / "state.ckpt").is_file()
    assert not (tmp_path / "b" / "adapters" / "r").exists()
    metrics = loop.train(cfg_b, resume=True)
    assert metrics["steps"] == 8

    wa = load_file(tmp_path / "a" / "adapters" / "r" / "adapter_model.safetensors")
    wb = load_file(tmp_path / "b" / "adapters" / "r" / "adapter_model.safetensors")
    assert wa.keys() == wb.keys() and wa
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-6), k
    ra, rb = _rows(tmp_path / "a" / "runs" / "r"), _rows(tmp_path / "b" / "runs" / "r")
    assert [r["step"] for r in rb] == [str(i) for i in range(1, 9)]
    for x, y in zip(ra, rb, strict=True):
        assert math.isclose(float(x["train_loss"]), float(y["train_loss"]), rel_tol=1e-5)
    assert float(ra[-1]["val_loss"]) == pytest.approx(float(rb[-1]["val_loss"]), rel=1e-5)


@pytest.mark.slow
def test_gc_is_paused_from_the_start_to_the_first_optimizer_step(
    tiny_base: Path, processed_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    import twin.train.loop as loop

    seen: list[tuple[str, bool, bool]] = []  # (where, the cyclic GC on?, the heap frozen?)
    real_load, real_step = loop.load_data, loop.optimizer_step

    def load(cfg):
        seen.append(("data", gc.isenabled(), gc.get_freeze_count() > 0))
        return real_load(cfg)

    def step(*a):
        seen.append(("step", gc.isenabled(), gc.get_freeze_count() > 0))
        return real_step(*a)

    monkeypatch.setattr(loop, "load_data", load)
    monkeypatch.setattr(loop, "optimizer_step", step)
    loop.train(tiny_train_config(tiny_base, processed_dir, tmp_path, max_steps=3))
    # after the first step what the start-up left is frozen, not walked by every full collection;
    # thawed when the run is over
    assert seen == [
        ("data", False, False), ("step", False, False), ("step", True, True), ("step", True, True)
    ]  # fmt: skip
    assert gc.isenabled() and gc.get_freeze_count() == 0
    gc.disable()  # a caller's own choice is left as it is
    try:
        loop.train(tiny_train_config(tiny_base, processed_dir, tmp_path, run="u", max_steps=2))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_nan_loss_stops_with_clear_message(
    tiny_base: Path, processed_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    import torch.nn.functional as F

    real = F.cross_entropy
    monkeypatch.setattr(F, "cross_entropy", lambda *a, **k: real(*a, **k) * torch.tensor(float("nan")))
    from twin.train.loop import train

    with pytest.raises(TwinError, match=r"loss became nan at step 1; lower optim.lr"):
        train(tiny_train_config(tiny_base, processed_dir, tmp_path, max_steps=3))
    assert not (tmp_path / "adapters" / "t").exists()


# -- bad input: one-line errors before the model is loaded ---------------------------------------


@pytest.fixture
def no_model_load(monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    def _boom(*a, **k):
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", _boom)


def _expect(cfg, match: str) -> None:
    from twin.train.loop import train

    with pytest.raises(TwinError, match=match) as e:
        train(cfg)
    assert "\n" not in str(e.value)


def test_missing_and_empty_data(tiny_base: Path, tmp_path: Path, no_model_load: None) -> None:
    _expect(tiny_train_config(tiny_base, tmp_path / "nope", tmp_path), "data directory not found")
    d = tmp_path / "data"
    d.mkdir()
    _expect(tiny_train_config(tiny_base, d, tmp_path), r"train.jsonl: not found; run `twin prepare`")
    (d / "train.jsonl").write_text("")
    _expect(tiny_train_config(tiny_base, d, tmp_path), "empty")
    (d / "train.jsonl").write_text("\n\n")
    _expect(tiny_train_config(tiny_base, d, tmp_path), "no examples")
    (d / "train.jsonl").write_text('{"context": [], "instruction": "hi", "response": "yo"}\n{oops\n')
    _expect(tiny_train_config(tiny_base, d, tmp_path), r"train.jsonl:2: not valid JSON")
    (d / "train.jsonl").write_text('{"context": [], "instruction": "hi"}\n')
    _expect(tiny_train_config(tiny_base, d, tmp_path), r"train.jsonl:1: missing field\(s\) response")


def test_gc_is_back_on_when_a_run_fails_before_its_first_step(
    tiny_base: Path, tmp_path: Path, no_model_load: None
) -> None:
    import gc

    d = tmp_path / "data"
    d.mkdir()
    (d / "train.jsonl").write_text('{"context": [], "instruction": "hi", "response": "yo"}\n{oops\n')
    _expect(tiny_train_config(tiny_base, d, tmp_path), r"train.jsonl:2: not valid JSON")
    assert gc.isenabled()


def test_bad_base_dirs(tiny_base: Path, processed_dir: Path, tmp_path: Path, no_model_load: None) -> None:
    import shutil

    _expect(tiny_train_config(tmp_path / "none", processed_dir, tmp_path), "base model directory not found")
    for remove, match in (("model.safetensors", "no weights"), ("tokenizer.json", "no tokenizer")):
        broken = tmp_path / f"no-{remove}"
        shutil.copytree(tiny_base, broken)
        (broken / remove).unlink()
        _expect(tiny_train_config(broken, processed_dir, tmp_path), match)


def test_config_errors(tiny_base: Path, processed_dir: Path, tmp_path: Path, no_model_load: None) -> None:
    with pytest.raises(TwinError, match=r"unknown key 'lora.rank'"):
        tiny_train_config(tiny_base, processed_dir, tmp_path, lora={"rank": 8})
    with pytest.raises(TwinError, match="multiple of micro_batch_size"):
        tiny_train_config(tiny_base, processed_dir, tmp_path, batch_size=12, micro_batch_size=8)
    with pytest.raises(TwinError, match="schedule.name"):
        tiny_train_config(tiny_base, processed_dir, tmp_path, schedule={"name": "cosine_annealing"})
    _expect(tiny_train_config(tiny_base, processed_dir, tmp_path, quantize="nf4"), "needs a CUDA GPU")
    _expect(tiny_train_config(tiny_base, processed_dir, tmp_path, strategy="fsdp", devices=2), "needs a CUDA")
    _expect(tiny_train_config(tiny_base, processed_dir, tmp_path, run="../x"), "run name")


def test_max_length_smaller_than_prompt(
    tiny_base: Path, processed_dir: Path, tmp_path: Path, no_model_load: None
) -> None:
    _expect(
        tiny_train_config(tiny_base, processed_dir, tmp_path, data={"max_seq_length": 16}),
        r"data.max_seq_length 16 is smaller than the prompt template",
    )
    # Fits the template, but the reply's reserved room leaves no prompt budget: one line too.
    _expect(
        tiny_train_config(
            tiny_base, processed_dir, tmp_path, data={"max_seq_length": 128, "reply_tokens": 100}
        ),
        r"max_seq_length 128 - data.reply_tokens 100 leaves 28 tokens for a prompt",
    )


@pytest.mark.slow
def test_bf16_true_without_stats_json(tiny_base: Path, tmp_path: Path, caplog) -> None:
    """The default precision runs on CPU too; a data dir without stats.json gets prepare's defaults."""
    import torch
    from safetensors.torch import load_file

    from twin.train.loop import train

    data = write_processed(tmp_path / "data", n_train=16, n_val=4, stats=False)
    train(tiny_train_config(tiny_base, data, tmp_path, run="bf16", max_steps=2, precision="bf16-true"))
    meta = read_meta(tmp_path / "adapters" / "bf16")
    assert meta.train["precision"] == "bf16-true"
    assert meta.prepare["defaults_used"] is True and meta.prepare["context_unit"] in ("tokens", "chars")
    assert "stats.json: missing" in caplog.text
    weights = load_file(tmp_path / "adapters" / "bf16" / "adapter_model.safetensors")
    assert all(w.dtype == torch.bfloat16 for w in weights.values())


@pytest.mark.slow
def test_gradient_checkpointing_gives_the_same_adapter(
    tiny_base: Path, processed_dir: Path, tmp_path: Path
) -> None:
    import torch
    from safetensors.torch import load_file

    from twin.train.loop import train

    for gc in (False, True):
        cfg = tiny_train_config(
            tiny_base, processed_dir, tmp_path / str(gc), max_steps=2, gradient_checkpointing=gc
        )
        train(cfg)
    a = load_file(tmp_path / "False" / "adapters" / "t" / "adapter_model.safetensors")
    b = load_file(tmp_path / "True" / "adapters" / "t" / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


# -- steps from the data, the best adapter kept ---------------------------------------------------


def test_steps_come_from_the_data_not_a_fixed_count(tiny_base: Path, tmp_path: Path, caplog) -> None:
    """A small chat trains for the recipe's epochs (here 3 x 48/16 = 9 steps), not a fixed step count
    that would be dozens of epochs; the choice is logged and recorded in twin.json."""
    import logging

    from twin.train.loop import train

    caplog.set_level(logging.INFO, logger="twin.train")
    data = write_processed(tmp_path / "small", n_train=48, n_val=8)
    recipe = tiny_train_config(tiny_base, data, tmp_path)
    assert recipe.max_steps is None and recipe.step_cap == 600  # pipelines/tiny.yaml: steps from epochs
    cfg = tiny_train_config(tiny_base, data, tmp_path, run="small", epochs=3, eval={"every_steps": "auto"})
    metrics = train(cfg)
    assert metrics["steps"] == 9 and metrics["epochs"] == pytest.approx(3.0)
    reason = "48 examples, 3 epochs -> 9 steps (cap 600)"
    assert reason in caplog.text and metrics["plan"]["reason"] == reason
    meta = read_meta(tmp_path / "adapters" / "small")
    assert meta.metrics["plan"]["steps"] == 9 and meta.metrics["plan"]["eval_every"] == 1
    assert meta.to_json()["budget"] == {
        "unit": "tokens",
        "seq_tokens": 384,
        "reply_tokens": 128,
        "prompt_tokens": 256,
    }
    assert meta.metrics["budget"]["reply_cut_share"] == 0.0


def test_step_plan_cap_and_explicit_steps(tiny_base: Path, processed_dir: Path, tmp_path: Path) -> None:
    from twin.train.plan import plan_steps

    cfg = tiny_train_config(tiny_base, processed_dir, tmp_path, eval={"every_steps": "auto"})
    big = plan_steps(cfg, 7129, 892)  # the bundled sample: 892 micro-batches of 8 an epoch
    assert big.steps == 600 and big.reason == (
        "7129 examples: 20 epochs would be 8920 steps, capped at 600 (1.35 epochs)"
    )
    assert big.eval_every == 60
    # under one pass the plan says what that leaves out, and the cap for one pass (0.35 epochs alone
    # did not tell a 180,000-message account that 65% of its replies were never trained on)
    huge = plan_steps(cfg, 27750, 3469)
    assert huge.steps == 600 and huge.reason == (
        "27750 examples: 20 epochs would be 34690 steps, capped at 600 (0.35 epochs: 65% of the examples "
        "never trained on; --set step_cap=1735 makes one pass)"
    )
    fixed = plan_steps(tiny_train_config(tiny_base, processed_dir, tmp_path, max_steps=50), 400, 50)
    assert fixed.steps == 50 and fixed.reason == "400 examples, max_steps 50 set -> 50 steps (2.0 epochs)"


def test_a_run_the_cap_ended_while_val_loss_fell_says_how_to_train_longer(
    tiny_base: Path, tmp_path: Path, caplog
) -> None:
    """3 epochs of 48 examples would be 9 steps; a cap of 4 ends the run while the val loss still
    falls, and the log says which step_cap to try and roughly what it costs."""
    import logging

    from twin.train.loop import train

    caplog.set_level(logging.INFO, logger="twin.train")
    data = write_processed(tmp_path / "d", n_train=48, n_val=16)
    cfg = tiny_train_config(tiny_base, data, tmp_path, run="capped", epochs=3, step_cap=4,
                            schedule={"name": "constant", "warmup_ratio": 0.0}, eval={"every_steps": 1})  # fmt: skip
    metrics = train(cfg)
    vals = [float(r["val_loss"]) for r in _rows(tmp_path / "runs" / "capped")]
    assert metrics["steps"] == 4 and vals[-1] == min(vals) and vals[-1] < 0.97 * vals[1], vals  # the premise
    fall = f"{1 - vals[-1] / vals[1]:.1%} lower than at step 2"
    assert (
        f"val loss was still falling at step 4, the step cap ({fall}; 9 steps would be 3 epochs)"
        in caplog.text
    )
    assert "--set step_cap=8 to twin train" in caplog.text


def test_no_longer_run_is_suggested_when_the_cap_did_not_end_the_learning(
    tiny_base: Path, processed_dir: Path, tmp_path: Path
) -> None:
    from twin.train.plan import longer_run_hint, plan_steps

    cfg = tiny_train_config(tiny_base, processed_dir, tmp_path, eval={"every_steps": "auto"})
    capped, uncapped = plan_steps(cfg, 7129, 892), plan_steps(cfg, 48, 6)
    # the 90,000-message account's 600-step run (bench/RESULTS.md): 4.4% off in its second half
    run = [(60, 1.9527), (120, 1.8224), (180, 1.7454), (240, 1.7246), (300, 1.6905), (360, 1.6580),
           (420, 1.6360), (480, 1.6277), (540, 1.6170), (600, 1.6156)]  # fmt: skip
    best_last = {"best_step": 600, "step": 600}
    hint = longer_run_hint(capped, best_last, run, 120.0)
    assert "(4.4% lower than at step 300; 8,920 steps would be 20 epochs)" in hint
    assert "--set step_cap=1200 " in hint and "about 2 more minutes" in hint
    assert "about 43 more seconds" in longer_run_hint(capped, best_last, run, 43.0)  # not "1 more minutes"
    flat = [*run[:5], (600, 1.6905 * 0.98)]  # the second half took 2% off: more steps pay little
    assert longer_run_hint(capped, best_last, flat, 120.0) is None
    assert (
        longer_run_hint(capped, {"best_step": 540, "step": 600}, run, 120.0) is None
    )  # the best came earlier
    assert longer_run_hint(capped, best_last, run[-1:], 120.0) is None  # nothing from the first half
    assert (
        longer_run_hint(uncapped, {"best_step": 18, "step": 18}, [(9, 2.0), (18, 1.0)], 5.0) is None
    )  # epochs ran


@pytest.mark.slow
def test_best_val_loss_adapter_is_kept_and_survives_resume(
    tiny_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """lr 0.2 makes the val loss rise after the first steps: the adapter saved is the best step's
    (its weights equal a run stopped at that step), also after a kill and --resume; patience stops."""
    import torch
    from safetensors.torch import load_file

    import twin.train.loop as loop

    data = write_processed(tmp_path / "d", n_train=48, n_val=16)
    kw = {"max_steps": 6, "optim": {"lr": 0.2}, "schedule": {"name": "constant", "warmup_ratio": 0.0},
          "eval": {"every_steps": 1, "patience": None}, "checkpoint_every_steps": 2}  # fmt: skip

    def weights(out: Path) -> dict:
        return load_file(out / "adapters" / "r" / "adapter_model.safetensors")

    m = loop.train(tiny_train_config(tiny_base, data, tmp_path / "a", run="r", **kw))
    vals = [float(r["val_loss"]) for r in _rows(tmp_path / "a" / "runs" / "r")]
    best = 1 + vals.index(min(vals))
    assert best < 6 and vals[-1] > min(vals), vals  # the premise: val loss rose after the best step
    assert m["kept"] == {"adapter": "best", "step": best, "last_val_loss": pytest.approx(vals[-1], abs=1e-5),
                         "stopped_early": False, "base_val_loss": m["kept"]["base_val_loss"]}  # fmt: skip
    assert m["val_loss"] == pytest.approx(min(vals), abs=1e-5) and m["steps"] == 6

    # The same run stopped at the best step: the same weights.
    loop.train(tiny_train_config(tiny_base, data, tmp_path / "s", run="r", **{**kw, "max_steps": best}))
    wa, ws = weights(tmp_path / "a"), weights(tmp_path / "s")
    assert wa.keys() == ws.keys() and all(torch.allclose(wa[k], ws[k], atol=1e-6) for k in wa)

    # Killed during step 5 (after the step-4 checkpoint), resumed: still the best step's adapter.
    cfg_b = tiny_train_config(tiny_base, data, tmp_path / "b", run="r", **kw)
    # a step: 2 micro-batches + 2 val batches (16 val examples / 8)
    _train_killed(monkeypatch, cfg_b, after_batches=4 * (2 + 2))
    mb = loop.train(cfg_b, resume=True)
    assert mb["kept"] == m["kept"] and mb["val_loss"] == pytest.approx(m["val_loss"], rel=1e-5)
    wb = weights(tmp_path / "b")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)

    # Patience 2: two validations without a new best stop the run; the best is still kept.
    pat = {**kw, "eval": {"every_steps": 1, "patience": 2}}
    mp = loop.train(tiny_train_config(tiny_base, data, tmp_path / "p", run="r", **pat))
    assert mp["kept"]["stopped_early"] and mp["steps"] < 6 and mp["kept"]["step"] == best


def test_the_base_is_the_bar_and_a_twin_no_better_is_named(tiny_base: Path, tmp_path: Path, caplog) -> None:
    """The base's own val loss (adapter off) is measured at the first validation, whatever the
    adapter has learnt by then; a kept adapter no better than it gets a warning."""
    data = write_processed(tmp_path / "d", n_train=48, n_val=16)
    kw = {"max_steps": 3, "schedule": {"name": "constant", "warmup_ratio": 0.0}, "eval": {"every_steps": 1}}

    def run(name: str, lr: float) -> dict:
        cfg = tiny_train_config(tiny_base, data, tmp_path / name, run="r", **kw, optim={"lr": lr})
        return loop.train(cfg)

    import twin.train.loop as loop

    with caplog.at_level("WARNING", logger="twin.train.checkpoints"):
        still = run("still", 1e-9)  # the adapter stays the base: its val loss is the base's
        caplog.clear()
        wild = run("wild", 2.0)  # every step overshoots: worse than the base at every validation
    base = still["kept"]["base_val_loss"]
    assert still["val_loss"] == pytest.approx(base, rel=1e-5)
    assert wild["kept"]["base_val_loss"] == pytest.approx(
        base, rel=1e-5
    )  # adapter off, not the step-1 weights
    assert wild["val_loss"] > base
    assert "no better than the base's own" in caplog.text


# -- one prompt budget in tokens of the base, shared by train, eval and serve ----------------------


def test_serve_fits_a_prompt_exactly_as_training_did(tiny_adapter: Path) -> None:
    """twin.json records the budget training fitted every prompt to; serving (reply_prompt_ids, the
    function twin serve calls) cuts a long conversation to the same token ids."""
    from twin.examples import encode_examples
    from twin.inference.generate import Conversation, context_counter, reply_prompt_ids
    from twin.model.load import load_tokenizer
    from twin.prompt import fit_context

    meta = read_meta(tiny_adapter)
    tok = load_tokenizer(tiny_adapter)
    train_cfg = meta.train["data"]
    assert meta.prompt_tokens == train_cfg["max_seq_length"] - train_cfg["reply_tokens"] == 256
    history = [{"role": "them" if i % 2 else "me", "text": f"turn {i} of a long talk"} for i in range(60)]
    pre_cut = (
        meta.context.context_budget,
        context_counter(meta.context, tok),
    )  # what prepare kept (stats.json)
    examples = [
        {
            "context": fit_context(history[:n], *pre_cut),
            "instruction": "so?",
            "response": "ok",
            "contact": "Bob",
        }
        for n in (2, 30, 60)
    ]
    data = encode_examples(
        examples, tok, meta.template, train_cfg["max_seq_length"], reply_tokens=train_cfg["reply_tokens"]
    )
    assert data.stats["context_trimmed"] >= 1 and data.stats["reply_cut"] == 0  # the budget cut
    for i, ex in enumerate(examples):
        served = reply_prompt_ids(
            meta, tok, Conversation(ex["context"], ex["instruction"], ex["contact"]), room=1000
        )
        assert served == data.ids[i][: data.prompt_lens[i]]
        assert len(served) <= 256


@pytest.mark.slow
def test_no_training_reply_is_cut_on_the_sample(tmp_path: Path) -> None:
    """The bundled sample, prepared and tokenized as the demo does, with pipelines/tiny.yaml's budget:
    every reply fits whole (with prepare's old 1,024-character context and no budget, 48 of 7,129
    were cut), and every prompt is within the budget."""
    from twin.examples import encode_examples, read_examples
    from twin.model.tiny import build_tiny, texts_from_dir
    from twin.prepare.config import PrepareConfig
    from twin.prepare.pipeline import run_prepare
    from twin.sources.telegram_desktop import import_desktop

    sample = Path(__file__).resolve().parents[1] / "data" / "sample" / "result.json"
    import_desktop(sample, out_root=str(tmp_path / "raw"))
    run_prepare(PrepareConfig(raw=str(tmp_path / "raw"), out=str(tmp_path / "p")))
    base = build_tiny(tmp_path / "tiny", texts_from_dir(tmp_path / "p"), seed=0)
    cfg = tiny_train_config(base, tmp_path / "p", tmp_path)
    from twin.model.load import load_tokenizer

    tok = load_tokenizer(base)
    rows = read_examples(tmp_path / "p" / "train.jsonl")
    data = encode_examples(rows, tok, "plain-v1", cfg.data.max_seq_length, reply_tokens=cfg.data.reply_tokens)
    assert data.stats["reply_cut"] == 0 and data.stats["dropped_prompt_too_long"] == 0
    assert max(data.prompt_lens) <= cfg.data.max_seq_length - cfg.data.reply_tokens
    assert data.stats["context_trimmed"] < 0.1 * len(rows)  # most prompts keep all their context


def test_the_bar_says_validating_while_it_waits_and_its_figures_come_back() -> None:
    """A validation left the bar still for 11 s on a busy 2-core machine with only the last loss on it."""
    import io

    from tqdm import tqdm

    from twin.train.loop import saying

    out = io.StringIO()
    bar = tqdm(total=10, file=out, ncols=100, mininterval=0)
    bar.set_postfix(loss="1.234")
    with saying(bar, "validating"):
        assert "validating" in out.getvalue().rsplit("\r", 1)[-1]  # on screen before the wait, not after
        assert "loss" not in bar.postfix
    assert bar.postfix == "loss=1.234"
    bar.close()
