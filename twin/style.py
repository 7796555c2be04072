"""The owner-style verifier: would a classifier take a text for the owner's?

Shared below the stages: ``twin eval`` scores generated replies with it (``twin/eval/authorship.py``)
and the preference stage of ``twin train`` uses it to pick the least owner-like sample as the
rejected reply (``twin/train/prefs.py``).

It is trained on the **train** split only: the owner's messages (every ``response`` and ``me``
context turn) against their contacts' (every ``instruction`` and ``them`` context turn), each
distinct text once per side. Features are character n-grams (TF-IDF over 1-4 characters inside
word boundaries, case kept), so emoji, punctuation and spelling habits count whatever the
language; the classifier is a class-balanced logistic regression (scikit-learn), seeded.
scikit-learn is imported only when a verifier is trained (about 3 s of import time).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from twin.prompt import unlabel

MIN_MESSAGES = 50  # distinct owner and contact messages each, below which no verifier is trained


def split_messages(examples: Iterable[dict]) -> tuple[list[str], list[str]]:
    """``(owner, contacts)``: the distinct non-empty texts each side wrote, in first-seen order.

    A group's turns of theirs are taken without the members' labels: a name is who wrote it, not
    how they write, and a verifier that learned "Anna: " as a contact's habit would tell the sides
    apart by names (no reply of mine carries one).
    """
    owner: dict[str, None] = {}
    contacts: dict[str, None] = {}
    for ex in examples:
        members = ex.get("members") or ()
        for turn in ex.get("context") or []:
            if turn.get("role") == "me":
                owner[turn.get("text", "")] = None
            else:
                contacts[unlabel(turn.get("text", ""), members)] = None
        contacts[unlabel(ex.get("instruction", ""), members)] = None
        owner[ex.get("response", "")] = None
    return [t for t in owner if t.strip()], [t for t in contacts if t.strip()]


@dataclass
class Verifier:
    """A fitted owner-vs-contacts classifier; :meth:`score` is P(owner) per text."""

    pipeline: Any

    def score(self, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        return [float(p) for p in self.pipeline.predict_proba(list(texts))[:, 1]]


def train_verifier(owner: Sequence[str], contacts: Sequence[str], *, seed: int = 0) -> Verifier:
    """Fit TF-IDF char n-grams + class-balanced logistic regression (label 1 = owner)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipeline = make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), lowercase=False, sublinear_tf=True, min_df=2),
        LogisticRegression(class_weight="balanced", max_iter=2000, random_state=seed),
    )
    pipeline.fit([*owner, *contacts], [1] * len(owner) + [0] * len(contacts))
    return Verifier(pipeline)


def verifier_for(examples: Sequence[dict], *, seed: int = 0) -> Verifier | None:
    """A verifier trained on ``examples`` (a train split), or None with too little data to train one."""
    owner, contacts = split_messages(examples)
    if len(owner) < MIN_MESSAGES or len(contacts) < MIN_MESSAGES:
        return None
    return train_verifier(owner, contacts, seed=seed)
