"""Authorship verifier: real scikit-learn on synthetic owner/contact text with distinct styles."""

from __future__ import annotations

import random

import pytest
from helpers.styled_chats import contact_text, owner_text, styled_examples

from twin.eval.authorship import authorship_block, split_messages
from twin.eval.intervals import (
    balanced_interval,
    paired_difference,
    paired_difference_interval,
    share,
    wilson_interval,
)
from twin.eval.verdict import authorship_sentence, headline


def _shuffled(examples: list[dict], seed: int) -> list[dict]:
    """Swap owner and contact texts at random: the labels no longer say who wrote what."""
    rng = random.Random(seed)
    out = []
    for ex in examples:
        a, b = ex["instruction"], ex["response"]
        if rng.random() < 0.5:
            a, b = b, a
        out.append({**ex, "context": [], "instruction": a, "response": b})
    return out


def test_distinct_styles_are_told_apart_and_replies_scored():
    train, val = styled_examples(120, 1), styled_examples(60, 2, session_prefix="v")
    real = [ex["response"] for ex in val[:30]]
    base = [contact_text(random.Random(i)) for i in range(30)]
    twin = real[:20] + base[:10]
    block, scores = authorship_block(train, val, {"real": real, "base": base, "twin": twin}, seed=0)
    assert block["status"] == "ok" and block["meaningful"] is True
    assert block["accuracy"]["balanced"] > 0.95
    assert block["real"]["share"] > 0.9 and block["base"]["share"] < 0.1
    assert block["twin"]["share"] == pytest.approx(sum(p >= 0.5 for p in scores["twin"]) / 30)
    assert 0.5 < block["twin"]["share"] < 0.8
    diff = block["twin_minus_base"]  # paired over the same prompts
    assert diff["share"] == pytest.approx(block["twin"]["share"] - block["base"]["share"])
    assert 0 < diff["low"] <= diff["share"] <= diff["high"]
    for side in ("real", "base", "twin"):
        b = block[side]
        assert b["low"] <= b["share"] <= b["high"] and b["n"] == 30
    assert len(scores["twin"]) == 30 and all(0.0 <= p <= 1.0 for p in scores["twin"])
    # seeded: the same inputs give the same block
    assert authorship_block(train, val, {"real": real, "base": base, "twin": twin}, seed=0)[0] == block
    assert "the twin is clearly more like you than the base model (paired difference" in authorship_sentence(
        block
    )


def test_training_the_verifier_is_announced_with_its_size(caplog):
    """It ran ~11 s on a 90,000-message account after the generation bar, with no line."""
    import logging

    train, val = styled_examples(120, 1), styled_examples(60, 2, session_prefix="v")
    owner, contacts = split_messages(train)
    with caplog.at_level(logging.INFO, logger="twin.eval.authorship"):
        authorship_block(train, val, {"real": [ex["response"] for ex in val]}, seed=0)
    assert [r.getMessage() for r in caplog.records] == [
        f"authorship: training the style verifier on {len(owner)} messages of yours "
        f"and {len(contacts)} of your contacts'"
    ]


def test_shuffled_labels_are_not_meaningful():
    train, val = (
        _shuffled(styled_examples(200, 3), 4),
        _shuffled(styled_examples(80, 5, session_prefix="v"), 6),
    )
    real = [ex["response"] for ex in val[:20]]
    block, _ = authorship_block(train, val, {"real": real, "base": real, "twin": real}, seed=0)
    assert block["status"] == "ok" and block["meaningful"] is False
    assert 0.3 < block["accuracy"]["balanced"] < 0.7
    assert "not meaningful" in authorship_sentence(block)
    assert "Export more" not in authorship_sentence(block)  # 20 scored of 80: val itself is big enough
    block |= {"enough_examples": False, "val_examples": 20}  # a small chat: its whole val split is 20
    sentence = authorship_sentence(block)
    assert "not meaningful" in sentence and "only 20 of your replies are in val.jsonl" in sentence
    assert "Export more of your chats" in sentence


def test_too_little_data_gives_no_number():
    train = styled_examples(20, 7)
    owner, contacts = split_messages(train)
    assert len(owner) == 40 and len(contacts) == 40  # response + "me" context turn per example
    block, scores = authorship_block(train, styled_examples(10, 8), {"real": ["x"]}, seed=0)
    assert block["status"] == "too_little_data" and scores == {}
    assert block["train"] == {"owner_messages": 40, "contact_messages": 40, "minimum": 50}
    sentence = authorship_sentence(block)
    assert "Too little data" in sentence and "40" in sentence and "%" not in sentence


