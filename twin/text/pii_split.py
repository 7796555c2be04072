"""Numbers typed over several messages of a dialog: a card, a phone or an IBAN cut in two, a card
typed in fours over three or four messages, a phone over three. Each part is replaced with the
number's placeholder; ``out`` holds the scrubbed earlier messages and is updated in place. Called by
:func:`twin.text.scrub.scrub_messages` while the message before came through whole.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from twin.text import pii_numbers as N

if TYPE_CHECKING:
    from twin.text.scrub import Scrubber


def iban_head(texts: Sequence[str], i: int, scrubber: Scrubber, out: list[str]) -> str:
    """``texts[i]`` with its head as ``[IBAN]`` when it ends an IBAN begun in ``texts[i - 1]`` (replaced
    in ``out[-1]`` too), before either is scrubbed alone: the head's digits may pass as a phone."""
    cut = N.split_iban(texts[i - 1], texts[i])
    if cut is None:
        return texts[i]
    out[-1] = scrubber.replace(texts[i - 1], [cut[0]], "IBAN")
    return scrubber.replace(texts[i], [cut[1]], "IBAN")


def number_over_messages(texts: Sequence[str], i: int, scrubber: Scrubber, out: list[str]) -> str:
    """``texts[i]`` scrubbed as the last part of a number begun in the messages before it (``out[-1]``
    is ``texts[i - 1]`` as it came out, unchanged)."""
    text = texts[i]
    clean = _two(texts[i - 1], text, scrubber, out)
    if clean == text and FOURS.fullmatch(text.strip()):
        clean = _card_in_fours(texts, i, scrubber, out)
    if clean == text and i > 1 and out[-2] == texts[i - 2]:
        clean = _phone_in_three(texts, i, scrubber, out)
    return clean


def _two(prev: str, text: str, scrubber: Scrubber, out: list[str]) -> str:
    """A card or a phone typed over two messages: both parts replaced (``out[-1]`` is ``prev``'s output)."""
    kind, cut = "CARD", N.split_card(prev, text)
    if cut is None:
        kind, cut = "PHONE", scrubber.phones.split_spans(prev, text)
    if cut is None:
        return text
    out[-1] = scrubber.replace(prev, [cut[0]], kind)
    return scrubber.replace(text, [cut[1]], kind)


FOURS = re.compile(r"\d{4}(?:[ \-]\d{4}){0,2}")  # a message of one to three groups of four digits
_CARD_TAIL_4 = re.compile(r"(?<![\w.,+\-])\d{4}(?:[ \-]\d{4}){0,2}(?=\W{0,2}$)")


def _card_in_fours(texts: Sequence[str], i: int, scrubber: Scrubber, out: list[str]) -> str:
    """A 16-digit card typed in fours over three or four messages ("карта 5375", "4112", "3456 7894"; or
    the card word in the message before the first four): every part replaced. ``texts[i]`` is the last part."""
    parts, j, n = [i], i - 1, len(texts[i].strip()) // 5 * 4 + 4
    while j >= 0 and n < 16 and out[j] == texts[j] and FOURS.fullmatch(texts[j].strip()):
        parts.insert(0, j)
        n += len(texts[j].strip()) // 5 * 4 + 4
        j -= 1
    spans = [(k, _stripped_span(texts[k])) for k in parts]
    if n < 16 and j >= 0 and out[j] == texts[j] and (m := _CARD_TAIL_4.search(texts[j])):
        spans.insert(0, (j, m.span()))  # "карта 5375": the first fours after the card word
        worded = N.card_word_before(texts[j], m.start())
    else:
        worded = j >= 0 and N.card_word_before(texts[j], len(texts[j]))
    digits = "".join(re.sub(r"\D", "", texts[k][a:b]) for k, (a, b) in spans)
    if not (worded and len(spans) >= 3 and len(digits) == 16 and N.luhn_ok(digits)):
        return texts[i]
    for k, span in spans[:-1]:
        out[k] = scrubber.replace(texts[k], [span], "CARD")
    return scrubber.replace(texts[i], [spans[-1][1]], "CARD")


def _phone_in_three(texts: Sequence[str], i: int, scrubber: Scrubber, out: list[str]) -> str:
    """A phone typed over three messages, ``texts[i]`` the last: every part replaced."""
    spans = scrubber.phones.split3_spans(texts[i - 2], texts[i - 1], texts[i])
    if spans is None:
        return texts[i]
    out[-2] = scrubber.replace(texts[i - 2], [spans[0]], "PHONE")
    out[-1] = scrubber.replace(texts[i - 1], [spans[1]], "PHONE")
    return scrubber.replace(texts[i], [spans[2]], "PHONE")


def _stripped_span(text: str) -> tuple[int, int]:
    a = len(text) - len(text.lstrip())
    return a, a + len(text.strip())
