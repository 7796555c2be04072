"""`twin publish gguf`: read the files back with gguf's own reader (names, shapes, metadata, data) and
load them in llama.cpp: the tiny Falcon, and Llama 3- / Qwen2-shaped tiny models merged and as
GGUF LoRA adapters on top of their base."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from twin.errors import TwinError
from twin.publish.gguf import export_adapter_gguf, export_gguf
from twin.publish.gguf_arch import permute_rope_rows, qkv_to_gguf
from twin.publish.ollama import PLAIN_V1_GO_TEMPLATE


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


@pytest.fixture(scope="module")
def go_render(tmp_path_factory):
    """Render an Ollama Go template over messages with Go's own text/template (built once)."""
    if shutil.which("go") is None:
        pytest.skip("Go toolchain not installed (apt-get install golang-go)")
    d = tmp_path_factory.mktemp("go")
    (d / "main.go").write_text(GO_RENDER)
    env = {**os.environ, "GOCACHE": str(d / "gocache"), "GOPATH": str(d / "gopath"), "GO111MODULE": "off"}
    subprocess.run(
        ["go", "build", "-o", str(d / "render"), str(d / "main.go")], check=True, timeout=300, env=env
    )

    def render(template: str, msgs: list[dict]) -> str:
        (d / "t.tmpl").write_text(template)
        out = subprocess.run(
            [str(d / "render"), str(d / "t.tmpl"), json.dumps(msgs)],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout

    return render


def _go_messages(context, message, system="ignored"):
    msgs = [{"Role": "system", "Content": system}]
    msgs += [{"Role": "assistant" if t["role"] == "me" else "user", "Content": t["text"]} for t in context]
    return [*msgs, {"Role": "user", "Content": message}]


CASES = [
    ([], "hi there"),
    ([{"role": "them", "text": "hey"}, {"role": "me", "text": "yo 🙂"}], "как дела?"),
]


def test_go_template_renders_exactly_the_plain_v1_prompt(go_render):
    from twin.prompt import build_prompt

    for context, message in CASES:
        assert go_render(PLAIN_V1_GO_TEMPLATE, _go_messages(context, message)) == build_prompt(
            context, message
        )


def test_bad_inputs_are_twin_errors(tmp_path, tiny_base):
    with pytest.raises(TwinError, match="not found"):
        export_gguf(tmp_path / "nope", tmp_path / "out")
    with pytest.raises(TwinError, match="f16, q8_0"):
        export_gguf(tiny_base, tmp_path / "out", outtype="q4")
    other = tmp_path / "gpt2"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
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


# ---------------------------------------------------------------- Llama 3 and Qwen2 families

FAMILY_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"]
CHAT_CONTEXT = [
    {"role": "them", "text": "hey! called you 12345 times\n\nwhere are you?"},
    {"role": "me", "text": "привет!!  sorry, on the bus"},
]
CHAT_MESSAGE = "ok see you at 7:30 then"


def _sharp_base(arch, out):
    """A tiny ``arch`` base whose attention is sharp enough for positions to matter.

    At random initialisation attention is nearly uniform, so a wrong rotary layout (e.g. Llama's
    Q/K not permuted) moves the logits by less than 2%; Q and K scaled by 8 (and the head by 4,
    for a logit range of a few units) make the same mistake move them by ~90%.
    """
    import torch
    from transformers import AutoModelForCausalLM

    from twin.model.tiny import build_tiny

    base = build_tiny(out, arch=arch, seed=0, num_layers=2)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith(("q_proj.weight", "k_proj.weight")):
                p.mul_(8.0)
            elif n == "lm_head.weight":
                p.mul_(4.0)
    model.save_pretrained(base)
    return base


def _random_adapter(base, out, template="chat-v1", targets=FAMILY_TARGETS, **lora):
    """A LoRA adapter dir on ``base`` with random, non-zero B, and a twin.json as `twin train` writes."""
    import torch
    from peft import LoraConfig, get_peft_model

    from devkit.adapters import untrained_meta
    from twin.model.load import load_base

    model, tok = load_base(base)
    torch.manual_seed(1)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False, **lora)
    get_peft_model(model, cfg).save_pretrained(out)
    tok.save_pretrained(out)
    untrained_meta(base, template).write(out)
    return out


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def family(request, tmp_path_factory):
    """Per family: sharp tiny base, random chat-v1 adapter, merged model, and their GGUF exports."""
    from twin.publish.merge import merge_adapter

    arch = request.param
    d = tmp_path_factory.mktemp(arch)
    base = _sharp_base(arch, d / "base")
    adapter = _random_adapter(base, d / "adapter")
    merged = merge_adapter(None, adapter, d / "merged")
    return {
        "arch": arch,
        "base": base,
        "adapter": adapter,
        "merged": merged,
        "merged_gguf": export_gguf(merged, d / "gguf-merged", name="twin"),
        "base_gguf": export_gguf(base, d / "gguf-base", name="base"),
        "adapter_gguf": export_adapter_gguf(adapter, d / "gguf-adapter", name="twin"),
    }


