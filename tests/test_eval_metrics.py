"""Eval metrics on a fixed tiny fixture, checked against values computed by hand."""

from __future__ import annotations

import math

import pytest

from twin.eval import metrics as m

# Two hypothesis/reference pairs whose n-gram counts are easy to do on paper.
HYP = ["a b c d e", "a b c d"]
REF = ["a b c d f", "a b c d e f"]


def test_bleu4_single_pair_by_hand():
    # 1..4-gram precisions 4/5, 3/4, 2/3, 1/2; same length so no brevity penalty.
    expected = 100 * (0.8 * 0.75 * (2 / 3) * 0.5) ** 0.25
    assert m.bleu4(HYP[:1], REF[:1]) == pytest.approx(expected, abs=1e-3)


def test_bleu4_brevity_penalty_by_hand():
    # All precisions 1, hypothesis 4 words vs reference 6: BP = exp(1 - 6/4).
    assert m.bleu4(HYP[1:], REF[1:]) == pytest.approx(100 * math.exp(-0.5), abs=1e-3)


def test_bleu4_corpus_pools_counts():
    # Corpus BLEU sums clipped matches: 8/9, 6/7, 4/5, 2/3; lengths 9 vs 11.
    p = (8 / 9) * (6 / 7) * (4 / 5) * (2 / 3)
    expected = 100 * math.exp(1 - 11 / 9) * p**0.25
    assert m.bleu4(HYP, REF) == pytest.approx(expected, abs=1e-3)
    assert m.bleu4(["x y z w"], ["x y z w"]) == pytest.approx(100.0)
    assert m.bleu4([], []) == 0.0


def test_rouge_by_hand():
    r = m.rouge(HYP, REF)
    # pair 1: R1 4/5, R2 3/4, LCS 4 of 5; pair 2: R1 F(1, 4/6)=0.8, R2 F(1, 3/5)=0.75, L 0.8.
    assert r["rouge1"] == pytest.approx(0.8)
    assert r["rouge2"] == pytest.approx(0.75)
    assert r["rougeL"] == pytest.approx(0.8)


def test_rouge_counts_cyrillic_words():
    # rouge-score's own tokenizer drops non-ASCII letters (this would be 0); ours keeps them.
    r = m.rouge(["Привет, как дела?"], ["привет как ты"])
    assert r["rouge1"] == pytest.approx(2 / 3)
    assert r["rouge2"] == pytest.approx(0.5)
    assert r["rougeL"] == pytest.approx(2 / 3)


def test_words_keep_combining_marks_together():
    # re's \\w stops at vowel signs and viramas (Mn/Mc): "මම හෙට එන්නම්" ("I'll come tomorrow") was 5 tokens
    assert m.words("මම හෙට එන්නම්") == ["මම", "හෙට", "එන්නම්"]
    assert m.words("ශ්‍රී ලංකා") == ["ශ්‍රී", "ලංකා"]  # a zero-width joiner inside the first word
    assert m.words("नमस्ते दोस्त!") == ["नमस्ते", "दोस्त"]
    assert m.words("Cafe\u0301, don't 👨‍👩‍👧 ok_2") == ["cafe\u0301", "don", "t", "ok_2"]
    assert m.words("Привет, как дела?") == ["привет", "как", "дела"]
    s = m.style_stats(["මම හෙට එන්නම්", "හරි"])
    assert s["words_mean"] == pytest.approx(2.0)
    assert m.pet_phrases(["මම හෙට එන්නම්", "මම හෙට එන්නම් හරි"]) == [("මම හෙට එන්නම්", 2)]


def test_rouge_empty_hypothesis_scores_zero_and_lengths_must_match():
    assert m.rouge([""], ["hello there"])["rouge1"] == 0.0
    with pytest.raises(ValueError):
        m.rouge(["a"], ["a", "b"])


STYLE = ["ok 👍", "привет как дела", "see you at 7", "🙂🙂"]


