"""The tiny Falcon and the base-model loader: real models, real files, clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from devkit.adapters import edited_copy, edited_meta, on_other_base
from twin.errors import TwinError
from twin.model.load import base_fingerprint, check_base_dir, load_base


def test_tiny_base_loads_with_falcon_7b_architecture(tiny_base: Path) -> None:
    model, tok = load_base(tiny_base)
    cfg = model.config
    assert type(model).__name__ == "FalconForCausalLM"
    assert cfg.model_type == "falcon"
    assert cfg.multi_query and cfg.parallel_attn and not cfg.alibi and not cfg.bias
    assert not cfg.new_decoder_architecture
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    assert {"query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"} <= names
    # Multi-query: one shared key/value head -> fused projection is hidden + 2 * head_dim wide.
    qkv = model.transformer.h[0].self_attention.query_key_value
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    assert qkv.weight.shape == (cfg.hidden_size + 2 * head_dim, cfg.hidden_size)
    assert qkv.bias is None
    # Tokenizer: byte-level BPE with distinct eos and pad; any text round-trips.
    assert tok.eos_token_id is not None and tok.pad_token_id is not None
    assert tok.eos_token_id != tok.pad_token_id
    assert cfg.eos_token_id == tok.eos_token_id and cfg.vocab_size == len(tok)
    text = "hey, как дела? 🙂 see you at 7"
    assert tok.decode(tok(text).input_ids) == text


def test_tiny_base_generates_tokens(tiny_base: Path) -> None:
    import torch

    model, tok = load_base(tiny_base)
    enc = tok("hello there", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=4, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] > enc.input_ids.shape[1]


def test_load_base_dtype(tiny_base: Path) -> None:
    import torch

    model, _ = load_base(tiny_base, dtype="bf16")
    assert next(model.parameters()).dtype == torch.bfloat16
    with pytest.raises(TwinError, match="dtype"):
        load_base(tiny_base, dtype="float8")


def test_fingerprint_is_stable_and_tracks_tokenizer(tiny_base: Path, tmp_path: Path) -> None:
    fp = base_fingerprint(tiny_base)
    assert fp.startswith("v2:sha256:") and fp == base_fingerprint(tiny_base)
    copy = tmp_path / "copy"
    shutil.copytree(tiny_base, copy)
    assert base_fingerprint(copy) == fp  # identity is content, not location
    tok = json.loads((copy / "tokenizer.json").read_text())
    tok["added_tokens"][0]["content"] = "<|other|>"
    (copy / "tokenizer.json").write_text(json.dumps(tok))
    assert base_fingerprint(copy) != fp


@pytest.mark.parametrize(
    ("remove", "message"),
    [
        ("config.json", "no config.json"),
        ("model.safetensors", "no weights"),
        ("tokenizer.json", "no tokenizer"),
    ],
)
def test_incomplete_base_dir_is_a_clear_error(
    tiny_base: Path, tmp_path: Path, remove: str, message: str
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_base, broken)
    (broken / remove).unlink()
    with pytest.raises(TwinError, match=message) as e:
        load_base(broken)
    assert str(broken) in str(e.value) and "\n" not in str(e.value)


def test_missing_base_dir(tmp_path: Path) -> None:
    # `make train` before `make tiny`: the line names the make target the README uses
    with pytest.raises(TwinError, match="not found; build one with `make tiny`.*`make download MODEL=REPO`"):
        check_base_dir(tmp_path / "nope")


def test_quantize_without_cuda_fails_before_loading(tiny_base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    import transformers

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)

    def _boom(*a, **k):  # loading must not even start
        raise AssertionError("model load attempted")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", _boom)
    for q in ("nf4", "int8"):
        with pytest.raises(TwinError, match="CUDA"):
            load_base(tiny_base, quantize=q)
    with pytest.raises(TwinError, match="unknown"):
        load_base(tiny_base, quantize="int3")


@pytest.mark.slow
def test_build_tiny_is_deterministic_and_pretraining_lowers_loss(tmp_path: Path) -> None:
    from twin.model.tiny import build_tiny, fallback_texts

    a = build_tiny(tmp_path / "a", seed=1, pretrain_steps=40, hidden_size=64, num_layers=2)
    b = build_tiny(tmp_path / "b", seed=1, pretrain_steps=40, hidden_size=64, num_layers=2)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    info = json.loads((a / "tiny.json").read_text())
    first, last = info["pretrain_loss"]
    assert last < first * 0.8
    # Rebuilding over an existing dir replaces it whole.
    build_tiny(a, fallback_texts()[:5], seed=2, hidden_size=64, num_layers=2)
    assert json.loads((a / "tiny.json").read_text())["documents"] == 5
    assert not list(tmp_path.glob(".a*"))


def test_resolve_base_defaults_to_the_recorded_base_and_checks_its_fingerprint(
    tiny_base: Path, tiny_adapter: Path, tmp_path: Path
) -> None:
    from twin.model.load import resolve_base

    assert resolve_base(tiny_adapter) == tiny_base  # from twin.json
    assert resolve_base(tiny_adapter, tiny_base) == tiny_base  # explicit, same model

    # another model: the fingerprint covers the config
    other = edited_copy(tiny_base, tmp_path / "other-base", "config.json", _one_more_layer)
    with pytest.raises(TwinError, match="different base"):
        resolve_base(tiny_adapter, other)

    gone = str(tmp_path / "gone")
    moved = edited_meta(tiny_adapter, tmp_path / "adapter-of-a-moved-base", base_model={"path": gone})
    with pytest.raises(TwinError, match=r"not found; pass --base DIR"):
        resolve_base(moved)
    assert resolve_base(moved, tiny_base) == tiny_base


def _one_more_layer(cfg: dict) -> None:
    cfg["num_hidden_layers"] += 1


def _other_weights(tiny_base: Path, dst: Path) -> Path:
    """A copy of the base whose weights differ in one tensor only: same config, tokenizer, header, size."""
    import struct

    shutil.copytree(tiny_base, dst)
    f = dst / "model.safetensors"
    raw = f.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    name = sorted(k for k in header if k != "__metadata__")[len(header) // 2]
    begin = 8 + n + header[name]["data_offsets"][0]
    with f.open("r+b") as w:
        w.seek(begin)
        w.write(bytes(b ^ 0x40 for b in raw[begin : begin + 8]))  # flip one bit in four weights
    return dst


def test_fingerprint_covers_weights_and_refuses_an_adapter_on_other_weights(
    tiny_base: Path, tiny_adapter: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from twin.model.fingerprint import cache_file
    from twin.model.load import resolve_base

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    other = _other_weights(tiny_base, tmp_path / "other-weights")
    assert (other / "model.safetensors").stat().st_size == (tiny_base / "model.safetensors").stat().st_size
    assert base_fingerprint(other) != base_fingerprint(tiny_base)
    with pytest.raises(TwinError, match="different base") as e:
        resolve_base(tiny_adapter, other)
    assert "\n" not in str(e.value)
    # The digest is cached outside the model dir, keyed by path, size and mtime.
    assert str(other.resolve()) in cache_file().read_text()
    assert sorted(p.name for p in other.iterdir()) == sorted(p.name for p in tiny_base.iterdir())


def test_an_adapter_whose_recorded_base_was_rebuilt_says_to_train_again(
    tiny_base: Path, tiny_adapter: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make tiny` run again writes over the base an adapter recorded: without --base the error says
    to train again (the old base is gone), not only to pass it with --base."""
    from twin.model.load import resolve_base

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    rebuilt = _other_weights(tiny_base, tmp_path / "tiny-falcon")
    adapter = tmp_path / "adapters" / "me"
    shutil.copytree(tiny_adapter, adapter)
    meta = json.loads((adapter / "twin.json").read_text())
    meta["base_model"]["path"] = str(rebuilt)
    (adapter / "twin.json").write_text(json.dumps(meta))
    with pytest.raises(TwinError, match=r"changed since training .*make train RUN=me") as e:
        resolve_base(adapter)
    assert "\n" not in str(e.value)
    with pytest.raises(TwinError, match="different base") as e:  # --base given: that one is wrong
        resolve_base(adapter, rebuilt)
    assert "make train" not in str(e.value)


