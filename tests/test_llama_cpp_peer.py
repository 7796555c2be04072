"""The llama.cpp peer of the generation bench (bench/llama_cpp_peer.py) on a real llama-cpp-python server."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `bench` is a folder of the repo, not an installed package
    sys.path.insert(0, str(ROOT))

pytestmark = pytest.mark.slow  # builds a GGUF and serves it


def test_a_reply_stuck_on_an_incomplete_utf8_byte_still_ends_at_its_length(tmp_path):
    """The tiny Llama with the bench's random adapter of seed 107, greedy: llama.cpp repeats the byte
    0xF8 from its 31st token on. llama-cpp-python holds back text ending in an incomplete UTF-8
    character and skips its max_tokens check meanwhile, so with the old request (``min_tokens``) the
    reply ran until the 1024-token context was full: 500, ``llama_decode returned 1``. The peer's
    request bans those bytes and EOS (:func:`forced_bias`): the reply is the 64 tokens asked for."""
    pytest.importorskip("llama_cpp.server", reason="llama-cpp-python[server] not installed (make llama-cpp)")
    import httpx

    from bench.llama_cpp_peer import bodies, forced_bias, merged_gguf, rendered_prompt
    from devkit.adapters import write_random_lora
    from devkit.live_server import llama_cpp_process
    from twin.model.load import load_tokenizer
    from twin.model.tiny import build_tiny

    base = build_tiny(tmp_path / "tiny-llama", arch="llama", seed=0)  # the bench's tiny Llama
    write_random_lora(base, tmp_path / "a7", seed=107, r=8, alpha=16)
    bias = forced_bias(base)
    tok = load_tokenizer(base)
    lone_f8 = tok.convert_tokens_to_ids("ø")  # byte 0xF8 in the byte-level alphabet: never valid UTF-8
    assert {str(tok.eos_token_id), str(lone_f8)} <= set(bias)
    assert str(tok.convert_tokens_to_ids("a")) not in bias  # plain text is untouched
    gguf = merged_gguf(base, tmp_path / "a7", tmp_path / "peer")
    peer = bodies(64, rendered_prompt(tmp_path / "a7"), "a7", bias)[1]
    with llama_cpp_process(gguf, "a7", timeout=300) as (url, _):
        r = httpx.post(url + "/v1/completions", json=peer, timeout=300)
    assert r.status_code == 200, r.text[:300]
    assert (
        r.json()["usage"]["completion_tokens"] == 64 and r.json()["choices"][0]["finish_reason"] == "length"
    )