def _chat_prompt(model_dir):
    from transformers import AutoTokenizer

    from twin.prompt import build_prompt

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    text = build_prompt(CHAT_CONTEXT, CHAT_MESSAGE, template="chat-v1", tokenizer=tok)
    return tok, text, tok(text, add_special_tokens=False)["input_ids"]


def _hf_last_logits(model, ids):
    import torch

    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0, -1].numpy()


def _llama_cpp_last_logits(ids, **kw):
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (make llama-cpp)")
    llm = llama_cpp.Llama(n_ctx=256, logits_all=True, verbose=False, seed=0, **kw)
    llm.eval(ids)
    return llm, np.array(llm.scores[len(ids) - 1])


def _assert_close(got, want):
    np.testing.assert_allclose(got, want, atol=2e-2 * max(1.0, np.abs(want).max()))


def test_family_gguf_layout_and_metadata(family):
    from gguf import GGUFReader

    from twin.model.chat_templates import FAMILIES

    arch, base = family["arch"], family["base"]
    cfg = json.loads((base / "config.json").read_text())
    r = GGUFReader(family["merged_gguf"]["gguf"])
    t = {x.name: x for x in r.tensors}
    assert _field(r, "general.architecture") == arch
    assert _field(r, f"{arch}.attention.head_count") == cfg["num_attention_heads"]
    assert (
        _field(r, f"{arch}.attention.head_count_kv")
        == cfg["num_key_value_heads"]
        < cfg["num_attention_heads"]
    )
    assert _field(r, f"{arch}.rope.freq_base") == cfg["rope_parameters"]["rope_theta"]
    assert _field(r, f"{arch}.attention.layer_norm_rms_epsilon") == pytest.approx(cfg["rms_norm_eps"])
    assert "output.weight" in t  # untied head, as Llama 3 8B / Qwen2.5 7B
    assert (
        ("blk.0.attn_q.bias" in t)
        == ("blk.0.attn_k.bias" in t)
        == ("blk.0.attn_v.bias" in t)
        == (arch == "qwen2")
    )
    fam = FAMILIES[arch]
    tokens = _field(r, "tokenizer.ggml.tokens")
    assert _field(r, "tokenizer.ggml.model") == "gpt2"
    assert _field(r, "tokenizer.ggml.pre") == {"llama": "gpt-2", "qwen2": "qwen2"}[arch]
    assert tokens[_field(r, "tokenizer.ggml.eos_token_id")] == fam.eos
    assert tokens[_field(r, "tokenizer.ggml.eot_token_id")] == fam.eos
    assert tokens[_field(r, "tokenizer.ggml.padding_token_id")] == fam.pad
    assert _field(r, "tokenizer.ggml.add_bos_token") is (fam.bos is not None)  # Llama 3: BOS by llama.cpp
    assert _field(r, "tokenizer.chat_template") == fam.chat_template
    assert _field(r, "twin.template") == "chat-v1"

    hf = _hf_tensors(family["merged"])
    q = np.asarray(t["blk.1.attn_q.weight"].data).astype(np.float32)
    k = np.asarray(t["blk.1.attn_k.weight"].data).astype(np.float32)
    want_q, want_k = (
        hf["model.layers.1.self_attn.q_proj.weight"],
        hf["model.layers.1.self_attn.k_proj.weight"],
    )
    if arch == "llama":  # llama.cpp's llama graph rotates interleaved pairs; Qwen2's, HF's halves
        want_q = permute_rope_rows(want_q, cfg["num_attention_heads"])
        want_k = permute_rope_rows(want_k, cfg["num_key_value_heads"])
    np.testing.assert_allclose(q, want_q, atol=np.abs(want_q).max() / 500)
    np.testing.assert_allclose(k, want_k, atol=np.abs(want_k).max() / 500)


