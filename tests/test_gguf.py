"""`twin export-gguf`: read the file back with gguf's own reader (names, shapes, metadata, data)."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from twin.errors import TwinError
from twin.publish.gguf import PLAIN_V1_GO_TEMPLATE, export_gguf, qkv_to_gguf


def _hf_tensors(model_dir):
    from safetensors.numpy import load_file

    return load_file(str(model_dir / "model.safetensors"))


@pytest.fixture(scope="module")
def exported(tiny_base, tmp_path_factory):
    out = tmp_path_factory.mktemp("gguf")
    return {t: export_gguf(tiny_base, out, outtype=t, name="twin") for t in ("f16", "q8_0")}


def _field(reader, key):
    return reader.fields[key].contents()


def test_f16_names_shapes_metadata_and_data(tiny_base, exported):
    from gguf import GGUFReader

    cfg = json.loads((tiny_base / "config.json").read_text())
    n_layer, hidden, vocab = cfg["num_hidden_layers"], cfg["hidden_size"], cfg["vocab_size"]
    r = GGUFReader(exported["f16"]["gguf"])
    tensors = {t.name: t for t in r.tensors}
    expected = {"token_embd.weight", "output_norm.weight", "output_norm.bias"}
    for i in range(n_layer):
        expected |= {
            f"blk.{i}.{n}"
            for n in (
                "attn_norm.weight",
                "attn_norm.bias",
                "attn_qkv.weight",
                "attn_output.weight",
                "ffn_up.weight",
                "ffn_down.weight",
            )
        }
    assert set(tensors) == expected  # tied lm_head: no output.weight (llama.cpp reuses token_embd)
    head_dim = hidden // cfg["num_attention_heads"]
    # GGUF lists dimensions innermost first (the reverse of torch)
    assert list(tensors["token_embd.weight"].shape) == [hidden, vocab]
    assert list(tensors["blk.0.attn_qkv.weight"].shape) == [
        hidden,
        (cfg["num_attention_heads"] + 2) * head_dim,
    ]
    assert list(tensors["blk.0.ffn_up.weight"].shape) == [hidden, 4 * hidden]
    assert tensors["blk.0.attn_qkv.weight"].tensor_type.name == "F16"
    assert tensors["blk.0.attn_norm.weight"].tensor_type.name == "F32"

    assert _field(r, "general.architecture") == "falcon"
    assert _field(r, "general.file_type") == 1
    assert _field(r, "falcon.block_count") == n_layer
    assert _field(r, "falcon.attention.head_count") == cfg["num_attention_heads"]
    assert _field(r, "falcon.attention.head_count_kv") == 1  # multi-query, as HF's modeling code uses it
    assert _field(r, "falcon.embedding_length") == hidden
    assert _field(r, "falcon.tensor_data_layout") == "jploski"
    assert _field(r, "tokenizer.ggml.model") == "gpt2"
    assert _field(r, "tokenizer.ggml.pre") == "gpt-2"
    tokens = _field(r, "tokenizer.ggml.tokens")
    assert len(tokens) == vocab
    tok = json.loads((tiny_base / "tokenizer.json").read_text())
    assert tokens[_field(r, "tokenizer.ggml.eos_token_id")] == "<|endoftext|>"
    assert tokens[_field(r, "tokenizer.ggml.padding_token_id")] == "<|pad|>"
    assert _field(r, "tokenizer.ggml.token_type")[0] == 3  # special -> CONTROL
    assert len(_field(r, "tokenizer.ggml.merges")) == len(tok["model"]["merges"])
    assert _field(r, "twin.template") == "plain-v1"

    hf = _hf_tensors(tiny_base)
    emb = np.asarray(tensors["token_embd.weight"].data).reshape(vocab, hidden)
    np.testing.assert_allclose(
        emb, hf["transformer.word_embeddings.weight"].astype(np.float16), rtol=0, atol=0
    )
    qkv = np.asarray(tensors["blk.1.attn_qkv.weight"].data)
    np.testing.assert_array_equal(
        qkv, hf["transformer.h.1.self_attention.query_key_value.weight"].astype(np.float16)
    )


def test_q8_0_quantizes_matrices_and_keeps_norms(tiny_base, exported):
    from gguf import GGUFReader
    from gguf.quants import dequantize

    r = GGUFReader(exported["q8_0"]["gguf"])
    assert _field(r, "general.file_type") == 7
    t = {x.name: x for x in r.tensors}
    assert t["blk.0.ffn_down.weight"].tensor_type.name == "Q8_0"
    assert t["output_norm.weight"].tensor_type.name == "F32"
    hf = _hf_tensors(tiny_base)["transformer.h.0.mlp.dense_4h_to_h.weight"]
    got = dequantize(np.asarray(t["blk.0.ffn_down.weight"].data), t["blk.0.ffn_down.weight"].tensor_type)
    got = got.reshape(hf.shape)
    # Q8_0: 8-bit per value with one scale per 32: error within half a step of each block's max
    assert np.max(np.abs(got - hf)) <= np.max(np.abs(hf)) / 127 * 0.51 + 1e-6
    assert np.abs(got - hf).mean() > 0  # it really is quantized


def test_qkv_rearranged_from_kv_groups_by_hand():
    # 4 query heads in 2 KV groups, head_dim 1: HF rows are [q0 q1 k0 v0 | q2 q3 k1 v1].
    labels = ["q0", "q1", "k0", "v0", "q2", "q3", "k1", "v1"]
    w = np.arange(8, dtype=np.float32)[:, None] * np.ones((1, 3), dtype=np.float32)
    out = qkv_to_gguf(w, n_head=4, n_head_kv=2)
    assert [labels[int(v)] for v in out[:, 0]] == ["q0", "q1", "q2", "q3", "k0", "k1", "v0", "v1"]
    # one KV group (Falcon-7B, the tiny Falcon): unchanged
    np.testing.assert_array_equal(qkv_to_gguf(w[:6], n_head=4, n_head_kv=1), w[:6])


def test_modelfile_carries_template_stops_and_sampling(exported):
    with open(exported["q8_0"]["modelfile"], encoding="utf-8") as f:
        text = f.read()
    assert "FROM ./twin-q8_0.gguf" in text
    assert 'TEMPLATE """You are chatting with a friend.' in text
    assert '### Your response:\n"""' in text
    assert 'PARAMETER stop "###"' in text and 'PARAMETER stop "<|endoftext|>"' in text
    for p in ("temperature 0.7", "top_p 0.9", "top_k 50", "repeat_penalty 1.1", "num_predict 64"):
        assert f"PARAMETER {p}" in text


