"""What of the decoded text may be shown: stop strings, speaker labels, held-back tails.

The reply ends at EOS or at the first stop string (the start of the next template section or a
speaker line such as ``\\nAlice: ``), so the twin never writes the other side's next message; a
speaker label opening the reply is dropped. :func:`visible_text` is applied to the text decoded so
far at every token (streaming) and once at the end.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from twin.prompt import ME_LABEL, PLAIN, member_label


def speaker_stops(
    contact: str | None = None, template: str = PLAIN, members: Sequence[str | None] = ()
) -> tuple[str, ...]:
    """Stop strings for speaker lines: a new line starting ``Me:`` or ``<contact>:`` (``Them:`` unnamed).

    The adapter learned to end with EOS and no training reply holds a speaker label; these catch a
    model (an undertrained one, or the bare base) that carries on writing the conversation, so it
    can never put words in their mouth, and :func:`_leading_label` drops such a label opening the
    reply. For every template: a chat template renders no labels, but a base pretrained on
    transcripts (the old tiny base, a model that read chat logs) writes them after its turn starts too.
    ``members``: in a group, the people whose labels the prompt shows (any name, not only the
    capitalised ones the label guard recognises).
    """
    del template  # kept for callers; every template gets the same stops
    labels = dict.fromkeys((ME_LABEL, contact or "Them", *(member_label(m) for m in members)))
    return tuple(f"\n{label}:" for label in labels)


def _find_stop(text: str, stops: Sequence[str]) -> int:
    cut = -1
    for s in stops:
        i = text.find(s)
        if i != -1 and (cut == -1 or i < cut):
            cut = i
    return cut


def _partial_stop(text: str, stops: Sequence[str]) -> int:
    """Length of the longest tail of ``text`` that could still grow into a stop string."""
    best = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:k]):
                best = k
                break
    return best


# A speaker label as the context renders one ("Alice: ", "Олег (работа): ", "Sam Carter: "): up to three
# capitalised words (or a bracketed one) and a colon. A base that read chat transcripts writes the
# labels of *other* contacts too, which no per-request stop string names; no owner reply in the
# bundled sample's train split has one at the start of a line.
_LETTER = r"[^\W\d_]"
_CAP = "[A-ZÀ-ÖØ-ÞА-ЯЁ]"
_NAME = f"{_CAP}{_LETTER}+"  # a capitalised word of two letters or more ("P.S:" and "I:" are not names)
_BRACKETED = rf"\({_LETTER}+(?: {_LETTER}+){{0,2}}\)"
_LABEL = f"{_NAME}(?: (?:{_NAME}|{_BRACKETED})){{0,2}}"
_LABEL_LINE = re.compile(rf"(?:^|\n)[ \t]*{_LABEL}:(?:[ \t]|$)")
_LABEL_START = re.compile(rf"\s*{_LABEL}:[ \t]+")
# What may still grow into a label: a name-like start of a line, nothing else yet.
_OPEN_WORD = rf"(?:{_CAP}{_LETTER}*|\({_LETTER}*(?: {_LETTER}*){{0,2}}\)?)"
_LABEL_PREFIX = re.compile(rf"[ \t]*(?:{_CAP}{_LETTER}*(?: {_OPEN_WORD}?){{0,2}}:?)?")


def _guards_labels(stops: Sequence[str]) -> bool:
    """The caller asked for speaker guarding (``speaker_stops`` are among ``stops``)."""
    return any(s.startswith("\n") and s.endswith(":") and len(s) > 2 for s in stops)


def _leading_label(text: str, stops: Sequence[str], final: bool) -> int | None:
    """How many characters of ``text`` are a speaker label it opens with ("Me: ", "Alice: "); None
    while it could still become one (only when not ``final``).

    The labels are the speaker stops (``"\nAlice:"``) without their newline, and with speaker
    guarding on, any label-shaped opening (another contact's name: "Олег (работа): "). An
    undertrained model copies the context's ``Name: text`` layout and opens the reply with a label;
    the label is never part of a message, so it is dropped (what follows it is still cut at the
    next speaker).
    """
    body = text.lstrip()
    pad = len(text) - len(body)
    for stop in stops:
        if not (stop.startswith("\n") and stop.endswith(":") and len(stop) > 2):
            continue
        label = stop[1:]
        if body.startswith(label):
            return pad + len(label)
        if not final and label.startswith(body):
            return None
    if not _guards_labels(stops):
        return 0
    if m := _LABEL_START.match(text):
        return m.end()
    if not final and _LABEL_PREFIX.fullmatch(text.rstrip("\ufffd")):  # a half-decoded letter too
        return None  # "Олег (раб" may still become a label
    return 0


def _label_cut(text: str, final: bool) -> tuple[int, int]:
    """``(where a speaker label line starts or -1, how much of the tail to hold back)``."""
    m = _LABEL_LINE.search(text, 1)
    if m:
        return m.start(), 0
    nl = text.rfind("\n")
    if not final and nl != -1 and _LABEL_PREFIX.fullmatch(text.rstrip("\ufffd"), nl + 1):
        return -1, len(text) - nl
    return -1, 0


def visible_text(text: str, stops: Sequence[str], final: bool) -> tuple[str, bool]:
    """The part of the generated text that is safe to show now, and whether a stop string was hit.

    Held back until decoding settles: an opening that may become a speaker label, a tail that may
    become a stop string or a new speaker's line, an incomplete UTF-8 character (decoded as U+FFFD)
    and trailing whitespace (the reply is stripped at the end, so the concatenated deltas always
    equal the final reply).
    """
    skip = _leading_label(text, stops, final)
    if skip is None:
        return "", False
    text = text[skip:]
    cut = _find_stop(text, stops)
    hold = 0
    if _guards_labels(stops):
        label_at, hold = _label_cut(text if cut == -1 else text[:cut], final)
        if label_at != -1:
            cut, hold = label_at, 0
    stopped = cut != -1
    if stopped:
        text = text[:cut]
    elif not final:
        text = text[: len(text) - max(hold, _partial_stop(text, stops))]
    return text.rstrip("\ufffd").strip(), stopped
