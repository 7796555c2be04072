"""`twin merge`: the merged dir loads with plain transformers and gives the adapter-on-base logits."""

from __future__ import annotations

import json

import pytest
import torch

from twin.errors import TwinError


@pytest.fixture(scope="module")
def lora_adapter(tiny_base, tmp_path_factory):
    """A LoRA adapter on the tiny base with non-zero B (so merging really changes the weights)."""
    from peft import LoraConfig, get_peft_model

    from twin.model.load import base_fingerprint, load_base

    model, tok = load_base(tiny_base)
    torch.manual_seed(1)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["query_key_value"], init_lora_weights=False)
    peft_model = get_peft_model(model, cfg)
    out = tmp_path_factory.mktemp("adapter") / "a"
    peft_model.save_pretrained(out)
    tok.save_pretrained(out)
    meta = {
        "format": 1,
        "base_model": {
            "path": str(tiny_base),
            "fingerprint": base_fingerprint(tiny_base),
            "model_type": "falcon",
        },
        "template": "plain-v1",
        "prepare": {"max_context_tokens": 256, "context_unit": "tokens"},
        "train": {},
        "metrics": {},
        "created": "2026-01-01T00:00:00Z",
    }
    (out / "twin.json").write_text(json.dumps(meta))
    return out


def test_merged_matches_adapter_on_base_and_loads_without_peft(tiny_base, lora_adapter, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from twin.model.load import load_base
    from twin.publish.merge import merge_adapter

    out = merge_adapter(None, lora_adapter, tmp_path / "merged", max_shard_size="100KB")
    shards = sorted(out.glob("model-*.safetensors"))
    assert len(shards) > 1 and (out / "model.safetensors.index.json").is_file()  # --max-shard-size honoured
    assert not (out / "adapter_config.json").exists()
    info = json.loads((out / "twin_merged.json").read_text())
    assert info["template"] == "plain-v1"

    tok = AutoTokenizer.from_pretrained(str(out))  # tokenizer included
    ids = torch.tensor([tok("hey! how are you doing today?")["input_ids"]])
    merged = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    assert type(merged).__name__ == "FalconForCausalLM"

    base, _ = load_base(tiny_base)
    with torch.no_grad():
        base_logits = base(ids).logits
    on_base = PeftModel.from_pretrained(base, str(lora_adapter)).eval()
    with torch.no_grad():
        want = on_base(ids).logits
        got = merged(ids).logits
    assert (want - base_logits).abs().max() > 1e-3  # the adapter matters...
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)  # ...and the merge keeps it exactly


def test_merge_refuses_foreign_dir_and_wrong_base(tiny_base, lora_adapter, tmp_path):
    from twin.publish.merge import merge_adapter

    foreign = tmp_path / "important"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(TwinError, match="not a twin merge output"):
        merge_adapter(tiny_base, lora_adapter, foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"

    other = tmp_path / "other-base"
    other.mkdir()
    for f in tiny_base.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((other / "config.json").read_text())
    cfg["layer_norm_epsilon"] = 1e-6
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(TwinError, match="different base"):
        merge_adapter(other, lora_adapter, tmp_path / "m2")


def test_cli_merge_then_export_gguf(lora_adapter, tmp_path):
    from gguf import GGUFReader
    from typer.testing import CliRunner

    from twin.cli import app

    runner = CliRunner()
    merged = tmp_path / "merged" / "me"
    res = runner.invoke(app, ["merge", "--adapter", str(lora_adapter), "--out", str(merged)])
    assert res.exit_code == 0, res.output
    assert "from_pretrained" in res.output
    # rerun over its own output is allowed (idempotent), and leaves no temp dirs behind
    res = runner.invoke(app, ["merge", "--adapter", str(lora_adapter), "--out", str(merged)])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in merged.parent.iterdir()) == ["me"]

    out = tmp_path / "gguf"
    res = runner.invoke(app, ["export-gguf", "--model", str(merged), "--out", str(out), "--type", "q8_0"])
    assert res.exit_code == 0, res.output
    r = GGUFReader(out / "me-q8_0.gguf")
    assert r.fields["twin.template"].contents() == "plain-v1"  # read from twin_merged.json
    assert r.fields["general.name"].contents() == "me"
    assert "FROM ./me-q8_0.gguf" in (out / "Modelfile").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["Modelfile", "me-q8_0.gguf"]
