"""Examples, context truncation, split and other tools' formats, on hand-made sessions."""

from __future__ import annotations

from twin.prepare.formats import to_alpaca, to_sharegpt
from twin.prepare.session_examples import in_val, session_examples
from twin.prompt import system_prompt
from twin.text.sessions import Session, Turn


def sess(*turns: tuple[str, str], dialog_id: int = 9, index: int = 0) -> Session:
    return Session(dialog_id, index, [], [Turn(r, t) for r, t in turns])


def test_examples_for_each_reply_of_mine_with_earlier_context():
    s = sess(("them", "hi"), ("me", "hey"), ("them", "lunch?"), ("me", "sure\n12:30?"), ("them", "ok"))
    exs = session_examples(s, contact="Bob", budget=10_000)
    assert exs == [
        {
            "dialog_id": 9,
            "session": "9-0",
            "contact": "Bob",
            "context": [],
            "instruction": "hi",
            "response": "hey",
        },
        {
            "dialog_id": 9,
            "session": "9-0",
            "contact": "Bob",
            "context": [{"role": "them", "text": "hi"}, {"role": "me", "text": "hey"}],
            "instruction": "lunch?",
            "response": "sure\n12:30?",
        },
    ]


def test_session_opening_with_my_turn_is_context_only():
    s = sess(("me", "you up?"), ("them", "yes"), ("me", "call?"))
    (ex,) = session_examples(s, contact=None, budget=10_000)
    assert ex["context"] == [{"role": "me", "text": "you up?"}]
    assert (ex["instruction"], ex["response"], ex["contact"]) == ("yes", "call?", None)


def test_one_sided_sessions_give_no_examples():
    assert session_examples(sess(("me", "note")), contact=None, budget=100) == []
    assert session_examples(sess(("them", "spam")), contact=None, budget=100) == []


def test_context_is_cut_from_the_oldest_side_by_budget():
    s = sess(
        ("them", "a" * 10), ("me", "b" * 10), ("them", "c" * 10), ("me", "d" * 10), ("them", "q"), ("me", "r")
    )
    last = session_examples(s, contact=None, budget=22)[-1]
    # each turn costs len + 1: the newest two (11 + 11 = 22) fit, the older ones are dropped
    assert [t["text"] for t in last["context"]] == ["c" * 10, "d" * 10]
    # a token counter (here: words) is used the same way
    last = session_examples(s, contact=None, budget=4, count=lambda t: len(t.split()))[-1]
    assert [t["text"] for t in last["context"]] == ["c" * 10, "d" * 10]


def test_split_is_deterministic_and_about_the_fraction():
    ids = [f"{d}-{n}" for d in range(100) for n in range(20)]
    val = [i for i in ids if in_val(i, 0.05)]
    assert val == [i for i in ids if in_val(i, 0.05)]
    assert 0.03 < len(val) / len(ids) < 0.07
    assert not any(in_val(i, 0.0) for i in ids)
    assert [i for i in ids if in_val(i, 0.05, seed=1)] != val


def test_alpaca_and_sharegpt_rows():
    ex = {
        "dialog_id": 1,
        "session": "1-0",
        "contact": "Ann",
        "context": [
            {"role": "me", "text": "lone opener"},
            {"role": "them", "text": "q1"},
            {"role": "me", "text": "a1"},
        ],
        "instruction": "q2",
        "response": "a2",
    }
    a = to_alpaca(ex)
    assert a["instruction"] == "q2" and a["output"] == "a2" and a["input"] == ""
    assert a["history"] == [["q1", "a1"]]
    # the same system message the chat-v1 template trains with, word for word
    assert a["system"] == system_prompt("Ann") == to_sharegpt(ex)["system"]
    assert "Ann" in a["system"]
    g = to_sharegpt(ex)
    assert [(m["from"], m["value"]) for m in g["conversations"]] == [
        ("human", "q1"),
        ("gpt", "a1"),
        ("human", "q2"),
        ("gpt", "a2"),
    ]
