"""The text the PII detectors read: typographic noise made plain, one character for one.

Pasted and phone-typed chat text carries characters that split a number or an address for a regex but
not for a reader: no-break and thin spaces, odd hyphens, full-width digits, letters typed for digits.
:func:`plain_view` gives a same-length copy with those made ASCII; the scrubber runs its detectors on it
and :func:`restore` puts the text's own characters back wherever nothing was found.
"""

from __future__ import annotations

import re

from twin.text.normalize import strip_invisible

# Typographic noise the detectors read as plain ASCII: the detectors see a copy of the text with these
# replaced one character for one ("view"), and the text keeps its own characters wherever nothing was
# found. No-break, thin and other fixed-width spaces; the hyphen, the non-breaking hyphen and the figure
# dash (made for phone numbers); full-width "@", "+" and digits. The en dash only inside one chain of
# three or more digit groups ("123–45–67", "4111–1111–1111–1111"): a single one writes a range
# ("2019–2024", "01.06–30.06"), and reading ranges as number groups took 20x the time on such lines.
_VIEW_TABLE = {
    **{
        c: " " for c in (0xA0, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A, 0x202F)
    },
    **{c: "-" for c in (0x2010, 0x2011, 0x2012)},
    0xFF20: "@",
    0xFF0B: "+",
    **{0xFF10 + d: str(d) for d in range(10)},
}
_VIEW_GATE = re.compile(r"[\u00a0\u2002-\u200a\u202f\u2010-\u2012\uff0b\uff10-\uff20]")
# any of those, an invisible character (:func:`twin.text.normalize.strip_invisible`) or an emoji keycap
_NOISE = re.compile(r"[\u00a0\u00ad\u180e\u2002-\u202f\u2060-\u2069\u20e3\ufeff\uff0b\uff10-\uff20]")
# emoji keycap digits ("8️⃣": the digit, VS16, the combining keycap): a phone or a code typed in them
# ("мой номер 8️⃣9️⃣1️⃣6️⃣...") is its digits. Two or more in a row only (a "1️⃣" alone numbers a list);
# like an invisible character, the marks go from a text with a hit and stay in one without ("счёт 1️⃣:0️⃣")
_KEYCAP_RUN = re.compile(r"\d\ufe0f?\u20e3(?:[ \-]?\d\ufe0f?\u20e3)+")
_EN_DASH_CHAIN = re.compile(r"\d+(?:–\d+){2,}")
# letters typed for digits inside a number ("+38О 67 ...", "O7911 123456", "12З"): O/o (Latin or
# Cyrillic) for 0, З/з for 3, l/I for 1, touching a digit on one side and no letter on the other
# ("з 9 до 18", "о 5" stay words), in a run of its own (not inside "bc1q...986l5..."), with 6 real digits
_LOOK = "OoОоЗзlI"
# a lookalike touching a digit (letter first: 2x faster than "\d[...]|[...]\d")
_LOOK_GATE = re.compile(rf"[{_LOOK}](?:(?<=\d.)|(?=\d))")
_LOOK_DIGIT = rf"(?:\d|(?<=\d)[{_LOOK}](?![^\W\d_])|(?<![^\W\d_])[{_LOOK}](?=\d))"
_LOOK_RUN = re.compile(rf"(?<!\w)\+?{_LOOK_DIGIT}(?:[\s\-().]?{_LOOK_DIGIT}){{6,}}(?!\w)")
_LOOK_TABLE = str.maketrans({"O": "0", "o": "0", "О": "0", "о": "0", "З": "3", "з": "3", "l": "1", "I": "1"})


def strip(text: str) -> str:
    """``text`` without its invisible characters and keycap marks: what the view is read from (and what a
    text with a hit keeps between its placeholders)."""
    text = strip_invisible(text)
    if "\u20e3" not in text:
        return text
    return _KEYCAP_RUN.sub(lambda m: m.group(0).replace("\ufe0f", "").replace("\u20e3", ""), text)


def plain_view(text: str) -> str:
    """``text`` with the noise above made plain, character for character (same length)."""
    view = text.translate(_VIEW_TABLE) if _VIEW_GATE.search(text) else text
    if "–" in view:
        view = _EN_DASH_CHAIN.sub(lambda m: m.group(0).replace("–", "-"), view)
    if _LOOK_GATE.search(view):
        view = _LOOK_RUN.sub(_unlook, view)
    return view


def _unlook(m: re.Match) -> str:
    run = m.group(0)
    return run.translate(_LOOK_TABLE) if sum(c.isdigit() for c in run) >= 6 else run


def restore(text: str, view: str, out: str, placeholder: re.Pattern) -> str:
    """``out`` (``view`` scrubbed) with ``text``'s own characters wherever the scrubber kept ``view``'s;
    ``placeholder`` splits ``out`` into kept runs and (captured) placeholders.

    Each run of ``out`` between placeholders is looked up in ``view`` after the previous one (the last
    one at the end) and, when found, taken from ``text`` at the same place: ``text`` and ``view`` differ
    only in noise characters, so even a run found at the wrong place brings back no more than those
    (linear: a difflib alignment took 1.5 s on an 8,000-character message)."""
    parts, pos = [], 0
    pieces = placeholder.split(out)
    for k, piece in enumerate(pieces):
        if k % 2 or not piece:
            parts.append(piece)  # a placeholder
            continue
        if k == len(pieces) - 1 and view.endswith(piece) and len(view) - len(piece) >= pos:
            i = len(view) - len(piece)
        else:
            i = view.find(piece, pos)
        if i < 0:
            parts.append(piece)
        else:
            parts.append(text[i : i + len(piece)])
            pos = i + len(piece)
    return "".join(parts)


def noisy(text: str) -> bool:
    """Whether ``text`` has a character :func:`plain_view` or ``strip_invisible`` would change."""
    return _NOISE.search(text) is not None or _LOOK_GATE.search(text) is not None
