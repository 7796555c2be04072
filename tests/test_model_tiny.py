"""The tiny base's pretraining text: the contacts' side only, in the prompt layout (no owner reply)."""

from __future__ import annotations

import json

import pytest
from helpers.styled_chats import styled_examples

from twin.errors import TwinError
from twin.eval.authorship import split_messages
from twin.model.tiny import contact_conversations, conversations_from_dir, texts_from_dir
from twin.prompt import build_prompt

CUE = "### Your response:\n"


@pytest.fixture()
def processed(tmp_path):
    rows = styled_examples(30, 11)
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return tmp_path, rows


def test_default_text_never_holds_an_owner_message(processed):
    path, rows = processed
    owner, contacts = split_messages(rows)
    docs = texts_from_dir(path)
    assert docs and all(CUE in d for d in docs)  # every document is a prompt with its reply
    assert not [o for o in owner if any(o in d for d in docs)]  # no owner text, as reply or context
    replies = [d.split(CUE, 1)[1] for d in docs]
    assert set(replies) <= set(contacts)
    # every contact message that follows an earlier one of the same session is a reply, once
    want = []
    for session in dict.fromkeys(r["session"] for r in rows):
        said = [
            t for r in rows if r["session"] == session for t in (r["context"][0]["text"], r["instruction"])
        ]
        want += list(dict.fromkeys(said))[1:]
    assert sorted(replies) == sorted(want) and len(want) == 50  # 10 sessions x (6 messages - the first)
    # the reply after the cue is a bare message: never a "Name: text" transcript line
    assert not [r for r in replies if r.startswith(("Bob:", "Me:"))]
    assert all("\nMe:" not in d for d in docs)
    plain = texts_from_dir(path, plain_prompts=False)  # a chat family's plain text: messages alone
    assert set(plain) <= set(contacts)
    convs = conversations_from_dir(path)
    assert convs and all(c["response"] in contacts and c["instruction"] in contacts for c in convs)
    assert all(t["role"] == "them" for c in convs for t in c["context"])


def test_owner_replies_option_keeps_the_old_corpus(processed):
    path, rows = processed
    owner, _ = split_messages(rows)
    docs = texts_from_dir(path, owner_replies=True)
    assert all(any(o in d for d in docs) for o in {r["response"] for r in rows})
    assert build_prompt([], rows[0]["instruction"], contact="Bob") + rows[0]["response"] in docs
    assert conversations_from_dir(path, owner_replies=True) == rows


def test_contact_conversations_follow_the_session_order():
    ex = [
        {"session": "s", "contact": "Ann", "context": [{"role": "them", "text": "a"}, {"role": "me", "text": "M"}],
         "instruction": "b", "response": "N"},
        {"session": "s", "contact": "Ann", "context": [{"role": "them", "text": "b"}, {"role": "me", "text": "N"}],
         "instruction": "c", "response": "O"},
        {"session": "t", "contact": "Cy", "context": [], "instruction": "x", "response": "P"},
    ]  # fmt: skip
    got = contact_conversations(ex)
    assert [(c["instruction"], c["response"]) for c in got] == [("a", "b"), ("b", "c")]
    assert got[1]["context"] == [{"role": "them", "text": "a"}] and got[1]["contact"] == "Ann"


def test_no_examples_is_a_twin_error(tmp_path):
    (tmp_path / "train.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(TwinError, match="no examples"):
        texts_from_dir(tmp_path)


@pytest.mark.slow
def test_cli_default_pretrains_a_base_that_writes_words(tmp_path, monkeypatch):
    """`make tiny` (no flags) pretrains PRETRAIN_STEPS steps, as the demo does: a 0-step base is
    random weights whose replies are byte noise for a newcomer following the README."""
    from typer.testing import CliRunner

    from twin.cli import app
    from twin.model.tiny import PRETRAIN_STEPS

    monkeypatch.chdir(tmp_path)  # no data/processed here: the built-in corpus
    small = ["--hidden-size", "32", "--layers", "1", "--heads", "2", "--vocab-size", "400"]
    res = CliRunner().invoke(app, ["model", "tiny", "--out", "b", *small])
    assert res.exit_code == 0, res.output
    record = json.loads((tmp_path / "b" / "tiny.json").read_text(encoding="utf-8"))
    assert PRETRAIN_STEPS >= 100 and record["pretrain_steps"] == PRETRAIN_STEPS
    first, last = record["pretrain_loss"]
    assert last < first - 1.0  # it learned the text


def test_build_says_what_it_does_before_each_silent_step(tmp_path, caplog):
    """Tokenizer training, the model's set-up and tokenizing the pretraining text ran ~11 s with no line
    on a 90,000-message account: each now opens with one, with its size."""
    import logging

    from twin.model.tiny import build_tiny, fallback_texts

    docs = fallback_texts()
    with caplog.at_level(logging.INFO, logger="twin.model.tiny"):
        build_tiny(tmp_path / "b", docs, pretrain_steps=2, vocab_size=400, hidden_size=16, num_layers=2,
                   num_heads=2, pretrain_block_size=16)  # fmt: skip
    lines = [r.getMessage() for r in caplog.records]
    assert lines[:3] == [
        f"training a 400-entry tokenizer on {len(docs)} documents",
        "building the falcon model: 2 layers, hidden size 16",
        f"pretraining 2 steps: tokenizing {len(docs)} documents first",
    ]
