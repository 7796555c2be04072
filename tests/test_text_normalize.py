"""Control characters and foreign line breaks in message texts: prepare cleans them out of every
example, the server cleans a request's texts with the same function, and the served prompt is the
token-for-token prompt the twin was trained on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.raw_chats import write_chat

from twin.prepare.config import PrepareConfig
from twin.prepare.pipeline import process_dialog
from twin.prompt import build_training_pair
from twin.text.normalize import clean_message, normalize_text

T0 = 1_700_000_000
ZWJ, ZWNJ, VS16 = "\u200d", "\u200c", "\ufe0f"
SINHALA = "ශ්\u200dරී"  # "shri": the conjunct is written with a ZWJ
FAMILY = f"👩{ZWJ}👩{ZWJ}👧"  # one emoji of three, joined by ZWJs
HEART = f"❤{VS16}"  # the emoji form of the heart, by its variation selector

# (as exported, as the twin must see it)
DIRTY = [
    ("hi Bob\r\nare you there?\rhello", "hi Bob\nare you there?\nhello"),  # Windows and old Mac breaks
    ("line\u2028sep\u2029para", "line\nsep\npara"),  # Unicode's line and paragraph separators
    ("vertical\x0btab\x0cfeed\x85nel", "vertical\ntab\nfeed\nnel"),  # Word's Shift+Enter, page break, NEL
    ("nul\x00 bell\x07 esc\x1b del\x7f c1\x9b", "nul bell esc del c1"),  # dropped
    ("a\tb", "a b"),
    (f"{SINHALA} {FAMILY} {HEART} mi{ZWNJ}x", f"{SINHALA} {FAMILY} {HEART} mi{ZWNJ}x"),  # joiners stay
    ("\x00\r\n  padded \t\r\n", "padded"),
]


@pytest.mark.parametrize(("raw", "want"), DIRTY)
def test_clean_message_normalizes_breaks_and_drops_controls_but_keeps_joiners(raw, want):
    assert clean_message(raw) == want
    assert clean_message(want) == want  # idempotent: a served example's text is left as trained


def test_a_clean_text_is_returned_as_it_is():
    text = f"Привет 👋 {FAMILY}\nok"
    assert normalize_text(text) is text


def _raw(tmp_path: Path, rows: list[tuple[bool, str, str | None]], name: str = "Bob\x00\r\n") -> Path:
    return write_chat(tmp_path / "7.jsonl", 7, name, rows)


def _examples(path: Path, **cfg) -> list[dict]:
    res = process_dialog(path, PrepareConfig(val_fraction=0.0, **cfg), len)
    return [json.loads(line) for line in res["text"]["main"]["train"].splitlines()]


PERSONAL = [
    (False, "hey\r\nyou there?\x0b", None),
    (False, "\x00\x1f", None),  # nothing but control characters: no text, no turn
    (True, f"yes\u2028{HEART}\x07", None),
    (False, "so\tsaturday?\x9b", None),
    (True, f"{SINHALA}\r\nsure\x00", None),
]


def test_prepare_examples_carry_no_control_characters(tmp_path):
    first, second = _examples(_raw(tmp_path, PERSONAL))
    assert first["contact"] == "Bob"
    assert (first["instruction"], first["response"]) == ("hey\nyou there?", f"yes\n{HEART}")
    assert second["context"] == [
        {"role": "them", "text": "hey\nyou there?"},
        {"role": "me", "text": f"yes\n{HEART}"},
    ]
    assert (second["instruction"], second["response"]) == ("so saturday?", f"{SINHALA}\nsure")


def test_a_group_members_name_loses_its_control_characters(tmp_path):
    rows = [
        (False, "who's in?\r\n", "Anna\x00"),
        (False, "me\x0b", "Tom\u2028Lee"),
        (True, "count me in", None),
    ]
    (ex,) = _examples(_raw(tmp_path, rows, name="Climbing\x07"))
    assert ex["contact"] == "Climbing" and ex["members"] == ["Anna", "Tom Lee"]
    assert ex["instruction"] == "Anna: who's in?\nTom Lee: me"


def test_telegrams_own_pii_spans_still_hit_after_a_windows_line_break(tmp_path):
    text = "call me\r\n+1 415 555 0134\x00 ok"
    path = _raw(tmp_path, [(False, text, None), (True, "done", None)])
    rec = json.loads(path.read_text().splitlines()[0])
    rec["pii"] = [[text.index("+"), len("+1 415 555 0134"), "phone"]]  # offsets in the text as exported
    path.write_text(json.dumps(rec) + "\n" + path.read_text().splitlines()[1] + "\n")
    (ex,) = _examples(path)
    assert ex["instruction"] == "call me\n[PHONE] ok"


def test_served_prompt_of_dirty_texts_is_the_trained_prompt(engine, tmp_path):
    """The same dirty messages through prepare and through /reply and /v1/chat/completions (as a client
    would send them, unclean): the served prompt's token ids are the training prompt's."""
    from twin.inference.generate import GenParams
    from twin.serve.schemas import ChatCompletionRequest, ReplyRequest

    _, trained = _examples(_raw(tmp_path, PERSONAL))
    adapter = engine.adapters["twin"]
    prompt, _ = build_training_pair(trained, template=adapter.meta.template)
    want = engine.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    them, me = PERSONAL[0][1], PERSONAL[2][1]
    reply = ReplyRequest(
        message=PERSONAL[3][1],
        contact="Bob\x00\r\n",
        history=[{"role": "them", "text": them}, {"role": "me", "text": me}],
    )
    chat = ChatCompletionRequest(
        messages=[
            {"role": "user", "content": them},
            {"role": "assistant", "content": me},
            {"role": "user", "content": [{"type": "text", "text": "so\t"}, {"type": "text", "text": "saturday?\x9b"}],
             "name": "Bob\x00\r\n"},
        ]
    )  # fmt: skip
    for conv in (reply.conversation(), chat.conversation()):
        _, ids = engine.prompt_ids(adapter, conv, GenParams(max_new_tokens=10))
        assert ids == want


def test_what_you_sent_after_a_draft_is_cleaned_as_prepare_cleans_your_messages():
    """twin drafts' feedback (your sent text: a preference pair's chosen reply) is training data too."""
    from types import SimpleNamespace

    from twin.drafts.chats import Chat
    from twin.drafts.context import Conversation
    from twin.drafts.followup import Pending
    from twin.text.scrub import Scrubber

    chat = Chat(peer_id=7, dialog_id=7, name="Bob", input_entity=None, group=False)
    conv = Conversation(
        {"message": "free?", "history": [], "contact": "Bob", "chat_id": 7}, last_incoming_id=1
    )
    pending = Pending(chat, conv, "yes", opened=0.0)
    pending.note(SimpleNamespace(id=2, message="yes\r\nsure\x00 ", fwd_from=None), now=1.0, window_s=60.0)
    assert pending.record(Scrubber(), closed=True)["sent"] == "yes\nsure"