def test_family_merged_gguf_same_tokens_and_logits_in_llama_cpp(family):
    import torch
    from transformers import AutoModelForCausalLM

    tok, text, ids = _chat_prompt(family["merged"])
    # What Ollama sends: the rendered prompt without the template's BOS text, tokenized with the
    # model's add_bos and special tokens parsed.
    sent = text.removeprefix(tok.bos_token or "")
    llm, got = _llama_cpp_last_logits(ids, model_path=family["merged_gguf"]["gguf"])
    assert llm.tokenize(sent.encode(), add_bos=True, special=True) == ids
    model = AutoModelForCausalLM.from_pretrained(str(family["merged"]), dtype=torch.float32).eval()
    _assert_close(got, _hf_last_logits(model, ids))


def test_family_adapter_gguf_on_base_matches_peft(family):
    import torch
    from gguf import GGUFReader
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    r = GGUFReader(family["adapter_gguf"]["gguf"])
    t = {x.name: x for x in r.tensors}
    assert _field(r, "general.type") == "adapter"
    assert _field(r, "adapter.type") == "lora"
    assert _field(r, "adapter.lora.alpha") == 8.0
    assert _field(r, "general.architecture") == family["arch"]
    cfg = json.loads((family["base"] / "config.json").read_text())
    hidden, n_kv_rows = (
        cfg["hidden_size"],
        cfg["num_key_value_heads"] * cfg["hidden_size"] // cfg["num_attention_heads"],
    )
    assert list(t["blk.0.attn_q.weight.lora_a"].shape) == [hidden, 4]  # GGUF: innermost first
    assert list(t["blk.0.attn_k.weight.lora_b"].shape) == [4, n_kv_rows]
    assert len(t) == 2 * len(FAMILY_TARGETS) * cfg["num_hidden_layers"]

    _, _, ids = _chat_prompt(family["base"])
    _, got = _llama_cpp_last_logits(
        ids, model_path=family["base_gguf"]["gguf"], lora_path=family["adapter_gguf"]["gguf"]
    )
    base = AutoModelForCausalLM.from_pretrained(str(family["base"]), dtype=torch.float32).eval()
    without = _hf_last_logits(base, ids)
    want = _hf_last_logits(PeftModel.from_pretrained(base, str(family["adapter"])).eval(), ids)
    assert np.abs(want - without).max() > 0.2 * np.abs(want).max()  # the adapter really changes them
    _assert_close(got, want)