def test_split_messages_dedupes_and_skips_empty():
    ex = [
        {"context": [{"role": "me", "text": "hi"}], "instruction": "yo", "response": "hi"},
        {"context": [{"role": "them", "text": "yo"}], "instruction": "  ", "response": "sure"},
    ]
    assert split_messages(ex) == (["hi", "sure"], ["yo"])


def test_shares_at_0_and_100_percent_keep_an_interval():
    """A percentile bootstrap gave 0/200 "0-0%" and a twin at 200/200 against a base at 0 "+1 to +1"."""
    zero, full = share([0.0] * 200), share([1.0] * 200)
    assert (zero["share"], zero["low"], zero["n"]) == (0.0, 0.0, 200)
    assert zero["high"] == pytest.approx(0.0188, abs=1e-4)  # Wilson: 1.96^2 / (200 + 1.96^2)
    assert full["low"] == pytest.approx(1 - 0.0188, abs=1e-4) and full["high"] == 1.0
    d = paired_difference([1.0] * 200, [0.0] * 200)
    assert d["share"] == 1.0 and d["high"] == 1.0 and 0.96 < d["low"] < 0.98
    same = paired_difference([0.0] * 200, [0.0] * 200)
    assert same["share"] == 0.0 and same["low"] < 0 < same["high"]


def test_newcombe_paired_interval_matches_the_textbook():
    # Fagerland, Lydersen & Laake, Statistical Analysis of Contingency Tables, 8.5 (Cavo et al. 2012):
    # 59 / 6 / 16 / 80 -> -0.0621 (95% CI -0.1186 to -0.0046), Newcombe's square-and-add (method 10)
    low, high = paired_difference_interval(59, 6, 16, 80)
    assert (low, high) == pytest.approx((-0.1186, -0.0046), abs=1e-4)
    first = [1.0] * 65 + [0.0] * 96  # both 59, first only 6; second only 16, neither 80
    second = [1.0] * 59 + [0.0] * 6 + [1.0] * 16 + [0.0] * 80
    d = paired_difference(first, second)
    assert d["share"] == pytest.approx(-10 / 161) and (d["low"], d["high"]) == pytest.approx((low, high))
    assert paired_difference_interval(0, 0, 0, 0) == (-1.0, 1.0)
    low, high = paired_difference_interval(0, 0, 3, 0)  # -1: clamped, never below
    assert low == -1.0 and -0.3 < high < -0.1


