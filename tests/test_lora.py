"""Adapters: per-architecture targets, LoRA vs DoRA, LoRA+ learning rates, a DoRA+LoRA+ run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.training import tiny_train_config

from twin.errors import TwinError
from twin.model.load import load_base
from twin.model.lora import apply_lora, param_groups, target_modules_for
from twin.train.config import LoraConfig


def test_target_modules_per_architecture() -> None:
    assert target_modules_for("falcon") == ["query_key_value"]
    every_linear = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert target_modules_for("llama") == every_linear  # the families' practice: attention and MLP
    assert target_modules_for("qwen2") == every_linear
    assert target_modules_for("bloom") == ["query_key_value"]  # from peft's own table
    assert target_modules_for("falcon", "all-linear") == "all-linear"
    assert target_modules_for("falcon", ["dense"]) == ["dense"]
    with pytest.raises(TwinError, match="no default for model type 'mystery'"):
        target_modules_for("mystery")


def _lora_names(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_falcon_lora_only_adapters_train(tiny_base: Path) -> None:
    model, _ = load_base(tiny_base)
    cfg = model.config
    peft_model = apply_lora(model, LoraConfig(r=4))
    names = _lora_names(peft_model)
    assert names and all("lora_" in n and "query_key_value" in n for n in names)
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    per_layer = 4 * cfg.hidden_size + 4 * (cfg.hidden_size + 2 * head_dim)  # A: r x in, B: out x r
    assert (
        sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
        == cfg.num_hidden_layers * per_layer
    )


def test_dora_and_all_linear(tiny_base: Path) -> None:
    model, _ = load_base(tiny_base)
    peft_model = apply_lora(model, LoraConfig(r=4, method="dora", target_modules="all-linear"))
    names = _lora_names(peft_model)
    assert any("lora_magnitude_vector" in n for n in names)  # DoRA's magnitude
    for module in ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"):
        assert any(f".{module}.lora_A" in n for n in names), module
    assert not any("lm_head" in n for n in names)
    with pytest.raises(TwinError, match="none of"):
        apply_lora(load_base(tiny_base)[0], LoraConfig(target_modules=["q_proj"]))


def _targets(peft_model) -> set[str]:
    return {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in _lora_names(peft_model)}


def test_llama_and_qwen2_target_every_attention_and_mlp_linear() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    shape = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    for model in (LlamaForCausalLM(LlamaConfig(**shape)), Qwen2ForCausalLM(Qwen2Config(**shape))):
        peft_model = apply_lora(model, LoraConfig(r=2))
        assert _targets(peft_model) == {
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        }
        assert not any("lm_head" in n or "embed" in n for n in _lora_names(peft_model))


def test_unknown_architecture_lists_its_linear_layers() -> None:
    from transformers import Starcoder2Config, Starcoder2ForCausalLM

    model = Starcoder2ForCausalLM(
        Starcoder2Config(
            vocab_size=64,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=4,
            num_key_value_heads=2,
        )  # fmt: skip
    )
    with pytest.raises(TwinError) as err:
        apply_lora(model, LoraConfig(r=2))
    msg = str(err.value)
    assert (
        "\n" not in msg and "no default for model type 'starcoder2'" in msg and "lora.target_modules" in msg
    )
    assert "(c_fc, c_proj, k_proj, o_proj, q_proj, v_proj)" in msg  # every Linear below the head
    assert "lm_head" not in msg
    # the names it lists are the ones to choose from: picking two works
    assert _targets(apply_lora(model, LoraConfig(r=2, target_modules=["c_fc", "q_proj"]))) == {
        "c_fc",
        "q_proj",
    }


def test_loraplus_gives_b_its_own_learning_rate(tiny_base: Path) -> None:
    peft_model = apply_lora(load_base(tiny_base)[0], LoraConfig(r=4))
    plain = param_groups(peft_model, 1e-3, 0.0, None)
    assert len(plain) == 1 and plain[0]["lr"] == 1e-3
    groups = {g["name"]: g for g in param_groups(peft_model, 1e-3, 0.0, 16)}
    assert groups["lora"]["lr"] == 1e-3 and groups["lora_B"]["lr"] == pytest.approx(1.6e-2)
    b_ids = {id(p) for n, p in peft_model.named_parameters() if "lora_B" in n}
    assert {id(p) for p in groups["lora_B"]["params"]} == b_ids
    assert not b_ids & {id(p) for p in groups["lora"]["params"]}


@pytest.mark.slow
def test_dora_with_loraplus_trains_and_saves(tiny_base: Path, processed_dir: Path, tmp_path: Path) -> None:
    from twin.train.loop import train

    cfg = tiny_train_config(
        tiny_base, processed_dir, tmp_path, run="dora", max_steps=2,
        lora={"method": "dora", "loraplus_lr_ratio": 16}, schedule={"name": "constant_with_warmup"},
    )  # fmt: skip
    metrics = train(cfg)
    assert metrics["steps"] == 2
    adapter_cfg = json.loads((tmp_path / "adapters" / "dora" / "adapter_config.json").read_text())
    assert adapter_cfg["use_dora"] is True


def test_train_embeddings_adds_every_embedding_row_and_only_the_tiny_recipe_asks(tiny_base: Path) -> None:
    from twin.config import load_config
    from twin.train.config import TrainConfig

    model, _ = load_base(tiny_base)
    vocab, hidden = model.config.vocab_size, model.config.hidden_size
    plain = sum(
        p.numel()
        for p in apply_lora(load_base(tiny_base)[0], LoraConfig(r=4)).parameters()
        if p.requires_grad
    )
    peft_model = apply_lora(model, LoraConfig(r=4, train_embeddings=True))
    rows = {n: p.numel() for n, p in peft_model.named_parameters() if p.requires_grad and "lora_" not in n}
    assert list(rows.values()) == [vocab * hidden] and "word_embeddings" in next(
        iter(rows)
    )  # tied head: no copy
    assert sum(p.numel() for p in peft_model.parameters() if p.requires_grad) == plain + vocab * hidden
    recipes = Path(__file__).resolve().parents[1] / "pipelines"
    asks = {
        f.stem: load_config(TrainConfig, f, {}).lora.train_embeddings for f in sorted(recipes.glob("*.yaml"))
    }
    assert asks.pop("tiny") is True and asks and not any(asks.values())  # real bases know the language
