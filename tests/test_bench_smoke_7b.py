"""bench/bench_7b.py's build step at toy width: Falcon-7B's switches, random bf16 shards, padded tokenizer."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `bench` is a folder of the repo, not an installed package
    sys.path.insert(0, str(ROOT))

from bench.__main__ import discover  # noqa: E402
from bench.bench_7b import FALCON_7B, QUICK, SPECIAL, build_base, build_tokenizer  # noqa: E402
from twin.model.tiny import fallback_texts  # noqa: E402


def test_the_7b_bench_is_opt_in() -> None:
    assert "bench_7b" not in discover()  # 14 GB and ~30 min: only `make bench-7b` / `--only bench_7b`


@pytest.mark.slow
def test_build_base_writes_loadable_bf16_shards_and_a_tokenizer_of_the_exact_size(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    vocab = QUICK["vocab_size"]
    tok = build_tokenizer(tmp_path / "tok", fallback_texts(), vocab)
    assert (
        len(tok) == vocab and tok.eos_token_id == SPECIAL.index("<|endoftext|>") == FALCON_7B["eos_token_id"]
    )
    base = tmp_path / "base"
    info = build_base(base, 2, tmp_path / "tok", overrides=QUICK, max_shard_bytes=1_000_000)
    index = json.loads((base / "model.safetensors.index.json").read_text())
    shards = sorted(base.glob("model-*.safetensors"))
    assert len(shards) > 2 and set(index["weight_map"].values()) == {s.name for s in shards}
    stored = {}
    for shard in shards:
        with safe_open(str(shard), "pt") as st:
            names = list(st.keys())
            stored.update({n: st.get_tensor(n) for n in names})
        assert len(names) == 1 or shard.stat().st_size <= 1_000_000 + 10_000  # one big tensor alone
    assert all(t.dtype == torch.bfloat16 for t in stored.values())
    assert "lm_head.weight" not in stored  # tied to the embedding, as in Falcon-7B's files
    assert info["parameters"] == sum(t.numel() for t in stored.values())
    assert index["metadata"]["total_size"] == 2 * info["parameters"]

    model = AutoModelForCausalLM.from_pretrained(str(base))
    cfg = model.config
    assert (cfg.hidden_size, cfg.num_attention_heads, cfg.num_hidden_layers) == (284, 71, 2)
    assert cfg.multi_query and cfg.parallel_attn and not cfg.alibi and not cfg.bias
    assert not cfg.new_decoder_architecture and cfg.vocab_size == len(AutoTokenizer.from_pretrained(base))
    assert model.dtype == torch.bfloat16
    assert model.lm_head.weight.data_ptr() == model.transformer.word_embeddings.weight.data_ptr()
    for name, p in model.named_parameters():  # every weight is the stored one, none re-initialised
        assert torch.equal(p, stored[name]), name
    qkv = stored["transformer.h.0.self_attention.query_key_value.weight"]
    assert qkv.shape == (284 + 2 * 4, 284) and abs(qkv.float().std().item() - 0.02) < 0.002
    assert torch.all(stored["transformer.h.1.input_layernorm.weight"] == 1)
    # A complete dir is reused, not rebuilt.
    mtime = shards[0].stat().st_mtime_ns
    assert build_base(base, 2, tmp_path / "tok", overrides=QUICK) == info
    assert shards[0].stat().st_mtime_ns == mtime
