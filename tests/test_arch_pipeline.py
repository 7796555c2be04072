"""The whole pipeline on a tiny Llama 3 and a tiny Qwen2.5 with chat-v1 through the real chat template.

Each architecture gets one module-scoped run: a tiny base pretrained briefly (its chat family's
renderings included, so it ends a reply with its end-of-turn token), a few LoRA steps with
pipelines/tiny.yaml, then eval, serve and merge on that adapter. Tiny sizes: the module takes
seconds per architecture.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from helpers.training import tiny_train_config, write_processed

from twin.errors import TwinError

END_OF_TURN = {"llama": "<|eot_id|>", "qwen2": "<|im_end|>"}


pytestmark = pytest.mark.slow  # trains an adapter per family


@dataclass
class Run:
    arch: str
    base: Path
    data: Path
    adapter: Path
    tokenizer: object


@pytest.fixture(scope="module", params=sorted(END_OF_TURN))
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Run:
    from twin.model.load import load_tokenizer
    from twin.model.tiny import build_tiny, conversations_from_dir, texts_from_dir
    from twin.train.loop import train

    torch.set_num_threads(2)
    arch = request.param
    root = tmp_path_factory.mktemp(arch)
    data = write_processed(root / "data", n_train=48, n_val=6)
    base = build_tiny(
        root / f"tiny-{arch}",
        texts_from_dir(data, plain_prompts=False),  # as `twin model tiny --arch llama|qwen2` reads it
        arch=arch,
        hidden_size=64,
        num_layers=2,
        num_heads=4,
        vocab_size=512,
        pretrain_steps=100,
        pretrain_batch_size=8,
        pretrain_lr=1e-2,
        conversations=conversations_from_dir(data),
    )
    over = {"max_steps": 4, "batch_size": 8, "micro_batch_size": 8, "optim": {"lr": 1e-2}}
    train(
        tiny_train_config(
            base, data, root / "out", run="r", eval={"every_steps": 0, "max_batches": 1}, **over
        )
    )
    return Run(arch, base, data, root / "out" / "adapters" / "r", load_tokenizer(base))


def test_trained_with_chat_v1_on_the_family_targets(run: Run) -> None:
    meta = json.loads((run.adapter / "twin.json").read_text())
    assert meta["template"] == "chat-v1" and meta["base_model"]["model_type"] == run.arch
    targets = set(json.loads((run.adapter / "adapter_config.json").read_text())["target_modules"])
    assert targets == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_loss_mask_is_the_reply_and_its_end_of_turn_token_only(run: Run) -> None:
    from twin.examples import collate, encode_examples, read_examples
    from twin.prompt import build_prompt

    tok = run.tokenizer
    eot = tok.convert_tokens_to_ids(END_OF_TURN[run.arch])
    examples = read_examples(run.data / "val.jsonl")
    data = encode_examples(examples, tok, "chat-v1", 512)
    batch = collate(data, range(len(data)), tok.pad_token_id)
    for row, ex in enumerate(examples):
        ids, labels = batch["input_ids"][row], batch["labels"][row]
        n = int(batch["attention_mask"][row].sum())
        targets = [int(t) for t in labels[:n] if t != -100]
        # token by token: the reply as the tokenizer writes it, then the end-of-turn token, and nothing else
        reply = tok(ex["response"], add_special_tokens=False)["input_ids"]
        assert targets == [*reply, eot], tok.convert_ids_to_tokens(targets)
        assert tok.convert_ids_to_tokens(targets[-1]) == END_OF_TURN[run.arch]
        # ...and it ends the sequence: no EOS after it, no ChatML "\n" (the next turn's layout)
        assert int(ids[n - 1]) == eot and (ids[:n] == eot).sum() == 1 + build_prompt(
            ex["context"], ex["instruction"], template="chat-v1", contact=ex.get("contact"), tokenizer=tok
        ).count(END_OF_TURN[run.arch])
        # everything before the reply is the prompt the server renders, unchanged
        prompt = build_prompt(
            ex["context"], ex["instruction"], template="chat-v1", contact=ex.get("contact"), tokenizer=tok
        )
        assert tok.decode(ids[: n - len(targets)]) == prompt


def test_eval_runs_on_the_adapter(run: Run, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from twin.cli import app

    args = ["eval", "--adapter", str(run.adapter), "--data", str(run.data), "--out-dir", str(tmp_path)]
    res = CliRunner().invoke(app, [*args, "--run", "e", "--max-examples", "2", "--max-new-tokens", "8"])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "runs" / "e" / "eval.json").read_text())
    assert report["examples"] == 2
    rows = [json.loads(x) for x in (tmp_path / "runs" / "e" / "eval_samples.jsonl").read_text().splitlines()]
    # its loss is over exactly the training targets: each real reply's tokens + one end-of-turn token
    want = sum(len(run.tokenizer(r["real"], add_special_tokens=False)["input_ids"]) + 1 for r in rows)
    assert report["loss"]["twin"]["tokens"] == report["loss"]["base"]["tokens"] == want
    assert report["loss"]["twin"]["loss"] != report["loss"]["base"]["loss"]
    assert not any(END_OF_TURN[run.arch] in r["twin"] for r in rows)


def test_serve_stops_at_the_end_of_turn_token_and_hides_it(run: Run) -> None:
    from fastapi.testclient import TestClient

    from twin.serve.app import create_app
    from twin.serve.engine import Engine

    engine = Engine(run.base, [("twin", run.adapter)])
    with TestClient(create_app(engine, token="")) as client:
        body = {"message": "wanna grab coffee?", "history": [{"role": "them", "text": "hey"}]}
        res = client.post("/reply", json={**body, "temperature": 0, "max_new_tokens": 32})
    assert res.status_code == 200, res.text
    out = res.json()
    assert out["finish_reason"] == "stop" and out["reply"].strip()
    assert not any(t in out["reply"] for t in (*END_OF_TURN.values(), "<|", "|>"))
    # what made it stop: greedy's next token after the reply is the template's end-of-turn token
    from peft import PeftModel

    from twin.model.load import load_base
    from twin.prompt import build_prompt

    tok = run.tokenizer
    prompt = build_prompt(body["history"], body["message"], template="chat-v1", contact=None, tokenizer=tok)
    model = PeftModel.from_pretrained(load_base(run.base)[0], str(run.adapter)).eval()
    ids = tok(prompt + out["reply"], add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        nxt = int(model(torch.tensor([ids])).logits[0, -1].argmax())
    assert tok.convert_ids_to_tokens(nxt) == END_OF_TURN[run.arch]


def test_merge_equals_base_plus_adapter(run: Run, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from twin.model.load import load_base
    from twin.publish.merge import merge_adapter

    merged_dir = merge_adapter(None, run.adapter, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(str(merged_dir)).eval()
    assert merged.config.model_type == run.arch
    ids = torch.tensor([run.tokenizer("see you at 7, ok ok", add_special_tokens=False)["input_ids"]])
    base = load_base(run.base)[0]
    with torch.no_grad():
        plain = base(ids).logits
        want = PeftModel.from_pretrained(base, str(run.adapter)).eval()(ids).logits
        got = merged(ids).logits
    assert (want - plain).abs().max() > 1e-3  # the adapter matters...
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)  # ...and the merge keeps it


# A template twin cannot split: earlier assistant turns vanish once the user speaks again (so the
# prompt is still a prefix of prompt + reply, and a per-example check would pass it silently).
_DROPS_MY_TURNS = (
    "{%- set last_user = namespace(i=-1) %}"
    "{%- for m in messages %}{%- if m['role'] == 'user' %}{%- set last_user.i = loop.index0 %}{%- endif %}"
    "{%- endfor %}"
    "{%- for m in messages %}{%- if m['role'] != 'assistant' or loop.index0 > last_user.i %}"
    "{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def test_a_template_that_drops_my_earlier_turns_stops_training_at_the_start(run: Run, tmp_path: Path) -> None:
    import shutil

    from typer.testing import CliRunner

    from twin.cli import app

    base = tmp_path / "dropping-base"
    shutil.copytree(run.base, base)
    tok = run.tokenizer.__class__.from_pretrained(str(base))
    tok.chat_template = _DROPS_MY_TURNS
    tok.save_pretrained(str(base))
    args = ["train", "--base", str(base), "--data", str(run.data), "--run", "bad", "--max-steps", "1"]
    res = CliRunner().invoke(app, [*args, "--set", f"out_dir={tmp_path / 'out'}"])
    assert isinstance(res.exception, TwinError), res.output  # twin's main prints it as one line, exit 2
    msg = str(res.exception)
    assert "drops or reorders earlier turns" in msg and "data.template=plain-v1" in msg and "\n" not in msg
    assert not (tmp_path / "out").exists()  # before anything was trained or written
