"""Sessions and turns on hand-made dialogs, checked against hand-computed answers."""

from __future__ import annotations

from twin.records import iso_utc, make_record
from twin.text.sessions import build_sessions, merge_turns, split_sessions

T0 = 1_700_000_000  # 2023-11-14T22:13:20Z
H = 3600


def rec(i: int, t: float, out: bool, text: str = "x", **kw) -> dict:
    return make_record(
        source="telegram", dialog_id=7, dialog_name="Bob", id=i, date=iso_utc(t), out=out, text=text, **kw
    )


def test_gap_exactly_at_threshold_does_not_split():
    recs = [rec(1, T0, False), rec(2, T0 + 24 * H, True), rec(3, T0 + 48 * H + 1, False)]
    sessions = split_sessions(recs, gap_hours=24)
    # 24 h exactly: same session; 24 h + 1 s: new session
    assert [[r["id"] for r in s] for s in sessions] == [[1, 2], [3]]


def test_custom_gap_and_unsorted_input():
    recs = [rec(3, T0 + 5 * H, False), rec(1, T0, False), rec(2, T0 + 1 * H, True)]
    assert [[r["id"] for r in s] for s in split_sessions(recs, gap_hours=2)] == [[1, 2], [3]]
    assert [[r["id"] for r in s] for s in split_sessions(recs, gap_hours=6)] == [[1, 2, 3]]


def test_same_sender_runs_merge_with_newlines():
    recs = [
        rec(1, T0, False, "hey"),
        rec(2, T0 + 10, False, "you there?"),
        rec(3, T0 + 20, True, "yes"),
        rec(4, T0 + 30, True, "what's up 😅"),
        rec(5, T0 + 40, False, "Привет! 👋"),
    ]
    turns = merge_turns(recs)
    assert [(t.role, t.text, t.message_ids) for t in turns] == [
        ("them", "hey\nyou there?", [1, 2]),
        ("me", "yes\nwhat's up 😅", [3, 4]),
        ("them", "Привет! 👋", [5]),
    ]


def test_media_only_empty_and_forwarded_messages_neither_form_nor_split_turns():
    recs = [
        rec(1, T0, False, "look at this"),
        rec(2, T0 + 5, True, "", media="sticker"),  # my sticker: no text
        rec(3, T0 + 9, False, "", media="photo"),
        rec(4, T0 + 10, False, "   "),
        rec(5, T0 + 11, True, "breaking news", forwarded=True),  # not my words
        rec(6, T0 + 12, False, "nice, right?"),
        rec(7, T0 + 13, True, "wow"),
    ]
    turns = merge_turns(recs)
    assert [(t.role, t.text) for t in turns] == [("them", "look at this\nnice, right?"), ("me", "wow")]


def test_media_keeps_a_session_alive():
    # a photo 20 h after the last message and a reply 20 h after the photo: one session
    recs = [
        rec(1, T0, False, "hi"),
        rec(2, T0 + 20 * H, True, "", media="photo"),
        rec(3, T0 + 40 * H, True, "ok"),
    ]
    sessions = build_sessions(recs, 24)
    assert len(sessions) == 1
    # the photo shows as its mark, never as words to learn
    assert [(t.role, t.text, t.reply) for t in sessions[0].turns] == [
        ("them", "hi", "hi"),
        ("me", "[photo]\nok", "ok"),
    ]


def test_build_sessions_ids_and_clean_hook():
    recs = [rec(1, T0, False, "a@b.io"), rec(2, T0 + 60, True, "ok"), rec(3, T0 + 30 * H, True, "later")]
    sessions = build_sessions(recs, 24, clean=str.upper)
    assert [s.id for s in sessions] == ["7-0", "7-1"]
    assert [t.text for t in sessions[0].turns] == ["A@B.IO", "OK"]
    assert build_sessions([], 24) == []


def test_one_sided_dialog_has_one_turn_per_session():
    recs = [rec(i, T0 + i * 60, True, f"note {i}") for i in range(1, 5)]
    (s,) = build_sessions(recs, 24)
    assert len(s.turns) == 1 and s.turns[0].text == "note 1\nnote 2\nnote 3\nnote 4"


def test_scrubber_sees_the_question_within_a_session_only():
    from twin.text.scrub import Scrubber

    recs = [
        rec(1, T0, False, "what's the wifi password?"),
        rec(2, T0 + 30, False, "Fwd: pelican7", forwarded=True),  # someone else's words: a mark, no answer
        rec(3, T0 + 60, True, "pelican7"),
        rec(4, T0 + 120, False, "and the door code?"),
        rec(5, T0 + 30 * H, True, "4821"),  # a day later: a new session, the question is out of view
    ]
    s = Scrubber()
    sessions = build_sessions(recs, 24, scrubber=s)
    assert [[(t.role, t.text) for t in x.turns] for x in sessions] == [
        [
            ("them", "what's the wifi password?\n[forwarded message]"),
            ("me", "[PASSWORD]"),
            ("them", "and the door code?"),
        ],
        [("me", "4821")],
    ]
    assert s.counts == {"PASSWORD": 1}