GO_RENDER = r"""
package main

import (
	"encoding/json"
	"os"
	"text/template"
)

type Message struct{ Role, Content string }

func main() {
	src, _ := os.ReadFile(os.Args[1])
	var msgs []Message
	json.Unmarshal([]byte(os.Args[2]), &msgs)
	t := template.Must(template.New("t").Parse(string(src)))
	if err := t.Execute(os.Stdout, map[string]any{"Messages": msgs}); err != nil {
		panic(err)
	}
}
"""


@pytest.mark.skipif(
    shutil.which("go") is None, reason="Go toolchain not installed (apt-get install golang-go)"
)
def test_go_template_renders_exactly_the_plain_v1_prompt(tmp_path):
    from twin.prompt import build_prompt

    (tmp_path / "t.tmpl").write_text(PLAIN_V1_GO_TEMPLATE)
    (tmp_path / "main.go").write_text(GO_RENDER)
    cases = [
        ([], "hi there"),
        ([{"role": "them", "text": "hey"}, {"role": "me", "text": "yo 🙂"}], "как дела?"),
    ]
    for context, message in cases:
        msgs = [{"Role": "system", "Content": "ignored"}]
        msgs += [
            {"Role": "assistant" if t["role"] == "me" else "user", "Content": t["text"]} for t in context
        ]
        msgs.append({"Role": "user", "Content": message})
        out = subprocess.run(
            ["go", "run", str(tmp_path / "main.go"), str(tmp_path / "t.tmpl"), json.dumps(msgs)],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
            cwd=tmp_path,
            env={
                **__import__("os").environ,
                "GOCACHE": str(tmp_path / "gocache"),
                "GOPATH": str(tmp_path / "gopath"),
            },
        ).stdout
        assert out == build_prompt(context, message)


def test_bad_inputs_are_twin_errors(tmp_path, tiny_base):
    with pytest.raises(TwinError, match="not found"):
        export_gguf(tmp_path / "nope", tmp_path / "out")
    with pytest.raises(TwinError, match="f16, q8_0"):
        export_gguf(tiny_base, tmp_path / "out", outtype="q4")
    other = tmp_path / "llama"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(TwinError, match="convert_hf_to_gguf"):
        export_gguf(other, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.gguf"))


def test_llama_cpp_loads_and_matches_transformers(tiny_base, exported):
    llama_cpp = pytest.importorskip(
        "llama_cpp", reason="llama-cpp-python not installed (optional, builds from source: make llama-cpp)"
    )
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    llm = llama_cpp.Llama(
        model_path=exported["f16"]["gguf"], n_ctx=256, logits_all=True, verbose=False, seed=0
    )
    tok = AutoTokenizer.from_pretrained(str(tiny_base))
    text = "hey! how are you doing today?"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert llm.tokenize(text.encode(), add_bos=False, special=False) == ids  # same BPE
    llm.eval(ids)
    got = np.array(llm.scores[len(ids) - 1])
    model = AutoModelForCausalLM.from_pretrained(str(tiny_base), dtype=torch.float32).eval()
    with torch.no_grad():
        want = model(torch.tensor([ids])).logits[0, -1].numpy()
    np.testing.assert_allclose(got, want, atol=2e-2 * max(1.0, np.abs(want).max()))
    out = llm("Me: hi\nThem:", max_tokens=5, temperature=0)
    assert out["usage"]["completion_tokens"] >= 1
