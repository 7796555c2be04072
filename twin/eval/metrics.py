"""Evaluation metrics: pure functions over lists of strings, no model, no I/O.

* Overlap with the real replies: corpus BLEU-4 (sacrebleu, its standard ``13a`` tokenizer) and
  ROUGE-1/2/L F1 (rouge-score) averaged over pairs. rouge-score's default tokenizer keeps only
  ``[a-z0-9]`` and would turn Russian text into nothing, so it gets a Unicode word tokenizer
  (:func:`twin.text.words.words`: letters with their combining marks, so a Sinhala or Hindi word is
  one token) instead.
* Style: reply length distribution (characters and words), emoji rate, the share of each script
  (a reply counts as Cyrillic, Latin, Sinhala, Devanagari ... by the majority of its letters — a
  script, not a language detector, which is enough to tell Russian from English or Sinhala in
  chats), and the owner's pet phrases.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from collections.abc import Sequence

from twin.text.words import words

# Emoji: pictographs, emoticons, transport/map, supplemental symbols, dingbats, misc symbols,
# regional-indicator flags. Variation selectors / ZWJ are not counted on their own.
_EMOJI = re.compile(
    "["
    "\U0001f1e6-\U0001f1ff"  # flags (regional indicators)
    "\U0001f300-\U0001f5ff"  # symbols & pictographs
    "\U0001f600-\U0001f64f"  # emoticons
    "\U0001f680-\U0001f6ff"  # transport & map
    "\U0001f900-\U0001f9ff"  # supplemental symbols & pictographs
    "\U0001fa70-\U0001faff"  # symbols & pictographs extended-A
    "\u2600-\u26ff"  # misc symbols
    "\u2700-\u27bf"  # dingbats
    "\u2764"
    "]"
)
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LATIN = re.compile(r"[A-Za-z\u00c0-\u024f]")

# Always in script_share (eval.json's schema); any other script a reply is written in is added by name.
SCRIPTS = ("cyrillic", "latin", "other")
# Who wrote a reply, in every eval row (eval_samples.jsonl) and block of eval.json: you, the base model
# without the adapter, the twin. GENERATED: the two a model wrote, scored against "real".
SIDES = ("real", "base", "twin")
GENERATED = ("base", "twin")


class _UnicodeTokenizer:
    """rouge-score tokenizer protocol: ``tokenize(text) -> list[str]``."""

    def tokenize(self, text: str) -> list[str]:
        return words(text)


def bleu4(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU-4 (0-100) of ``hypotheses`` against one reference each."""
    _same_length(hypotheses, references)
    if not hypotheses:
        return 0.0
    from sacrebleu.metrics import BLEU

    return float(BLEU(max_ngram_order=4).corpus_score(list(hypotheses), [list(references)]).score)