def test_style_stats_by_hand():
    s = m.style_stats(STYLE)
    assert s["n"] == 4
    # chars 4, 15, 12, 2
    assert s["chars_mean"] == pytest.approx(8.25)
    assert s["chars_median"] == pytest.approx(8.0)
    assert s["chars_p90"] == pytest.approx(14.1)  # 12 + 0.7 * (15 - 12)
    # words 1, 3, 4, 0
    assert s["words_mean"] == pytest.approx(2.0)
    assert s["words_median"] == pytest.approx(2.0)
    assert s["emoji_rate"] == pytest.approx(0.5)
    assert s["emoji_per_reply"] == pytest.approx(0.75)
    assert s["script_share"] == {"cyrillic": 0.25, "latin": 0.5, "other": 0.25}
    assert s["empty_share"] == 0.0


def test_style_stats_empty_inputs():
    s = m.style_stats([])
    assert s["n"] == 0 and s["emoji_rate"] == 0.0 and s["chars_mean"] == 0.0
    assert m.style_stats(["", "x"])["empty_share"] == 0.5


def test_script_of_majority():
    assert m.script_of("okay да") == "latin"  # 4 Latin letters vs 2 Cyrillic
    assert m.script_of("ок yes") == "latin"  # 2 vs 3
    assert m.script_of("ok да") == "cyrillic"  # 2 vs 2: ties go Cyrillic
    assert m.script_of("123 !! 🙂") == "other"
    # Sinhala letters (its vowel signs are marks, not letters): "ok" is 2 Latin letters against 5
    assert m.script_of("ok මම එන්නම්") == "sinhala" and m.script_of("okay, හරි") == "latin"
    assert m.script_of("नमस्ते ok") == "devanagari" and m.script_of("Γειά σου") == "greek"


def test_a_sinhala_writer_gets_a_sinhala_column_not_other():
    """Sinhala replies are not lumped with emoji-only ones: the share names the script, and the
    report's columns are Cyrillic, Latin, every other script some side used, then other."""
    real, twin = m.style_stats(["මම ගෙදර ආවා", "ok", "🙂"]), m.style_stats(["හරි", "හරි"])
    assert real["script_share"] == pytest.approx(
        {"cyrillic": 0, "latin": 1 / 3, "other": 1 / 3, "sinhala": 1 / 3}
    )
    assert twin["script_share"]["sinhala"] == 1.0 and twin["script_share"]["other"] == 0.0
    base = m.style_stats(["привет"])
    assert m.script_columns({"real": real, "base": base, "twin": twin}) == [
        "cyrillic",
        "latin",
        "sinhala",
        "other",
    ]


PET = ["see you later", "ok see you", "see you soon", "ок", "ок", "thanks a lot", "thanks a lot man"]


def test_pet_phrases_by_hand():
    # "see you" in 3 replies; "thanks a lot" in 2 (its parts "thanks a"/"a lot" are subsumed);
    # the one-word reply "ок" twice.
    assert m.pet_phrases(PET) == [("see you", 3), ("thanks a lot", 2), ("ок", 2)]
    assert m.pet_phrases(PET, top=1) == [("see you", 3)]
    assert m.pet_phrases(PET, min_count=3) == [("see you", 3)]


def test_a_phrase_does_not_span_two_messages_of_one_reply():
    """A reply of two messages ("ok ok poddak inna" then "උපන්දිනයට සුභ පැතුම්") is joined with a
    newline: "inna උපන්දිනයට" is no phrase of the owner's, and a one-word message counts whole."""
    replies = ["ok ok poddak inna\nඋපන්දිනයට සුභ පැතුම්", "kawda enne inna\nඋපන්දිනයට සුභ", "ok\nhi there", "ok"]
    phrases = dict(m.pet_phrases(replies))
    assert phrases == {"උපන්දිනයට සුභ": 2, "ok": 2}
    assert m.phrase_share(replies, "inna උපන්දිනයට") == 0.0 and m.phrase_share(replies, "ok") == 0.75


def test_phrase_share():
    assert m.phrase_share(PET, "see you") == pytest.approx(3 / 7)
    assert m.phrase_share(PET, "Thanks a lot!") == pytest.approx(2 / 7)
    assert m.phrase_share([], "x") == 0.0


def test_perplexity():
    assert m.perplexity(0.0) == 1.0
    assert m.perplexity(math.log(20)) == pytest.approx(20)
    assert m.perplexity(1e6) == math.inf
