"""Word tokens for every script: the eval's style and overlap statistics and the memory's BM25 index.

Python's ``re`` ``\\w`` matches letters and digits but not combining marks (Unicode categories Mn/Mc),
so it cut Sinhala, Devanagari, Tamil, Thai ... words apart at every vowel sign or virama ("මම හෙට
එන්නම්" became five tokens, not three) and split a decomposed "é". A word here is a run of letters,
marks, digits and underscores (the ``regex`` module's ``\\p{L}\\p{M}\\p{N}``), joined across a
zero-width (non-)joiner, which Sinhala writes inside words ("ශ්‍රී").
"""

from __future__ import annotations

import regex

_WORD = regex.compile(r"[\p{L}\p{M}\p{N}_]+(?:[\u200c\u200d]+[\p{L}\p{M}\p{N}_]+)*")


def words(text: str) -> list[str]:
    """Lowercased word tokens, any script: ``"මම හෙට එන්නම්"`` -> 3 words."""
    return _WORD.findall(text.lower())
