"""Authorship score: would a style classifier take a reply for the owner's?

A verifier is trained on the **train** split only: the owner's messages (every ``response`` and
``me`` context turn) against their contacts' (every ``instruction`` and ``them`` context turn),
each distinct text once per side. Features are character n-grams (TF-IDF over 1-4 characters
inside word boundaries, case kept), so emoji, punctuation and spelling habits count whatever the
language; the classifier is a class-balanced logistic regression (scikit-learn), seeded.

On the val split it reports:

* its own sanity check: balanced accuracy on real held-out messages (owner vs contacts). When
  that is under :data:`MIN_ACCURACY` or its 95% interval reaches down to chance (0.5), the score
  is flagged ``meaningful: false`` and the report says so;
* the share of real, base and twin replies it judges "owner" (probability >= 0.5), each with its
  Wilson score 95% interval, and a per-reply probability; and the paired difference twin - base
  over the same prompts (``twin_minus_base``), with Newcombe's paired score interval (method 10,
  from the 2x2 table of the twin's and the base's "owner" flags) — :mod:`twin.eval.intervals`. A
  percentile bootstrap would collapse to a point at 0% or 100% (a base judged "owner" 0 times in
  200: "0-0%"); these give 0-1.9%;
* how well its P(owner) tells the real replies from the twin's and from the base's: ROC AUC
  (``auc``: ``real_vs_twin``, ``real_vs_base``; 0.5 = indistinguishable, 1.0 = always told apart),
  with a bootstrap interval over prompts;
* the paired difference twin - real (``twin_minus_real``) and the median length of the real replies
  it took for the owner's and of those it missed (``real_lengths``): on generated exports whose
  owner has a voice of their own, the twin was judged "you" more often than the real replies, with
  the missed real replies the short ones, and the report says what that means (``verdict.py``).

Fewer than :data:`MIN_EXAMPLES` scored prompts: the block says ``enough_examples: false`` and
``meaningful: false`` whatever the verifier's accuracy — a share of 3 replies is not a measurement,
and the report prints no interval for it.

Fewer than :data:`MIN_MESSAGES` distinct owner or contact messages in train: no verifier, the
block says ``status: too_little_data`` with the counts. scikit-learn is imported only when a
verifier is trained: it costs about 3 s of import time on a busy 2-core machine (it pulls in scipy
and pandas), measured with ``python -X importtime``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from twin.eval.intervals import balanced_interval, paired_difference, share
from twin.eval.metrics import SIDES

# The verifier itself lives below the stages (train's preference stage uses it too).
from twin.style import MIN_MESSAGES, Verifier, split_messages, train_verifier

MIN_EXAMPLES = 30  # scored prompts below which no share or interval is reported as meaning anything
MIN_ACCURACY = 0.6
BOOTSTRAP = 1000

log = logging.getLogger(__name__)


def held_out_accuracy(verifier: Verifier, owner: Sequence[str], contacts: Sequence[str]) -> dict:
    """Balanced accuracy (mean of the two recalls) on real held-out messages, with its 95% interval
    (:func:`~twin.eval.intervals.balanced_interval`: the two recalls' Wilson intervals combined)."""
    hits_owner = [float(p >= 0.5) for p in verifier.score(owner)]
    hits_contacts = [float(p < 0.5) for p in verifier.score(contacts)]
    low, high = balanced_interval(sum(hits_owner), len(hits_owner), sum(hits_contacts), len(hits_contacts))
    recall_owner = sum(hits_owner) / len(hits_owner)
    recall_contacts = sum(hits_contacts) / len(hits_contacts)
    return {
        "balanced": (recall_owner + recall_contacts) / 2,
        "low": float(low),
        "high": float(high),
        "owner_recall": recall_owner,
        "contact_recall": recall_contacts,
        "owner_messages": len(hits_owner),
        "contact_messages": len(hits_contacts),
    }


def roc_auc(real: Sequence[float], other: Sequence[float], *, seed: int = 0, n: int = BOOTSTRAP) -> dict:
    """ROC AUC of P(owner) separating ``real`` replies (positives) from ``other`` (the twin's or the
    base's, same prompts), with a percentile-bootstrap 95% interval that resamples prompts (pairs)."""
    from sklearn.metrics import roc_auc_score  # lazy: scikit-learn is slow to import

    real_a, other_a = np.asarray(real, dtype=float), np.asarray(other, dtype=float)
    m = len(real_a)
    labels = np.r_[np.ones(m), np.zeros(len(other_a))]
    value = float(roc_auc_score(labels, np.r_[real_a, other_a]))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n):
        idx = rng.integers(0, m, size=m)
        draws.append(_auc_ranks(real_a[idx], other_a[idx]))
    low, high = np.percentile(draws, [2.5, 97.5])
    return {"auc": value, "low": float(low), "high": float(high), "n": m}


