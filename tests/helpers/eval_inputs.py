"""Eval inputs for tests: three validation examples and an EvalConfig sized to run in seconds."""

from __future__ import annotations

VAL = [
    {
        "dialog_id": 1,
        "session": "1-0",
        "contact": "Alice",
        "context": [{"role": "them", "text": "hey!"}],
        "instruction": "how are you doing today?",
        "response": "pretty good, just got back from work. you?",
    },
    {
        "dialog_id": 2,
        "session": "2-0",
        "contact": None,
        "context": [],
        "instruction": "привет! как дела?",
        "response": "нормально, работаю. а у тебя?",
    },
    {
        "dialog_id": 1,
        "session": "1-1",
        "contact": "Alice",
        "context": [{"role": "me", "text": "see you at 7"}, {"role": "them", "text": "ok"}],
        "instruction": "where are you?",
        "response": "running late, sorry 🙂",
    },
    {
        "dialog_id": 3,
        "session": "3-0",
        "contact": "Bob",
        "context": [],
        "instruction": "thanks a lot",
        "response": "you're the best, see you",
    },
]


def eval_config(adapter, data_dir, out, **kw):
    """An EvalConfig sized for tests: 8 new tokens, 3 samples."""
    from twin.eval.run import EvalConfig

    return EvalConfig(
        adapter=str(adapter), data=str(data_dir), out_dir=str(out), max_new_tokens=8, samples=3, **kw
    )