def test_family_modelfiles_use_the_family_template_and_stops(family):
    from twin.model.chat_templates import FAMILIES
    from twin.prompt import system_prompt

    fam = FAMILIES[family["arch"]]
    merged = Path(family["merged_gguf"]["modelfile"]).read_text(encoding="utf-8")
    adapter = Path(family["adapter_gguf"]["modelfile"]).read_text(encoding="utf-8")
    assert "FROM ./twin-f16.gguf\n" in merged and "ADAPTER" not in merged
    assert f"FROM {family['base']}\nADAPTER ./twin-lora-f16.gguf\n" in adapter
    for text in (merged, adapter):
        template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
        assert fam.eos in template and "{{ .Content }}" in template
        assert f'SYSTEM """{system_prompt(None)}"""' in text
        assert [ln for ln in text.splitlines() if ln.startswith("PARAMETER stop")] == [
            f'PARAMETER stop "{s}"' for s in fam.stop
        ]


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_go_template_renders_exactly_the_family_chat_prompt(arch, go_render, tmp_path):
    from transformers import AutoTokenizer

    from twin.model.tiny import train_tokenizer
    from twin.prompt import build_prompt, system_prompt
    from twin.publish.ollama import chat_go_template, chat_turns

    train_tokenizer(["hi there", "как дела"], 300, 256, arch=arch).save_pretrained(tmp_path)
    tok = AutoTokenizer.from_pretrained(str(tmp_path))
    turns = chat_turns(tok)
    template = chat_go_template(turns)
    for context, message in CASES:
        want = build_prompt(context, message, template="chat-v1", tokenizer=tok)
        got = go_render(template, _go_messages(context, message, system=system_prompt(None)))
        assert (turns.bos or "") + got == want
    # no system message: the template's own default (ChatML's), as apply_chat_template renders it
    bare = [{"role": "user", "content": "hi"}]
    want = tok.apply_chat_template(bare, tokenize=False, add_generation_prompt=True)
    assert (turns.bos or "") + go_render(template, [{"Role": "user", "Content": "hi"}]) == want


def test_falcon_adapter_gguf_on_base_matches_peft(tiny_base, random_lora_adapter, exported, tmp_path):
    """llama.cpp applies LoRA to Falcon's fused QKV too, so Falcon adapters export as well."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    res = export_adapter_gguf(random_lora_adapter, tmp_path, name="twin")
    tok = AutoTokenizer.from_pretrained(str(tiny_base))
    ids = tok("Them: hey! how are you doing today?\nMe:", add_special_tokens=False)["input_ids"]
    _, got = _llama_cpp_last_logits(ids, model_path=exported["f16"]["gguf"], lora_path=res["gguf"])
    base = AutoModelForCausalLM.from_pretrained(str(tiny_base), dtype=torch.float32).eval()
    without = _hf_last_logits(base, ids)
    want = _hf_last_logits(PeftModel.from_pretrained(base, str(random_lora_adapter)).eval(), ids)
    assert np.abs(want - without).max() > 0.2 * np.abs(want).max()
    _assert_close(got, want)
    text = Path(res["modelfile"]).read_text(encoding="utf-8")
    assert 'TEMPLATE """You are chatting with a friend.' in text and 'PARAMETER stop "###"' in text


@pytest.fixture(scope="module")
def sharp_llama(tmp_path_factory):
    return _sharp_base("llama", tmp_path_factory.mktemp("sharp-llama") / "base")


def _copy_dir(src, dst):
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize(
    ("pre", "regex"),
    [
        (
            "llama-bpe",
            r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
        ),
        (
            "qwen2",
            r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
        ),
    ],
)
def test_downloaded_family_pre_tokenizers_tokenize_identically_in_llama_cpp(
    pre, regex, sharp_llama, tmp_path
):
    """Llama 3's and Qwen2.5's own tokenizer.json split with a regex; the GGUF names the llama.cpp
    pre-tokenizer that splits the same way (the GPT-2 split would give other tokens here)."""
    from gguf import GGUFReader
    from transformers import AutoTokenizer

    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (make llama-cpp)")
    text = "called you 12345 times!!\n\n\n  where are you?? 7:30, ok…\nпривет  "
    gpt2_ids = AutoTokenizer.from_pretrained(str(sharp_llama))(text, add_special_tokens=False)["input_ids"]
    model = _copy_dir(sharp_llama, tmp_path / "m")
    tj = json.loads((model / "tokenizer.json").read_text())
    tj["pre_tokenizer"] = {
        "type": "Sequence",
        "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        ],
    }
    (model / "tokenizer.json").write_text(json.dumps(tj))
    ids = AutoTokenizer.from_pretrained(str(model))(text, add_special_tokens=False)["input_ids"]
    assert ids != gpt2_ids  # the split matters for this text
    res = export_gguf(model, tmp_path / "out", name="m")
    assert _field(GGUFReader(res["gguf"]), "tokenizer.ggml.pre") == pre
    llm = llama_cpp.Llama(model_path=res["gguf"], vocab_only=True, verbose=False)
    assert llm.tokenize(text.encode(), add_bos=False, special=True) == ids


