"""``lora.train_embeddings``: the embedding rows (and the tied head) train with the LoRA, and the saved
adapter still evaluates, serves beside a plain LoRA, merges and exports to GGUF."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers.training import tiny_train_config

from twin.errors import TwinError

pytestmark = pytest.mark.slow

DELTA = "trainable_tokens_delta"


@pytest.fixture(scope="module")
def emb_adapter(tiny_base: Path, processed_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from twin.train.loop import train

    out = tmp_path_factory.mktemp("emb-train")
    cfg = tiny_train_config(tiny_base, processed_dir, out, run="emb", max_steps=4,
                            optim={"lr": 1e-2}, lora={"train_embeddings": True})  # fmt: skip
    train(cfg)
    return out / "adapters" / "emb"


def _ids(tok, text: str = "hey! how are you doing today?") -> torch.Tensor:
    return torch.tensor([tok(text)["input_ids"]])


def test_embedding_rows_train_and_twin_json_says_so(emb_adapter: Path, tiny_base: Path) -> None:
    from safetensors.torch import load_file

    weights = load_file(str(emb_adapter / "adapter_model.safetensors"))
    (delta,) = [t for k, t in weights.items() if DELTA in k]
    vocab, hidden = (
        json.loads((tiny_base / "config.json").read_text())[k] for k in ("vocab_size", "hidden_size")
    )
    assert tuple(delta.shape) == (vocab, hidden)  # every row of the embedding
    assert delta.abs().amax(dim=1).gt(0).float().mean() > 0.5  # the rows really moved (from zero)
    assert any("lora_A" in k for k in weights)  # beside the LoRA, not instead of it
    meta = json.loads((emb_adapter / "twin.json").read_text())
    assert meta["train"]["lora"]["train_embeddings"] is True


def test_merged_model_keeps_the_trained_rows_and_exports_to_gguf(
    emb_adapter: Path, tiny_base: Path, tmp_path: Path
) -> None:
    from gguf import GGUFReader
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from twin.model.load import load_base
    from twin.publish.gguf import export_adapter_gguf, export_gguf
    from twin.publish.merge import merge_adapter

    out = merge_adapter(None, emb_adapter, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    base, tok = load_base(tiny_base)
    base_emb = base.get_input_embeddings().weight.detach().clone()
    on_base = PeftModel.from_pretrained(base, str(emb_adapter)).eval()
    with torch.no_grad():
        want, got = on_base(_ids(tok)).logits, merged(_ids(tok)).logits
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)  # embedding and tied head both merged
    emb = merged.get_input_embeddings().weight
    assert (emb - base_emb).abs().max() > 1e-3 and merged.get_output_embeddings().weight is emb  # still tied

    gg = export_gguf(out, tmp_path / "gguf", outtype="f16", name="twin")
    tensors = {t.name: t for t in GGUFReader(gg["gguf"]).tensors}
    exported = torch.tensor(tensors["token_embd.weight"].data.astype("float32")).reshape(emb.shape)
    torch.testing.assert_close(exported, emb.detach(), atol=2e-3, rtol=2e-3)
    # a llama.cpp LoRA adapter cannot carry embedding rows: refused with the way out
    with pytest.raises(TwinError, match="export a merged model instead"):
        export_adapter_gguf(emb_adapter, tmp_path / "gguf-adapter")


def test_serves_in_a_mixed_batch_beside_a_plain_lora(
    emb_adapter: Path, tiny_base: Path, random_lora_adapter: Path
) -> None:
    from twin.inference.generate import Conversation, GenParams
    from twin.serve.engine import Engine

    engine = Engine(tiny_base, [("emb", emb_adapter), ("plain", random_lora_adapter)], max_batch=4)
    names = ["emb", "plain", "base", "emb"]
    texts = ["are you coming tonight?", "did you see the game", "ok", "call me when you land"]
    params = GenParams(max_new_tokens=10, min_new_tokens=10, temperature=0)

    def reply(i: int):
        return engine.submit(engine.adapters[names[i]], Conversation([], texts[i], "Alice"), params)

    alone = [reply(i).result(timeout=120) for i in range(4)]
    base0 = engine.run(engine.adapters["base"], Conversation([], texts[0], "Alice"), params)
    assert alone[0].text != base0.text  # the embedding adapter changes the reply
    futures = [reply(i) for i in range(4)]
    for i, (a, f) in enumerate(zip(alone, futures, strict=True)):
        b = f.result(timeout=120)
        assert (a.text, a.completion_tokens) == (b.text, b.completion_tokens), names[i]
    # served through peft's own per-row path, and the log says why
    assert not engine.scheduler.multi_lora.supported
    assert "embedding rows" in engine.scheduler.multi_lora.reason


def test_eval_runs_on_it(emb_adapter: Path, tmp_path: Path) -> None:
    from helpers.eval_inputs import VAL, eval_config

    from twin.eval.run import run_eval

    d = tmp_path / "processed"
    d.mkdir()
    (d / "val.jsonl").write_text(
        "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in VAL), encoding="utf-8"
    )
    r = run_eval(eval_config(emb_adapter, d, tmp_path / "e"), progress=False)
    assert r["loss"]["twin"]["loss"] != pytest.approx(r["loss"]["base"]["loss"], abs=1e-3)


def test_beside_it_a_plain_adapter_and_the_base_are_unchanged(
    emb_adapter: Path, tiny_base: Path, random_lora_adapter: Path
) -> None:
    """One model holding both (as `twin serve` does): the plain adapter's rows and the base's rows see
    the base's embedding, the embedding adapter's rows its own, in one batch or alone."""
    from peft import PeftModel

    from twin.model.load import load_base

    def logits(model, ids, **kw):
        with torch.no_grad():
            return model(ids, **kw).logits

    base, tok = load_base(tiny_base)
    ids = _ids(tok).repeat(3, 1)
    want_base = logits(base, ids[:1])
    want_plain = logits(
        PeftModel.from_pretrained(load_base(tiny_base)[0], str(random_lora_adapter)).eval(), ids[:1]
    )
    want_emb = logits(PeftModel.from_pretrained(load_base(tiny_base)[0], str(emb_adapter)).eval(), ids[:1])
    both = PeftModel.from_pretrained(base, str(emb_adapter), adapter_name="emb").eval()
    both.load_adapter(str(random_lora_adapter), adapter_name="plain")  # peft alone: KeyError here
    both.set_adapter("plain")
    torch.testing.assert_close(logits(both, ids[:1]), want_plain)
    mixed = logits(both, ids, adapter_names=["emb", "plain", "__base__"])
    for got, want in zip(mixed, (want_emb, want_plain, want_base), strict=True):
        torch.testing.assert_close(got[None], want, atol=1e-5, rtol=1e-5)


def test_an_untied_head_trains_its_rows_too_and_merges(tmp_path: Path) -> None:
    """Llama 3's shape has its own output head: its rows are trained beside the embedding's."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from twin.model.lora import apply_lora
    from twin.model.tiny import build_tiny
    from twin.train.config import LoraConfig

    base_dir = build_tiny(tmp_path / "llama", arch="llama", seed=0)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir))
    peft_model = apply_lora(model, LoraConfig(r=2, train_embeddings=True))
    deltas = [n for n, p in peft_model.named_parameters() if p.requires_grad and DELTA in n]
    assert {n.split(".token_adapter")[0].rsplit(".", 1)[-1] for n in deltas} == {"embed_tokens", "lm_head"}
    torch.manual_seed(0)
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if DELTA in n:
                p.add_(torch.randn_like(p))
    peft_model.save_pretrained(tmp_path / "adapter")
    ids = torch.tensor([[5, 17, 42, 99]])
    with torch.no_grad():
        want = peft_model.eval()(ids).logits
        fresh = AutoModelForCausalLM.from_pretrained(str(base_dir))
        base_logits = fresh(ids).logits
        merged = PeftModel.from_pretrained(fresh, str(tmp_path / "adapter")).merge_and_unload(safe_merge=True)
        got = merged(ids).logits
    assert (want - base_logits).abs().max() > 1e-2
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