def rouge(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F1 (0-1) over hypothesis/reference pairs."""
    _same_length(hypotheses, references)
    keys = ("rouge1", "rouge2", "rougeL")
    if not hypotheses:
        return dict.fromkeys(keys, 0.0)
    from rouge_score.rouge_scorer import RougeScorer

    scorer = RougeScorer(list(keys), tokenizer=_UnicodeTokenizer())
    totals = dict.fromkeys(keys, 0.0)
    for hyp, ref in zip(hypotheses, references, strict=True):
        scores = scorer.score(ref, hyp)  # rouge-score takes (target, prediction)
        for k in keys:
            totals[k] += scores[k].fmeasure
    return {k: totals[k] / len(hypotheses) for k in keys}


def perplexity(mean_loss: float) -> float:
    """exp(mean token cross-entropy); inf when it would overflow."""
    try:
        return math.exp(mean_loss)
    except OverflowError:
        return math.inf


def count_emoji(text: str) -> int:
    return len(_EMOJI.findall(text))


def script_of(text: str) -> str:
    """The script of most of the letters: ``cyrillic``, ``latin`` (ties: cyrillic) or another script
    named by Unicode (``sinhala``, ``devanagari``, ``greek``, ``cjk`` ...: "ok මම එන්නම්" is
    ``sinhala``, so a Sinhala twin is not lumped with emoji-only replies); ``other`` with no letters."""
    cyr, lat = len(_CYRILLIC.findall(text)), len(_LATIN.findall(text))
    rest = Counter(
        _script_name(c) for c in text if c.isalpha() and not _CYRILLIC.match(c) and not _LATIN.match(c)
    )
    top, n = rest.most_common(1)[0] if rest else ("other", 0)
    if n > max(cyr, lat) or (cyr == 0 and lat == 0):
        return top
    return "cyrillic" if cyr >= lat else "latin"


def _script_name(letter: str) -> str:
    """A letter's script as the first word of its Unicode name ("SINHALA LETTER ALPAPRAANA KAYANNA")."""
    import unicodedata

    return unicodedata.name(letter, "other").split()[0].lower()


def script_columns(style: dict) -> list[str]:
    """The scripts to show for every side: Cyrillic and Latin, any other script some side wrote in,
    then ``other`` (no letters)."""
    found = {k for side in style.values() for k, v in side["script_share"].items() if v}
    extra = sorted(found - set(SCRIPTS))
    return ["cyrillic", "latin", *extra, "other"]


def _percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method), ``q`` in 0..100."""
    if not values:
        return 0.0
    s = sorted(values)
    pos = (len(s) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return float(s[lo] + (s[hi] - s[lo]) * (pos - lo))


def length_stats(texts: Sequence[str]) -> dict[str, float]:
    """Reply length in characters and words: mean, median, 90th percentile."""
    chars = [len(t) for t in texts]
    nwords = [len(words(t)) for t in texts]
    return {
        "chars_mean": statistics.fmean(chars) if chars else 0.0,
        "chars_median": float(statistics.median(chars)) if chars else 0.0,
        "chars_p90": _percentile(chars, 90),
        "words_mean": statistics.fmean(nwords) if nwords else 0.0,
        "words_median": float(statistics.median(nwords)) if nwords else 0.0,
    }


def style_stats(texts: Sequence[str]) -> dict:
    """Length, emoji and script statistics of a list of replies."""
    n = len(texts)
    emoji_counts = [count_emoji(t) for t in texts]
    scripts = Counter(script_of(t) for t in texts)
    return {
        "n": n,
        **length_stats(texts),
        "empty_share": sum(1 for t in texts if not t.strip()) / n if n else 0.0,
        # share of replies with at least one emoji, and emoji per reply
        "emoji_rate": sum(1 for c in emoji_counts if c) / n if n else 0.0,
        "emoji_per_reply": sum(emoji_counts) / n if n else 0.0,
        "script_share": {
            s: scripts.get(s, 0) / n if n else 0.0 for s in (*SCRIPTS, *sorted(scripts.keys() - set(SCRIPTS)))
        },
    }


def _ngrams(tokens: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def pet_phrases(
    texts: Sequence[str], *, n_min: int = 2, n_max: int = 3, top: int = 10, min_count: int = 2
) -> list[tuple[str, int]]:
    """The owner's most frequent phrases: ``[(phrase, replies containing it), ...]``.

    Word n-grams of length ``n_min..n_max`` are counted once per reply (so one long rant does
    not dominate), within a line: a reply of several messages is joined with newlines, and the
    end of one message and the start of the next are no phrase. A line shorter than ``n_min``
    words counts whole ("ок", "lol" are pet phrases too). An n-gram inside a longer one with the
    same count is dropped (it adds nothing). Ties are broken by longer phrase first, then
    alphabetically, so the list is stable.
    """
    counts: Counter[tuple[str, ...]] = Counter()
    for text in texts:
        grams: set[tuple[str, ...]] = set()
        for toks in map(words, text.splitlines()):
            if 0 < len(toks) < n_min:
                grams.add(tuple(toks))
            for n in range(n_min, n_max + 1):
                grams |= _ngrams(toks, n)
        counts.update(grams)
    frequent = {g: c for g, c in counts.items() if c >= min_count}

    def subsumed(g: tuple[str, ...], c: int) -> bool:
        k = len(g)
        return any(
            len(h) > k and ch == c and any(h[i : i + k] == g for i in range(len(h) - k + 1))
            for h, ch in frequent.items()
        )

    kept = [(g, c) for g, c in frequent.items() if not subsumed(g, c)]
    kept.sort(key=lambda gc: (-gc[1], -len(gc[0]), " ".join(gc[0])))
    return [(" ".join(g), c) for g, c in kept[:top]]


def phrase_share(texts: Sequence[str], phrase: str) -> float:
    """Share of ``texts`` containing ``phrase`` as a whole-word sequence."""
    if not texts:
        return 0.0
    target = tuple(words(phrase))
    if not target:
        return 0.0
    hits, k = 0, len(target)
    for t in texts:
        lines = map(words, t.splitlines())  # a phrase is within one message, as pet_phrases counts it
        if any(tuple(toks[i : i + k]) == target for toks in lines for i in range(len(toks) - k + 1)):
            hits += 1
    return hits / len(texts)


def overlap_scores(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """BLEU-4 and ROUGE-1/2/L in one dict."""
    return {"bleu4": bleu4(hypotheses, references), **rouge(hypotheses, references)}


def _same_length(a: Sequence[str], b: Sequence[str]) -> None:
    if len(a) != len(b):
        raise ValueError(f"{len(a)} hypotheses but {len(b)} references")