def test_llama31_rope_scaling_becomes_rope_freqs(sharp_llama, tmp_path):
    """Llama 3.1's rope_type llama3 rescales low frequencies: written as llama.cpp's rope_freqs.

    original_max_position_embeddings 16 (8192 in Llama 3.1) puts the rescaled band where a short
    prompt's positions reach it, so leaving the factors out would move these logits by far more
    than 2%."""
    import torch
    from gguf import GGUFReader
    from transformers import AutoModelForCausalLM

    model_dir = _copy_dir(sharp_llama, tmp_path / "m")
    cfg = json.loads((model_dir / "config.json").read_text())
    rope = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0}
    cfg["rope_parameters"] |= {**rope, "original_max_position_embeddings": 16}
    (model_dir / "config.json").write_text(json.dumps(cfg))
    res = export_gguf(model_dir, tmp_path / "out", name="m")
    factors = {t.name: np.asarray(t.data) for t in GGUFReader(res["gguf"]).tensors}["rope_freqs.weight"]
    # llama.cpp divides each rotary frequency by its factor: the frequencies transformers uses
    from transformers import AutoConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    scaled, _ = ROPE_INIT_FUNCTIONS["llama3"](AutoConfig.from_pretrained(str(model_dir)))
    dim, theta = cfg["head_dim"], cfg["rope_parameters"]["rope_theta"]
    plain_freqs = 1.0 / theta ** (np.arange(0, dim, 2) / dim)
    np.testing.assert_allclose(plain_freqs / factors, scaled.numpy(), rtol=1e-5)
    assert factors.max() == 8.0

    _, _, ids = _chat_prompt(model_dir)
    _, got = _llama_cpp_last_logits(ids, model_path=res["gguf"])
    want = _hf_last_logits(
        AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval(), ids
    )
    plain = _hf_last_logits(
        AutoModelForCausalLM.from_pretrained(str(sharp_llama), dtype=torch.float32).eval(), ids
    )
    assert np.abs(want - plain).max() > 0.1 * np.abs(want).max()
    _assert_close(got, want)


def test_cli_adapter_only_and_its_bad_inputs(random_lora_adapter, tiny_base, tmp_path):
    from typer.testing import CliRunner

    from twin.cli import app
    from twin.publish.gguf_tokenizer import pre_tokenizer_name

    runner = CliRunner()
    out = tmp_path / "out"
    args = ["publish", "gguf", "--adapter-only", "--adapter", str(random_lora_adapter), "--out", str(out)]
    res = runner.invoke(app, [*args, "--from", "falcon-7b-base:latest", "--name", "me"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == ["Modelfile", "me-lora-f16.gguf"]
    assert "FROM falcon-7b-base:latest\nADAPTER ./me-lora-f16.gguf\n" in (out / "Modelfile").read_text()
    res = runner.invoke(app, ["publish", "gguf", "--adapter-only", "--out", str(out)])
    assert isinstance(res.exception, TwinError) and "--adapter DIR" in str(res.exception)  # main(): exit 2
    res = runner.invoke(app, ["publish", "gguf", "--out", str(out)])
    assert isinstance(res.exception, TwinError) and "--model DIR" in str(res.exception)

    dora = _random_adapter(tiny_base, tmp_path / "dora", "plain-v1", ["query_key_value"], use_dora=True)
    with pytest.raises(TwinError, match="DoRA"):
        export_adapter_gguf(dora, tmp_path / "d")
    with pytest.raises(TwinError, match="pre-tokenizer"):
        pre_tokenizer_name({"pre_tokenizer": {"type": "Metaspace"}}, "llama", tmp_path / "tokenizer.json")
