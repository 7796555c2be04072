"""`--memory K` end to end on the tiny Falcon: train records it, the adapter carries its memory,
serving and eval use it with nothing but the adapter directory."""

from __future__ import annotations

import json
import shutil

import pytest
from fastapi.testclient import TestClient
from helpers.training import tiny_train_config

from twin.errors import TwinError

pytestmark = pytest.mark.slow  # trains an adapter with memory and runs the CLI


@pytest.fixture(scope="module")
def memory_adapter(tiny_base, processed_dir, tmp_path_factory):
    """An adapter trained with --memory 2, moved away from the data it was trained on."""
    from twin.train.loop import train

    data = tmp_path_factory.mktemp("mem-data") / "processed"
    shutil.copytree(processed_dir, data, ignore=shutil.ignore_patterns("memory"))
    out = tmp_path_factory.mktemp("mem-train")
    train(tiny_train_config(tiny_base, data, out, run="mem", max_steps=3, data={"memory": 2}))
    assert (data / "memory" / "pairs.jsonl").is_file()  # built on first use: no `twin prepare` here
    moved = tmp_path_factory.mktemp("elsewhere") / "mem"
    shutil.move(out / "adapters" / "mem", moved)
    shutil.rmtree(data / "memory")
    return moved


def test_twin_json_records_memory_and_the_adapter_carries_it(memory_adapter):
    meta = json.loads((memory_adapter / "twin.json").read_text())
    assert meta["template"] == "plain-v2"
    assert meta["memory"] == {"k": 2, "dir": "memory", "scope": "contact"}
    pairs = (memory_adapter / "memory" / "pairs.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(pairs) == 96 and set(json.loads(pairs[0])) == {"session", "chat", "contact", "them", "me"}


def test_serving_is_self_contained_and_uses_the_memory(tiny_base, memory_adapter):
    from twin.inference.generate import Conversation, build_reply_prompt
    from twin.serve.app import create_app
    from twin.serve.engine import Engine

    engine = Engine(tiny_base, [("twin", memory_adapter)])
    adapter = engine.resolve("twin")
    assert adapter.memory is not None and adapter.memory.k == 2
    prompt = build_reply_prompt(
        adapter.meta, engine.tokenizer, Conversation([], "are you coming tonight?", "Alice"), adapter.memory
    )
    remembered = prompt.split("### How you answered similar messages before:\n")[1].split("\n\n###")[0]
    assert "are you coming tonight?\nMe: ok ok, be there at 8" in remembered  # the synthetic owner's answer
    assert {line.split(":")[0] for line in remembered.splitlines() if not line.startswith("Me:")} <= {
        "Alice",
        "",
    }
    # a contact the owner never wrote with gets nobody's exchanges (the default scope, from twin.json)
    stranger = build_reply_prompt(
        adapter.meta, engine.tokenizer, Conversation([], "are you coming tonight?", "Katya"), adapter.memory
    )
    assert stranger.split("### How you answered similar messages before:\n")[1].startswith("(none)")
    with TestClient(create_app(engine, token="")) as client:
        r = client.post(
            "/reply", json={"message": "are you coming tonight?", "contact": "Alice", "max_new_tokens": 4}
        )
        assert r.status_code == 200
        with_memory = r.json()["usage"]["prompt_tokens"]
    plain = Engine(tiny_base, [("twin", memory_adapter)], memory=0)  # the section stays, empty
    with TestClient(create_app(plain, token="")) as client:
        r = client.post(
            "/reply", json={"message": "are you coming tonight?", "contact": "Alice", "max_new_tokens": 4}
        )
        assert with_memory > r.json()["usage"]["prompt_tokens"] + 10


def test_a_served_chat_id_keeps_the_chats_memory_after_a_rename(tiny_base, memory_adapter):
    """`twin drafts` sends the chat's dialog id: a renamed contact keeps its past exchanges, no other chat's."""
    from twin.inference.generate import Conversation, build_reply_prompt
    from twin.serve.app import create_app
    from twin.serve.engine import Engine

    pairs = [json.loads(x) for x in (memory_adapter / "memory" / "pairs.jsonl").read_text().splitlines()]
    alice = next(p["chat"] for p in pairs if p["contact"] == "Alice")
    engine = Engine(tiny_base, [("twin", memory_adapter)])
    adapter = engine.resolve("twin")

    def remembered(**who) -> str:
        conv = Conversation([], "are you coming tonight?", **who)
        prompt = build_reply_prompt(adapter.meta, engine.tokenizer, conv, adapter.memory)
        return prompt.split("### How you answered similar messages before:\n")[1].split("\n\n###")[0]

    assert remembered(contact="Alice ☀️").startswith("(none)")  # a new name alone: a new chat
    renamed = remembered(contact="Alice ☀️", chat_id=alice)
    assert "Me: ok ok, be there at 8" in renamed
    unknown = max(p["chat"] for p in pairs) + 1
    assert remembered(contact="Alice", chat_id=unknown).startswith("(none)")  # the id decides, not the name
    body = {"message": "are you coming tonight?", "contact": "Alice ☀️", "max_new_tokens": 4}
    with TestClient(create_app(engine, token="")) as client:
        by_name = client.post("/reply", json=body).json()["usage"]["prompt_tokens"]
        by_id = client.post("/reply", json={**body, "chat_id": alice}).json()["usage"]["prompt_tokens"]
    assert by_id > by_name + 10


def test_memory_for_an_adapter_trained_without_it_is_one_error(
    tiny_base, tiny_adapter, processed_dir, tmp_path
):
    from twin.eval.run import EvalConfig, run_eval
    from twin.serve.engine import Engine

    with pytest.raises(TwinError, match="trained without memory"):
        Engine(tiny_base, [("twin", tiny_adapter)], memory=2)
    with pytest.raises(TwinError, match="trained without memory"):
        run_eval(
            EvalConfig(adapter=str(tiny_adapter), data=str(processed_dir), out_dir=str(tmp_path), memory=2)
        )


def test_eval_remembers_like_the_server(memory_adapter, processed_dir, tmp_path):
    from twin.eval.run import EvalConfig, run_eval

    cfg = {"adapter": str(memory_adapter), "data": str(processed_dir), "max_new_tokens": 4, "max_examples": 6}
    r = run_eval(EvalConfig(**cfg, out_dir=str(tmp_path / "a")), progress=False)
    r0 = run_eval(EvalConfig(**cfg, out_dir=str(tmp_path / "b"), memory=0), progress=False)
    assert r["memory"] == {"k": 2, "pairs": 96, "scope": "contact"} and r0["memory"]["k"] == 0
    report = (tmp_path / "a" / "runs" / "mem" / "report.html").read_text(encoding="utf-8")
    assert "whose exchanges (scope)</td><td>contact</td>" in report
    assert r["prompt_tokens"]["mean"] > r0["prompt_tokens"]["mean"] + 10
    assert r["loss"]["twin"]["loss"] != pytest.approx(r0["loss"]["twin"]["loss"], abs=1e-5)


def test_serve_cli_refuses_memory_for_an_adapter_without_it_in_one_line(tiny_adapter):
    import subprocess
    import sys

    cmd = [
        sys.executable,
        "-m",
        "twin.cli",
        "serve",
        "--adapter",
        str(tiny_adapter),
        "--memory",
        "2",
        "--port",
        "8799",  # refused before it binds
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "trained without memory" in errors[0] and "Traceback" not in out.stderr