def _auc_ranks(pos: Any, neg: Any) -> float:
    """Mann-Whitney AUC (ties count half): the same figure as roc_auc_score, fast enough to bootstrap."""
    from scipy.stats import rankdata

    ranks = rankdata(np.r_[pos, neg])
    n_pos, n_neg = len(pos), len(neg)
    return float((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def real_lengths(real: Sequence[str], scores: Sequence[float]) -> dict:
    """Median length in characters of the real replies the verifier took for the owner's and of those
    it did not (``None`` for an empty side): short replies carry few habits to know anyone by."""

    def median(xs: list[int]) -> float | None:
        return float(np.median(xs)) if xs else None

    taken = [len(t) for t, p in zip(real, scores, strict=True) if p >= 0.5]
    missed = [len(t) for t, p in zip(real, scores, strict=True) if p < 0.5]
    return {"judged_you_chars": median(taken), "missed_chars": median(missed), "missed": len(missed)}


def authorship_block(
    train_examples: Sequence[dict], val_examples: Sequence[dict], replies: dict[str, Sequence[str]], seed: int
) -> tuple[dict, dict[str, list[float]]]:
    """The ``authorship`` block of eval.json and the per-reply P(owner) of each side in ``replies``.

    ``replies`` maps ``real``/``base``/``twin`` to the replies in row order.
    """
    owner, contacts = split_messages(train_examples)
    counts = {"owner_messages": len(owner), "contact_messages": len(contacts), "minimum": MIN_MESSAGES}
    if len(owner) < MIN_MESSAGES or len(contacts) < MIN_MESSAGES:
        return {"status": "too_little_data", "train": counts}, {}
    # ~11 s with no line on a 90,000-message account (25,000 messages), after the generation bar
    log.info("authorship: training the style verifier on %d messages of yours and %d of your contacts'",
             len(owner), len(contacts))  # fmt: skip
    verifier = train_verifier(owner, contacts, seed=seed)
    val_owner, val_contacts = split_messages(val_examples)
    if not val_owner or not val_contacts:
        return {"status": "no_held_out_messages", "train": counts}, {}
    accuracy = held_out_accuracy(verifier, val_owner, val_contacts)
    verifier_ok = accuracy["balanced"] >= MIN_ACCURACY and accuracy["low"] > 0.5
    scores = {side: verifier.score(replies[side]) for side in SIDES if side in replies}
    n = min((len(v) for v in scores.values()), default=0)
    block: dict = {
        "status": "ok",
        "meaningful": verifier_ok and n >= MIN_EXAMPLES,
        "verifier_ok": verifier_ok,
        "enough_examples": n >= MIN_EXAMPLES,
        "min_examples": MIN_EXAMPLES,
        "val_examples": len(val_examples),
        "accuracy": accuracy,
        "train": counts,
        "min_accuracy": MIN_ACCURACY,
    }
    for side, ps in scores.items():
        block[side] = share([float(p >= 0.5) for p in ps])
        block[side]["mean_probability"] = sum(ps) / len(ps) if ps else float("nan")
    if "base" in scores and "twin" in scores:  # paired: the same prompts, so the difference is sharper
        block["twin_minus_base"] = paired_difference(
            [float(p >= 0.5) for p in scores["twin"]], [float(p >= 0.5) for p in scores["base"]]
        )
    if "real" in scores and "twin" in scores:  # a twin judged "you" more often than you: see verdict.py
        block["twin_minus_real"] = paired_difference(
            [float(p >= 0.5) for p in scores["twin"]], [float(p >= 0.5) for p in scores["real"]]
        )
        block["real_lengths"] = real_lengths(replies["real"], scores["real"])
    if "real" in scores and n >= 2:
        block["auc"] = {
            f"real_vs_{side}": roc_auc(scores["real"], scores[side], seed=seed)
            for side in ("twin", "base")
            if side in scores
        }
    return block, scores