def test_fingerprint_of_a_read_only_base_and_an_unwritable_cache(
    tiny_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ro = tmp_path / "ro-base"
    shutil.copytree(tiny_base, ro)
    blocked = tmp_path / "no-cache"
    blocked.write_text("a file where the cache dir would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    for p in [*ro.iterdir(), ro]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in ro.iterdir())
    try:
        assert base_fingerprint(ro) == base_fingerprint(tiny_base)
        assert sorted((p.name, p.stat().st_mtime_ns) for p in ro.iterdir()) == before  # nothing written
    finally:
        for p in [ro, *ro.iterdir()]:
            p.chmod(0o755 if p.is_dir() else 0o644)


def test_an_adapter_with_the_old_fingerprint_keeps_working_with_a_warning(
    tiny_base: Path, tiny_adapter: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from twin.model.load import legacy_fingerprint, resolve_base

    legacy = legacy_fingerprint(tiny_base)  # as twin.json files before v2
    old = on_other_base(tiny_adapter, tmp_path / "old-adapter", fingerprint=legacy)
    assert legacy.startswith("sha256:")
    assert resolve_base(old) == tiny_base
    assert "older base fingerprint" in caplog.text and "not weights" in caplog.text
    other = edited_copy(tiny_base, tmp_path / "other-config", "config.json", _one_more_layer)
    with pytest.raises(TwinError, match="different base"):
        resolve_base(old, other)


def test_weight_loading_bar_only_for_a_big_checkpoint(
    tiny_base: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from transformers.utils import logging as hf_logging

    import twin.model.load as load_module

    hf_logging.enable_progress_bar()
    load_base(tiny_base)
    assert "Loading weights" not in capfd.readouterr().err  # a tiny base loads too fast for a bar
    assert hf_logging.is_progress_bar_enabled()  # and the setting is the user's again afterwards
    monkeypatch.setattr(load_module, "_QUIET_LOAD_BYTES", 0)  # as if the checkpoint were a 7B
    load_base(tiny_base)
    assert "Loading weights" in capfd.readouterr().err


def test_building_a_tiny_base_prints_no_shard_bar(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from transformers.utils import logging as hf_logging

    from twin.model.tiny import build_tiny, fallback_texts

    hf_logging.enable_progress_bar()
    build_tiny(tmp_path / "t", fallback_texts()[:5], seed=1, pretrain_steps=0, hidden_size=64, num_layers=2)
    assert "Writing model shards" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()
