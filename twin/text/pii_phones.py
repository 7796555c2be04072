"""Phone numbers: candidates in the text, decided by ``phonenumbers`` (a number must be valid, not
just look like one), and phones spelled out in words.

Which national forms count depends on the regions: the configured ones (``--region``), those
inferred from the chat itself (:func:`infer_regions`: its script, its international numbers), and,
for a number written as a phone, every region in :data:`WORLD`. Written as a phone: with a leading
``0`` trunk prefix, with an area code in brackets (a phone's form as a trunk 0 is:
"(11) 91234-5678"), or after a phone word ("call", "ring", "номер", "whatsapp"...). An inferred
region's number without its trunk prefix counts only grouped as that region groups its numbers
("93 123 4567" in a Ukrainian chat). Any country's code typed without its "+" counts when it stands
in a group of its own and the rest is grouped as a phone ("380 67 123 45 67", "49 151 23456789";
see ``_grouped_intl``); a two-digit code and three groups of three ("48 512 345 678") too, unless a
currency or unit is beside them. A 7-digit city number in the former USSR's 3-2-2 groups is one
dashed ("123-45-67") anywhere, spaced after a phone word.

Not phones: dates, amounts ("1 250 000", digits with a unit after them), three or more numbers
stepping by 1-20 (a list: "page 112 113 114"), and a run of small numbers ("20 15 30 45 67",
"1 2 3 4 5 6 7 8 9 10": scores, counts) unless it follows a phone word or is grouped as the
region's own format groups it ("06 12 34 56 78" in France, "40 61 23 45" in Norway).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from twin.text.pii_numbers import a_sequence, registry_number, small_groups

# "030/12345678" too; a "+" right after a digit starts a second number run on to the first
# ("+380671234567+380501234567"); an extension may follow ("+14155552671x204")
# ("+94771234567/+94712345678": a "/" then a "+" starts the second one). The lookahead first: one
# character test at each position before the lookbehinds (2x faster on chat lines)
PHONE_CAND = re.compile(
    r"(?=[+(\d])(?:(?<=\d)(?=\+)|(?<=\d/)(?=\+)|(?<![\w+/]))\+?\(?\d[\d \t().\-/]{5,22}\d"
    r"(?:(?![\w/])|(?=/\+)|(?=(?:x|ext)\.?\d))"
)
# one of two numbers written with a "/" between them ("0671234567/0501234567")
_PHONE_PART = re.compile(r"\(?\d[\d \t().\-]{5,22}\d")
# thousands written with separators ("1 250 000", "125 000 000 rubles") and what follows an amount
_THOUSANDS = re.compile(r"\d{1,3}(?:[ ,.\u00a0]\d{3})+")
_DATE = re.compile(r"(?:\d{1,2}|\d{4})[./\-]\d{1,2}[./\-](?:\d{4}|\d{1,2})")  # not "123-45-67"
_UNIT_AFTER = re.compile(
    r"^\s*(?:[$€£₽₴]|rub|руб|р\.|грн|uah|usd|eur|dollars?|euros?|users?|people|человек|людей|km|км|units?|"
    r"шт|pcs|views?|просмотр|subscribers?|подписчик|points?\b|очк(?:ов|и|ів)\b|балл|бал(?:ів|и)\b|перегляд|лайк|"
    r"likes?\b|followers?\b|підписник|долар|доллар|євро|евро|гривен|гривн)",
    re.I,
)
# a word that says the digits after it are a phone number
_PHONE_WORDS = (
    r"(?:phone|call|ring|cell|mobile|mob|tel|text|sms|number|whats\s?app|viber|telegram|dial|reach|contact|"
    r"номер\w*|телефон\w*|тел|моб\w*|звони\w*|позвони\w*|набери\w*|дзвони\w*|подзвони\w*|наберіть|"
    r"вайбер\w*|ватсап\w*|вотсап\w*|вацап\w*|viber|сотов\w*|мобіл\w*|wa|zap|අංකය|නම්බර්|දුරකථන|ෆෝන්)"
)
_PHONE_WORD = re.compile(_PHONE_WORDS + r"\W{1,4}(?:\w+\W{1,3}){0,4}$", re.I)
# the same right before the number, "me" or "is" between at most ("call me at", "my number is",
# "мой номер"): not "the number of users was", "номер заказа"
_PHONE_WORD_RIGHT_BEFORE = re.compile(
    _PHONE_WORDS + r"(?:\W{1,4}(?:me|is|at|on|мне|мені|это|це))*\W{1,4}$", re.I
)
# the same said after the number: "13800138000 that's my china number", "0501234567 — мой номер"
_PHONE_WORD_AFTER = re.compile(
    r"\W{0,4}(?:(?:is|that'?s|it'?s|это|це|—|-)\s+)?(?:my|his|her|our|their|мой|мій|его|її|наш)\s+"
    r"(?!(?:order|ticket|tracking|account|case|reference|booking|flight|seat|room|table|lucky|favou?rite|"
    r"jersey|student|employee|member|customer|client|policy|passport|id|card|serial|заказа|счета|рахунку)\s)"
    r"(?:\w+\s+)?(?:number|phone|cell|mobile|номер|телефон|мобильный|мобільний)(?!\w)",
    re.I,
)  # not "12345678 is my order number", "7 is my lucky number"
# regions tried for a number written as a phone, when the configured ones do not take it
WORLD = (
    "DE", "GB", "FR", "IT", "ES", "NL", "BE", "AT", "CH", "PL", "UA", "BY", "KZ", "TR", "IN", "LK", "AU",
    "IE", "PT", "SE", "NO", "DK", "FI", "CZ", "IL", "GE", "AM", "AZ", "UZ", "RS", "RO", "BG", "GR", "HU",
    "BR", "MX", "CA", "AR", "CO", "TH", "VN", "ID", "PH", "MY", "SG", "JP", "KR", "CN", "AE", "EG",
    "NG", "ZA", "KE", "NZ", "PK", "BD", "NP", "MD", "LT", "LV", "EE", "US", "RU",
)  # fmt: skip


# the script of a chat says where its national numbers come from
def _chars(*spans: str) -> frozenset[str]:
    """The characters of ``"a-z"``-style ranges and plain strings."""
    out: set[str] = set()
    for sp in spans:
        if len(sp) == 3 and sp[1] == "-":
            out.update(chr(c) for c in range(ord(sp[0]), ord(sp[2]) + 1))
        else:
            out.update(sp)
    return frozenset(out)


# the script of a chat says where its national numbers come from
_SCRIPT_REGIONS = (
    (_chars("іїєґІЇЄҐ"), ("UA",)),
    (_chars("ўЎ"), ("BY",)),
    (_chars("әғқңөұүһӘҒҚҢӨҰҮҺ"), ("KZ",)),
    (_chars("\u0d80-\u0dff"), ("LK",)),  # Sinhala
    (_chars("\u0b80-\u0bff"), ("LK", "IN")),  # Tamil
    (_chars("\u0900-\u097f"), ("IN",)),  # Devanagari
    (_chars("\u10a0-\u10ff"), ("GE",)),
    (_chars("\u0530-\u058f"), ("AM",)),
    (_chars("\u0590-\u05ff"), ("IL",)),
    (_chars("\u0370-\u03ff"), ("GR",)),
    (_chars("\u0e00-\u0e7f"), ("TH",)),
    (_chars("äöüß"), ("DE", "AT", "CH")),
)
_SCRIPT_CHARS = re.compile("[" + "".join(sorted(set().union(*(c for c, _ in _SCRIPT_REGIONS)))) + "]")
# the lookbehinds after the literal: a lookbehind first would run at every position (8x slower)
_INTL = re.compile(r"(?:\+|00)(?<![\w+]\+)(?<![\w+]00)\s?(\d{1,3})[\s\-()]*\d[\d\s\-()]{5,16}\d")


def _pn():
    import phonenumbers

    return phonenumbers


def infer_regions(texts: Iterable[str], limit: int = 4) -> list[str]:
    """Phone regions a chat's own text points to: its script and its international numbers.

    One pass over the joined text for its characters, one regex pass for "+"/"00" numbers; the
    regions most voted for first.
    """
    pn = _pn()
    joined = "\n".join(texts)
    votes: Counter[str] = Counter()
    if not joined.isascii():
        seen = set(_SCRIPT_CHARS.findall(joined))  # one regex pass, then set lookups per script
        for chars, regions in _SCRIPT_REGIONS:
            if not chars.isdisjoint(seen):
                votes.update(regions)
    if "+" in joined or "00" in joined:
        for m in _INTL.finditer(joined):
            votes.update(_regions_of_code(pn, m.group(0)))
    return [r for r, _ in votes.most_common(limit)]


def _regions_of_code(pn, raw: str) -> list[str]:
    digits = "+" + re.sub(r"\D", "", raw)[2 if raw.startswith("00") else 0 :]
    try:
        num = pn.parse(digits, None)
    except pn.NumberParseException:
        return []
    return [pn.region_code_for_number(num)] if pn.is_valid_number(num) else []


class PhoneFinder:
    """Spans of phone numbers in a text, for an ordered list of regions (see the module doc)."""

    def __init__(self, regions: list[str], inferred: Iterable[str] = ()) -> None:
        self.regions = regions
        self.inferred = [r for r in inferred if r in regions]

    def spans(self, text: str) -> list[tuple[int, int]]:
        cands = []
        for m in (part for cand in PHONE_CAND.finditer(text) for part in _slash_parts(text, cand)):
            n = sum(c.isdigit() for c in m.group(0))
            longest = 20 if m.group(0).startswith("+") else 15  # "+" and too many digits: see _candidate
            if 7 <= n <= longest and not registry_number(text, m.start()) and not _an_amount(text, m):
                cands.append(m)  # "order #4155552671" is an order number, "1 250 000" an amount
        spans: list[tuple[int, int]] = []
        for c in cands:
            found = self._candidate(text, c)
            spans.extend(sp for sp in found if not any(sp[0] < e and s < sp[1] for s, e in spans))
        return sorted(spans)

    def split_spans(self, prev: str, text: str) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """A phone cut in two ("my number is 0771" / "234567"): its span in the tail of ``prev`` and
        in the head of ``text``. Only a number written as a phone ("+", a trunk 0 or 8, a phone word
        before it) is joined: two messages that end and start with digits are usually two numbers."""
        if not (prev[-2:].rstrip(" -")[-1:].isdigit() and text.lstrip("( ")[:1].isdigit()):
            return None  # the common case, decided on a few characters
        tail = _PHONE_TAIL.search(prev)
        if tail is None or not (
            tail.group(0).lstrip("(")[:1] in "+08"
            or _PHONE_WORD.search(prev[max(0, tail.start() - 40) : tail.start()])
        ):
            return None
        joined = prev + " " + text
        cut = len(prev)
        for s, e in self.spans(joined):
            if s < cut and e > cut + 1 and sum(ch.isdigit() for ch in joined[cut:e]) >= 2:
                return (s, cut), (0, e - cut - 1)
        return None

    def split3_spans(self, a: str, b: str, c: str) -> list[tuple[int, int]] | None:
        """A phone typed over three messages ("запиши: 067" / "234" / "56 78"): its spans in the tail of
        ``a``, all of ``b`` (a message of digits alone) and the head of ``c``; ``a`` writes it as a phone,
        as :meth:`split_spans` wants, and the three parts together are one valid number."""
        mid = b.strip()
        if not _MIDDLE_PART.fullmatch(mid):
            return None
        first = self.split_spans(a, mid + " " + c)
        if first is None or first[1][1] <= len(mid) + 1:
            return None  # no phone, or one that ends in ``b``
        lead = len(b) - len(b.lstrip())
        return [first[0], (lead, lead + len(mid)), (0, first[1][1] - len(mid) - 1)]

    def _candidate(self, text: str, c: re.Match) -> list[tuple[int, int]]:
        pn = _pn()
        raw = c.group(0)
        if raw.startswith("00"):
            return [c.span()] if _valid_intl(pn, raw[2:]) else []
        # a little context on each side lets the matcher see what surrounds the number
        lo, hi = max(0, c.start() - 2), min(len(text), c.end() + 2)
        snippet = text[lo:hi]
        regions = self.regions[:1] if raw.lstrip("(").startswith("+") else self.regions
        small = small_groups(raw)  # "20 15 30 45 67", "1 2 3 4 5 6 7 8 9 10": scores, counts, lists
        for region in regions:
            found = [
                _with_trunk_prefix(text, c.start(), lo + m.start, lo + m.end)
                for m in pn.PhoneNumberMatcher(snippet, region, leniency=pn.Leniency.VALID)
                if lo + m.start >= c.start()  # not "v0.12.345.6789": digits glued to a word are no phone
                and (small is None or _grouped_as_national(pn, m.number, small))
                and (region not in self.inferred or _inferred_ok(pn, m))
            ]
            if found:
                return found
        digits = re.sub(r"\D", "", raw)
        if raw.startswith("+"):  # "+44 7700 900123": a reserved (fiction) range is still written as a phone
            phone = len(digits) >= 9 and (_possible_intl(pn, digits) or _valid_prefix(pn, digits))
            return [c.span()] if phone else []
        if len(digits) >= 9 and "." not in raw and any(_own_grouping(pn, raw, r) for r in self.inferred):
            return [c.span()]  # the matcher wants a trunk prefix ("093 ..."); a chat's own region does not
        if (
            small is None
            and len(digits) >= 11
            and "." not in raw
            and set(_regions_of_code(pn, digits)) & set(self.regions)
        ):
            return [c.span()]  # "380671234567": a configured or the chat's own country code without the "+"
        if len(digits) >= 10 and _grouped_intl(pn, raw):
            return [c.span()]  # "380 67 123 45 67": any country's code without the "+", grouped as a phone
        return [c.span()] if self._written_as_phone(text, c) else []

    @staticmethod
    def _national(pn, digits: str, region: str, small: list[str] | None) -> bool:
        """Valid in ``region`` without its trunk prefix; a run of small numbers only where its
        numbers are written so."""
        try:
            num = pn.parse(digits, region)
        except pn.NumberParseException:
            return False
        return pn.is_valid_number(num) and (small is None or _grouped_as_national(pn, num, small))

    def _written_as_phone(self, text: str, c: re.Match) -> bool:
        """A national number of any region: with a trunk ``0`` or an area code in brackets, or after a
        phone word."""
        pn = _pn()
        raw = c.group(0)
        digits = re.sub(r"\D", "", raw)
        if digits.startswith("80") and len(digits) >= 10:
            digits = digits[1:]  # "8 (044) 123-45-67": the old long-distance 8 before a national 0
        worded = (
            _PHONE_WORD.search(text[max(0, c.start() - 40) : c.start()]) is not None
            or _PHONE_WORD_AFTER.match(text, c.end()) is not None
        )
        if len(digits) == 7 and (m := _LOCAL_7.fullmatch(raw)) and (worded or m.group(1) == "-"):
            return True  # "123-45-67": a city number as it is written from Moscow to Kyiv (spaced: after a phone word)
        trunk = digits[0] == "0" or _AREA_CODE.match(raw) is not None  # "(11) 91234-5678": an area code
        national = trunk and len(digits) >= 9 and ("." not in raw or _dotted_phone(raw))
        if not (national or (worded and len(digits) >= 8)):
            return False
        if not national and _valid_intl(pn, digits):
            return True  # "380661234567", "94 77 123 4567": a country code without the "+"
        small = None if worded else small_groups(raw)  # "0 61 2 1 7 6 45 8 97": a list, not "06 12 34 56 78"
        return any(self._national(pn, digits, r, small) for r in WORLD)


# a 7-digit city number in the 3-2-2 groups of the former USSR ("123-45-67"); no date, time or score is
# written so
_LOCAL_7 = re.compile(r"\d{3}([\- ])\d{2}\1\d{2}")
# an area code in brackets ("(11) 91234-5678" in Brazil, "(416) 967-1111"): a phone's form, as a trunk 0 is
_AREA_CODE = re.compile(r"\(\d{2,5}\)")


# the middle message of a phone typed over three: digits alone ("234", "12-34")
_MIDDLE_PART = re.compile(r"\d{2,4}(?:[ \-]\d{2,4})?")
# the start of a phone at the end of a message: "+7 916", "0771", "(067) 123"
_PHONE_TAIL = re.compile(r"(?<![\w+])\+?\(?\d[\d ()\-]*\d[ \-]?$")


# a phone read out in words, as some type it to get past filters: "my number is oh seven seven one two
# three ...", "мой номер восемь девять один шесть ...", "plus three eight zero ..."
# Russian and Ukrainian phones are read out in groups: "девятьсот шестнадцать сто двадцать три сорок пять
# шестьдесят семь" (916 123 45 67); these words come first, before the digit words they start with
_HUNDREDS = (
    "сто|двести|триста|четыреста|пятьсот|шестьсот|семьсот|восемьсот|девятьсот|двісті|чотириста|"
    "п['’ʼ]ятсот|шістсот|сімсот|вісімсот|дев['’ʼ]ятсот"
)
_TENS = (
    "двадцать|тридцать|сорок|пятьдесят|шестьдесят|семьдесят|восемьдесят|девяносто|двадцять|тридцять|"
    "п['’ʼ]ятдесят|шістдесят|сімдесят|вісімдесят|дев['’ʼ]яносто"
)
_TEENS = (
    "десять|одиннадцать|двенадцать|тринадцать|четырнадцать|пятнадцать|шестнадцать|семнадцать|"
    "восемнадцать|девятнадцать|одинадцять|дванадцять|тринадцять|чотирнадцять|п['’ʼ]ятнадцять|"
    "шістнадцять|сімнадцять|вісімнадцять|дев['’ʼ]ятнадцять"
)
_DIGIT_WORDS = (
    f"{_HUNDREDS}|{_TENS}|{_TEENS}|"
    "zero|oh|one|two|three|four|five|six|seven|eight|nine|double|triple|ноль|нуль|один|одна|два|две|дві|три|"
    "четыре|чотири|пять|п['’ʼ]ять|шесть|шість|семь|сім|восемь|вісім|девять|дев['’ʼ]ять"
)
# a token is a number word or a digit; a group of 2-4 digits only among number words ("8 916 сто двадцать три ...")
_DIGIT_RUN = re.compile(rf"(?<!\w)(?:(?:{_DIGIT_WORDS}|\d{{1,4}})(?:[\s,\-]+|$)){{5,}}", re.I)
_TOKEN = re.compile(rf"{_DIGIT_WORDS}|\d{{1,4}}", re.I)
_HUNDRED_RE, _TEN_RE, _TEEN_RE = (re.compile(w, re.I) for w in (_HUNDREDS, _TENS, _TEENS))
_GROUP_DIGITS = {"H": 3, "T": 2, "E": 2, "U": 1}


def _kind(token: str) -> str:
    """H a hundreds word, T a tens word, E ten to nineteen, U a digit word, D digits."""
    if token[0].isdigit():
        return "D"
    if _HUNDRED_RE.fullmatch(token):
        return "H"
    if _TEN_RE.fullmatch(token):
        return "T"
    return "E" if _TEEN_RE.fullmatch(token) else "U"


def _spelled_digits(tokens: list[str]) -> int:
    """How many digits a run of number words says: "сто двадцать три" is three, "сорок пять" two, "семь" one
    ("double" and "triple" say none themselves); digit groups count only among three or more number words
    ("8 916 сто двадцать три ..."; "номер 1234 5678 один два" is no phone read out): else 0."""
    n, last, words, groups = 0, "", 0, 0
    for t in tokens:
        if t.lower() in ("double", "triple"):
            continue
        kind = _kind(t)
        if kind == "D":
            n, last, groups = n + len(t), "", groups + (len(t) > 1)
            continue
        words += 1
        if (last == "H" and kind != "H") or (
            last == "T" and kind == "U" and t.lower() not in ("ноль", "нуль")
        ):
            last = "" if kind == "U" else kind  # the tens or units of the group just begun
            continue
        n += _GROUP_DIGITS[kind]
        last = kind
    return n if not groups or words >= 3 else 0


# the cheap tests before the run is looked for, on lower-cased text: a phone word (a plain alternation
# of literals, 5x faster than the next one), then two digit words in a row
SPELLED_GATE = re.compile(r"number|номер|call|phone|plus|плюс|тел|моб|звон|дзвон|набер|අංකය")
SPELLED_HINT = re.compile(rf"(?<!\w)(?:{_DIGIT_WORDS})[\s,\-]+(?:{_DIGIT_WORDS})(?!\w)")
# right before the run: "my number is", "call me on", "мой номер", "plus"
_SPELLED_BEFORE = re.compile(
    r"(?<!\w)(?:phone|call(?:\s+me)?|number|cell|mobile|whats\s?app|viber|номер|телефон|тел|моб\w*|звони\w*|"
    r"набери\w*|дзвони\w*|plus|плюс|අංකය)(?:\s+(?:is|on|at|это|це))?\s*[:\-—]?\s*$",
    re.I,
)


def spelled_phone_spans(text: str) -> list[tuple[int, int]]:
    """Runs of 7-15 digits said in words (or words and digits), after a phone word or "plus": a run
    of number words alone is counting ("one two three four five six seven eight nine ten")."""
    spans = []
    for m in _DIGIT_RUN.finditer(text):
        n = _spelled_digits(_TOKEN.findall(m.group(0)))
        if 7 <= n <= 15 and _SPELLED_BEFORE.search(text[max(0, m.start() - 24) : m.start()]):
            end = m.end()
            while end > m.start() and not text[end - 1].isalnum():
                end -= 1
            spans.append((m.start(), end))
    return spans


def _inferred_ok(pn, m) -> bool:
    """A region the chat's script points to (not one the user configured) takes a national number only
    with its trunk prefix, a "+", or as a mobile: India's fixed lines take any ten digits after a
    leading 1-5 ("1234567890" after "DHL", "1.2345 2.3456" read as "01234 523456") in a Tamil chat."""
    raw = m.raw_string.lstrip("(")
    if "." in raw and not _dotted_phone(raw):
        return False  # decimals
    if raw[:1] in "+0":
        return True
    kind = pn.number_type(m.number)
    return kind in (pn.PhoneNumberType.MOBILE, pn.PhoneNumberType.FIXED_LINE_OR_MOBILE)


def _dotted_phone(raw: str) -> bool:
    """Dots in a phone's own grouping ("06.12.34.56.78"): a date has two ("01.02.2024"), and a date
    with more after it ("01.02.2024.15") has a year among its groups."""
    return raw.count(".") >= 3 and re.search(r"(?<!\d)(?:19|20)\d\d(?!\d)", raw) is None


def _slash_parts(text: str, m: re.Match) -> list[re.Match]:
    """A candidate too long for one phone that has a "/" in it is two numbers, each its own candidate."""
    raw = m.group(0)
    if "/" not in raw or sum(c.isdigit() for c in raw) <= 15:
        return [m]
    parts, start = [], m.start()
    for piece in raw.split("/"):
        lead = len(piece) - len(piece.lstrip())
        part = _PHONE_PART.fullmatch(text, start + lead, start + len(piece.rstrip()))
        if part is not None:
            parts.append(part)
        start += len(piece) + 1
    return parts


def _an_amount(text: str, c: re.Match) -> bool:
    """ "1 250 000", "125 000 000 rubles": a number grouped in thousands, or followed by a unit; not
    a country code and a number grouped as that country writes them ("48 512 345 678")."""
    raw = c.group(0).strip()
    if raw.startswith("+"):
        return False
    if _DATE.fullmatch(raw):
        return True  # "04.05.2024": a date, in any region
    if a_sequence(raw):
        return True  # "page 112 113 114", "номера маршруток 208 209 210 226": a list of numbers
    date = _DATE.match(raw)
    if date and re.fullmatch(r"[\sT]+\d{1,2}", raw[date.end() :]) and text[c.end() : c.end() + 1] == ":":
        return True  # "2024-01-15 10:30": a date and a time
    if _UNIT_AFTER.match(text[c.end() : c.end() + 14]):
        return True
    first = re.split(r"\D", raw, maxsplit=1)[0]
    if raw.startswith("0") or _THOUSANDS.fullmatch(raw) is None:
        return False  # "0 800 300 545": an amount never starts with a zero
    if len(first) >= 3 or raw.endswith("000"):
        return raw.endswith("000")
    # "21 234 567" reads as millions, but right after "call me" or "мой номер" it is Latvia's 2-3-3
    right_after_word = _PHONE_WORD_RIGHT_BEFORE.search(text[max(0, c.start() - 30) : c.start()])
    return not (right_after_word or _code_and_phone(text, c.start(), raw))


_CODE_THEN_3_3_3 = re.compile(r"\d\d \d{3} \d{3} \d{3}")


def _code_and_phone(text: str, start: int, raw: str) -> bool:
    """Tens of billions, no currency or unit beside them: "48 512 345 678" is Poland's code and a
    number grouped as Poles group theirs (as are Romania's, Vietnam's, ...: the country's own
    format groups it 3-3-3). An amount that size is rare in a chat, and about 1 in 60 of them (not
    ending in 000) reads so; millions and billions ("1 234 567", "4 512 345 678") never do."""
    if not _CODE_THEN_3_3_3.fullmatch(raw) or re.search(r"[$€£₽₴]\s*$", text[max(0, start - 3) : start]):
        return False
    pn = _pn()
    if not _grouped_intl(pn, raw):
        return False
    return _grouped_as_national(pn, pn.parse("+" + raw.replace(" ", ""), None), raw.split())


def _grouped_as_national(pn, num, groups: list[str]) -> bool:
    """A run of small numbers is a phone only where numbers are written in such groups: the
    region's own format of the number, national ("40 61 23 45" in Norway, "06 12 34 56 78" in
    France, also without its 0) or with the country code ("47 40 61 23 45"), has the same groups.
    A US number is written 3-3-4: "20 15 30 45 67" is none."""
    sizes = [len(g) for g in groups]
    nat = re.findall(r"\d+", pn.format_number(num, pn.PhoneNumberFormat.NATIONAL))
    trunk = nat[0].startswith("0")  # "6 12 34 56 78": France's 06 without its 0
    if [len(g) for g in nat[1:]] == sizes[1:] and len(nat[0]) - sizes[0] in (0, trunk):
        return True
    intl = re.findall(r"\d+", pn.format_number(num, pn.PhoneNumberFormat.INTERNATIONAL))
    return intl[0] == groups[0] and [len(g) for g in intl[1:]] == sizes[1:]


def _own_grouping(pn, raw: str, region: str) -> bool:
    """A national number of ``region`` without its trunk prefix, in groups where the region's own
    format has them ("93 123 4567" or "93 123 45 67" in Ukraine: 093 123 4567; groups may be joined,
    a last four split in two). Run together or grouped otherwise, digits in a chat whose script
    points to a region are as often a count, an amount or a date ("1200000000", "20 12 2024 15
    30", "1 299 1 499") as a phone: then only a trunk prefix or a phone word makes them one."""
    groups = re.findall(r"\d+", raw)
    digits = "".join(groups)
    if len(groups) < 2:
        return False
    try:
        num = pn.parse(digits, region)
    except pn.NumberParseException:
        return False
    if not pn.is_valid_number(num):
        return False
    fmt = re.findall(r"\d+", pn.format_number(num, pn.PhoneNumberFormat.NATIONAL))
    shift = len("".join(fmt)) - len(digits)  # the trunk prefix the writer left out
    if shift < 0 or "".join(fmt)[shift:] != digits:
        return False
    cuts, at = set(), -shift
    for g in fmt:
        if len(g) == 4:
            cuts.add(at + 2)  # "45 67" for "4567"
        at += len(g)
        cuts.add(at)
    written = {sum(map(len, groups[: i + 1])) for i in range(len(groups) - 1)}
    return written <= cuts


def _valid_in(pn, digits: str, region: str) -> bool:
    try:
        return pn.is_valid_number(pn.parse(digits, region))
    except pn.NumberParseException:
        return False


def international(raw: str) -> bool:
    """Digits that form a valid number with a country code, "+" or not ("380671234567")."""
    digits = re.sub(r"\D", "", raw.replace("%2B", "").replace("%2b", ""))
    return len(digits) >= 10 and _valid_intl(_pn(), digits)


def _possible_intl(pn, digits: str) -> bool:
    try:
        return pn.is_possible_number(pn.parse("+" + digits, "ZZ"))
    except pn.NumberParseException:
        return False


def _valid_prefix(pn, digits: str) -> bool:
    """A valid international number followed by more digits: an extension typed on ("+1 415 555 2671
    204"), a digit too many, or a second number run on to the first without a space."""
    return any(_valid_in(pn, "+" + digits[:k], "ZZ") for k in range(min(15, len(digits) - 1), 7, -1))


_GROUPS = re.compile(r"[\s\-()]+")
# a day, a month and a year among the groups: "20 12 2024 15 30" is a date and a time
_SPACED_DATE = re.compile(r"(?<!\d)\d{1,2}[\s\-]\d{1,2}[\s\-](?:19|20)\d\d(?!\d)")


def _grouped_intl(pn, raw: str) -> bool:
    """A country code without its "+", in a group of its own, then the national number in groups of
    two or more digits ("380 67 123 45 67", "49 151 23456789"; France's "33 6 12 34 56 78" has one
    digit after the code): valid for that country, 9+ national digits, and no date among the groups.
    Lottery draws and scores ("7 12 23 34 41 45", "6 4 3 6 7 5 6 2") are not valid numbers."""
    groups = [g for g in _GROUPS.split(raw.strip("()")) if g]
    if len(groups) < 3 or "." in raw or raw[0] == "0" or _SPACED_DATE.search(raw):
        return False
    if any(len(g) < 2 for g in groups[2:]) or not all(g.isdigit() for g in groups):
        return False
    try:
        num = pn.parse("+" + "".join(groups), None)
    except pn.NumberParseException:
        return False
    return (
        str(num.country_code) == groups[0]
        and len(pn.national_significant_number(num)) >= 9
        and pn.is_valid_number(num)
        and (small_groups(raw) is None or _grouped_as_national(pn, num, groups))  # "62 6 43 76 88 44 48"
    )


def _valid_intl(pn, rest: str) -> bool:
    digits = re.sub(r"\D", "", rest)
    return 8 <= len(digits) <= 15 and _valid_in(pn, "+" + digits, "ZZ")


def _with_trunk_prefix(text: str, cand_start: int, s: int, e: int) -> tuple[int, int]:
    """A match that left out the national trunk prefix ("8 (916) ...": "8 ") takes it in."""
    return (cand_start, e) if re.fullmatch(r"8[\s\-]*", text[cand_start:s]) else (s, e)