def test_wilson_interval_textbook_and_edges():
    # 8 of 20: 0.2188-0.6134 (Newcombe 1998a, method 3)
    assert wilson_interval(8, 20) == pytest.approx((0.2188, 0.6134), abs=1e-4)
    # Newcombe 1998a's worked examples (Stat Med 17:857, table II, method 3)
    for (k, n), want in {
        (81, 263): (0.2553, 0.3662),
        (15, 148): (0.0624, 0.1605),
        (0, 20): (0.0, 0.1611),
        (1, 29): (0.0061, 0.1718),
    }.items():
        assert wilson_interval(k, n) == pytest.approx(want, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_balanced_accuracy_interval_keeps_its_width_at_100_percent():
    # away from the edges it agrees with the normal approximation: 0.75 +- 1.96 * sqrt(.16 + .21) / 20
    low, high = balanced_interval(80, 100, 70, 100)
    assert (low, high) == pytest.approx((0.6904, 0.8096), abs=0.01)
    low, high = balanced_interval(5, 5, 5, 5)  # all right on 5 + 5 messages: a bootstrap said 100-100%
    assert high == 1.0 and 0.6 < low < 0.8
    assert balanced_interval(0, 0, 3, 3) == (0.0, 1.0)
    # the verifier's own check on a handful of held-out messages says how few they were
    train, val = styled_examples(120, 1), styled_examples(3, 2, session_prefix="v")
    block, _ = authorship_block(train, val, {"real": [ex["response"] for ex in val]}, seed=0)
    acc = block["accuracy"]
    assert acc["balanced"] == 1.0 and acc["high"] == 1.0 and acc["low"] < 0.9


def test_roc_auc_matches_sklearn_and_reads_as_separability():
    from sklearn.metrics import roc_auc_score

    from twin.eval.authorship import roc_auc

    rng = random.Random(0)
    real = [rng.random() * 0.5 + 0.4 for _ in range(50)]
    other = [rng.random() * 0.5 + 0.2 for _ in range(50)]
    got = roc_auc(real, other, seed=0)
    want = roc_auc_score([1] * 50 + [0] * 50, real + other)
    assert got["auc"] == pytest.approx(want) and 0.5 < want < 1.0
    assert got["low"] < got["auc"] < got["high"] and got["n"] == 50
    assert roc_auc(real, real, seed=0)["auc"] == pytest.approx(0.5)  # the same replies: indistinguishable
    assert roc_auc([0.9, 0.8, 0.7], [0.1, 0.2, 0.3], seed=0)["auc"] == 1.0


def test_block_has_auc_for_twin_and_base():
    train, val = styled_examples(120, 1), styled_examples(60, 2, session_prefix="v")
    real = [ex["response"] for ex in val[:40]]
    base = [contact_text(random.Random(i)) for i in range(40)]
    block, _ = authorship_block(train, val, {"real": real, "base": base, "twin": real}, seed=0)
    auc = block["auc"]
    assert auc["real_vs_twin"]["auc"] == pytest.approx(0.5)  # twin == real
    assert auc["real_vs_base"]["auc"] > 0.95  # the contacts' style is told apart
    assert "ROC AUC 0.50 (twin) and" in authorship_sentence(block)
    assert block["twin_minus_real"]["share"] == 0 and "more often than your own" not in authorship_sentence(
        block
    )


def test_a_twin_judged_you_more_often_than_you_is_explained_not_celebrated():
    # As on generated exports with voices: the twin repeats the owner's habits in every reply, while
    # the owner's own held-out replies include short ones the verifier cannot place.
    train, val = styled_examples(120, 1), styled_examples(60, 2, session_prefix="v")
    rng = random.Random(5)
    real = [owner_text(rng) for _ in range(20)] + ["Indeed.", "Please!", "However?"] * 5
    twin = [owner_text(rng) for _ in range(35)]
    base = [contact_text(random.Random(i)) for i in range(35)]
    block, scores = authorship_block(train, val, {"real": real, "base": base, "twin": twin}, seed=0)
    diff = block["twin_minus_real"]
    assert diff["low"] > 0 and diff["share"] == pytest.approx(block["twin"]["share"] - block["real"]["share"])
    lengths = block["real_lengths"]
    assert lengths["missed"] == sum(p < 0.5 for p in scores["real"]) >= 15
    assert lengths["missed_chars"] < lengths["judged_you_chars"]
    sentence = authorship_sentence(block)
    assert 'The twin is judged "you" more often than your own replies (+' in sentence
    assert "not a twin more you than you" in sentence
    assert f"short ones (median {lengths['missed_chars']:.0f} characters" in sentence
    assert "(paired difference +" in sentence and " points, 95% interval +" in sentence  # points, not %
    # the same finding in the scores alone: an AUC interval under 0.5 with the shares' difference unclear
    block["twin_minus_real"] = {"share": 0.1, "low": -0.05, "high": 0.3, "n": 35}
    block["auc"]["real_vs_twin"] = {"auc": 0.34, "low": 0.22, "high": 0.47, "n": 35}
    sentence = authorship_sentence(block)
    assert (
        "scores the twin's replies as more like you than your own (ROC AUC 0.34, 95% interval 0.22-0.47"
        in sentence
    )
    assert "not a twin more you than you" in sentence
    first = headline({"authorship": block})  # the line twin eval prints says it too
    assert first.endswith("; the twin above your own replies is the score's ceiling, not more you than you.")
    block["auc"]["real_vs_twin"] = {"auc": 0.45, "low": 0.33, "high": 0.56, "n": 35}
    assert "more you than you" not in authorship_sentence(block) + headline({"authorship": block})


def test_too_few_prompts_give_no_verdict_and_no_interval():
    train, val = styled_examples(120, 1), styled_examples(60, 2, session_prefix="v")
    real = [ex["response"] for ex in val[:3]]  # a small chat: 3 held-out replies
    base = [contact_text(random.Random(i)) for i in range(3)]
    block, _ = authorship_block(train, val, {"real": real, "base": base, "twin": real}, seed=0)
    assert block["verifier_ok"] is True  # the verifier itself is fine ...
    assert block["enough_examples"] is False and block["meaningful"] is False  # ... n = 3 is not
    block["val_examples"] = 3  # a chat whose whole val split is 3 prompts
    sentence = authorship_sentence(block)
    assert "Too little held-out data to judge: only 3 of your replies" in sentence
    assert "interval" not in sentence and "%" not in sentence and "meaningful" not in sentence
