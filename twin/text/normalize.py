"""A message's text as the twin sees it: one kind of line break, no control characters.

Telegram exports carry what people pasted: Windows line breaks (``\\r\\n``), old Mac ones (``\\r``),
Unicode's line and paragraph separators (U+2028, U+2029), vertical tabs and form feeds, NULs and
other C0/C1 control characters. Prepare cleans every message with :func:`clean_message` before
anything else reads it, and the server cleans every text of a request with the same function, so a
served prompt is the prompt the twin was trained on whatever the client sent.

Only control characters (Unicode category Cc) and the two separators change: the zero-width
joiner and non-joiner (U+200D, U+200C: Sinhala and Indic conjuncts, emoji sequences), variation
selectors, bidi marks and every other format character are text and stay. The PII scrubber removes
a few invisible ones where they can split a number or an e-mail (:func:`strip_invisible`).
"""

from __future__ import annotations

import re

# Unicode's mandatory breaks (line-break classes BK, CR, LF, NL) become "\n": the line they end stays a line.
_BREAKS = "\r\x0b\x0c\x85\u2028\u2029"
# Any character that changes; a text without one (nearly every message) is returned as it is.
_SPECIAL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_TABLE = {
    **{c: None for c in [*range(0x00, 0x20), *range(0x7F, 0xA0)] if c != 0x0A},  # dropped
    **{ord(c): "\n" for c in _BREAKS},
    ord("\t"): " ",
}


def normalize_text(text: str) -> str:
    """``text`` with line breaks as ``\\n`` (``\\r\\n`` is one break), tabs as spaces, and every other
    control character removed."""
    if _SPECIAL.search(text) is None:
        return text
    return text.replace("\r\n", "\n").translate(_TABLE)


def clean_message(text: str) -> str:
    """A message's text as prompts show it, in training and serving: normalized, without the spaces
    and breaks around it ("" when nothing else was there)."""
    return normalize_text(text).strip()


# Invisible characters pasted text carries inside numbers and addresses ("+380\u200b67...", "123\u00ad45"):
# the zero-width space, word joiner, BOM and soft hyphen mean nothing in the scripts twin's users write
# and go wherever they are; the zero-width (non-)joiner and the bidi marks shape Sinhala conjuncts,
# emoji sequences and right-to-left text, so they go only between two characters of a number, an
# e-mail or a link (ASCII letters, digits, "@", ".", "+", "-", "_", ":", "/", "(", ")").
_INVISIBLE = re.compile(
    r"[\u200b\u2060\ufeff\u00ad\u180e]+"
    r"|(?<=[0-9A-Za-z@.+\-_:/()])[\u200c\u200d\u200e\u200f\u202a-\u202e\u2066-\u2069]+(?=[0-9A-Za-z@.+\-_:/()])"
)
_INVISIBLE_GATE = re.compile(r"[\u200b-\u200f\u2060\ufeff\u00ad\u180e\u202a-\u202e\u2066-\u2069]")


def strip_invisible(text: str) -> str:
    """``text`` without the invisible characters that can split a phone, a card or an e-mail (see
    ``_INVISIBLE``); the PII scrubber calls it first, so what it removes is gone from training text too."""
    if _INVISIBLE_GATE.search(text) is None:
        return text
    return _INVISIBLE.sub("", text)
