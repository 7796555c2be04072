"""Detectors for numbers that identify a person: phones, cards, IBANs, US SSNs, passports, national
and tax IDs, dates of birth.

Phones are decided by ``phonenumbers`` (a number must be valid, not just look like one). Which
national forms count depends on the regions: the configured ones (``--region``), those inferred
from the chat itself (:func:`infer_regions`: its script, its international numbers), and, for a
number written as a phone (a leading ``0`` trunk prefix, or a phone word right before it: "call",
"номер", "whatsapp"...), every region in :data:`WORLD`.
"""

from __future__ import annotations

import datetime
import re
from collections import Counter
from collections.abc import Iterable

# --- cards and IBANs --------------------------------------------------------------------------
SEVEN_DIGITS = re.compile(r"\d(?:[\s\-().]{0,3}\d){6}")
# groups apart by a space, two spaces, a dash or (four by four only, see card_ok) a dot; one
# character class, not an alternation: the engine backtracks less
CARD = re.compile(r"(?<![\w.,])\d(?:[ \-.]{0,2}\d){12,18}(?![\w]|[.,]\d)")
_DOTTED_CARD = re.compile(r"\d{4}(?:\.\d{4}){2,3}(?:\.\d{1,3})?")
IBAN = re.compile(r"(?<![\w])[A-Za-z]{2} ?\d{2}(?:[ \-]?[A-Za-z0-9]){10,30}\b")  # "DE89-3704-..." too
_IBAN_LEN = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
    "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def luhn_ok(digits: str) -> bool:
    total, alt = 0, False
    for ch in reversed(digits):
        d = ord(ch) - 48
        if alt:
            d *= 2
            if d > 9:
                d -= 9
        total += d
        alt = not alt
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    iban = iban.replace(" ", "").replace("-", "").upper()
    expected = _IBAN_LEN.get(iban[:2])
    if expected is None or len(iban) != expected or not iban[2:4].isdigit():
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def iban_spans(text: str) -> list[tuple[int, int]]:
    """IBANs in any case: exactly the country's length of characters (single spaces or dashes allowed), mod-97 valid."""
    spans = []
    for m in IBAN.finditer(text):
        expected = _IBAN_LEN.get(m.group(0)[:2].upper())
        if expected is None:
            continue
        n, end = 0, m.start()
        while end < m.end() and n < expected:
            n += text[end] not in " -"
            end += 1
        if n == expected and (end == len(text) or not text[end].isalnum()) and iban_ok(text[m.start() : end]):
            spans.append((m.start(), end))
    return spans


# a national bank account number, after its word: RU/BY "р/с", "счёт" (20 digits), UA "рахунок", UK/US
# "account number", DE "Konto"; and anywhere, a Russian personal account (40817..., 20 digits, as
# banks group it too: "40817 810 0 9991 0004312"). Replaced as [IBAN]: the same account, written nationally.
ACCOUNT = re.compile(
    r"(?<!\w)(?P<kw>account|acct|acc|a/c|сч[её]т\w*|сч\.|р/с|л/с|рахун\w*|konto\w*)"
    r"(?:\s+(?:no\.?|nr\.?|number|номер|#|№))?(?!\w)[\s,:;#№.\-]*"
    r"(?:(?:is|my|мой|мій|номер|number)(?!\w)[\s,:;#№.\-]*){0,2}"
    r"(?P<val>\d(?:[ \-]?\d){7,27})(?![\w\-])"
    r"|(?<![\w.,])(?P<ru>(?:40817|40820|42301|42305|40802)(?:[ ]?\d){15})(?![\w])",
    re.I,
)
ACCOUNT_HINT = re.compile(r"acc|a/c|сч|р/с|л/с|рахун|konto|40(?:817|820|802)|4230[15]")


def account_spans(text: str) -> list[tuple[int, int]]:
    """Bank account numbers: as many digits as an account has after its word (10+ after a Cyrillic
    one: "счёт 12345678" may be an invoice; 8+ after "account"), and personal RU accounts anywhere."""
    spans = []
    for m in ACCOUNT.finditer(text):
        if m.group("ru"):
            spans.append(m.span("ru"))
            continue
        n = sum(c.isdigit() for c in m.group("val"))
        cyrillic = not m.group("kw").isascii()
        if (10 if cyrillic else 8) <= n <= 28:
            spans.append(m.span("val"))
    return spans


def card_spans(text: str) -> list[tuple[int, int]]:
    """Card numbers; when the whole run of digits is not one ("4111 1111 1111 1111 12/27 123": the
    expiry or CVV typed on), the longest run that ends at a group boundary and is."""
    spans = []
    for m in CARD.finditer(text):
        raw = m.group(0)
        ends = [len(raw)] + [
            i for i in range(len(raw) - 1, 0, -1) if raw[i] in " -." and raw[i - 1].isdigit()
        ]
        for end in ends:
            if card_ok(raw[:end], text, m.start()):
                spans.append((m.start(), m.start() + end))
                break
    return spans


def card_ok(raw: str, text: str, start: int) -> bool:
    """Are the digits ``raw`` at ``start`` of ``text`` a card: 13-19 of them, Luhn, not a phone or a registry number."""
    digits = re.sub(r"\D", "", raw)
    if not (13 <= len(digits) <= 19 and digits[0] != "0" and luhn_ok(digits)):
        return False
    if "." in raw and not _DOTTED_CARD.fullmatch(raw):
        return False  # "1.234.567.890.123": an amount in thousands, not a card written 4111.1111.1111.1111
    if text[max(0, start - 1) : start] == "+":
        return False  # "+4915112345678": a country code, a phone (one in ten passes the Luhn check)
    # a SIRET is Luhn-checked too
    return _CARD_WORD.search(text[max(0, start - 24) : start]) is not None or not registry_number(text, start)


# "card no 4276 ...", "номер карты 2200 ...": the "no" / "№" is the card's, not an order's
_CARD_WORD = re.compile(r"(?:card|карт\w*|visa|mastercard)\W*(?:no\.?|nr\.?|number|номер|№|#)?\W*$", re.I)


def registry_number(text: str, start: int) -> bool:
    """An order, tax, company registry, flight or booking number: the words right before the digits say so."""
    before = text[max(0, start - 24) : start]
    return _NOT_PHONE_BEFORE.search(before) is not None or _TRAVEL_BEFORE.search(before) is not None


# "flight 0830", "номер рейса 0830 2145", "train number 0771...": a trip's number ("on the train" alone
# may well be followed by the caller's phone, so a train needs its "number")
_TRAVEL_BEFORE = re.compile(
    r"(?<!\w)(?:(?:flight|рейс\w*|pnr|booking|брон\w*)\W{0,3}(?:no\.?|nr\.?|number|номер|№|#)?"
    r"|(?:number|номер)\W+(?:of\W+)?(?:the\W+)?(?:flight|train|рейса|поезда|потяга|потягу|брони|бронювання))\W{0,3}$",
    re.I,
)


# a card typed over two messages: the digits at the end of one and at the start of the next
CARD_TAIL = re.compile(r"(?<![\w.,+])\d{4}(?:[ \-]?\d{1,4}){0,3}\W{0,2}$")
CARD_HEAD = re.compile(r"^\W{0,2}\d{1,4}(?:[ \-]?\d{1,4}){0,4}(?![\w]|[.,]\d)")


def split_card(prev: str, text: str) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Spans of a card number cut in two: the tail of ``prev`` and the head of ``text``."""
    if not (prev[-3:].strip(".,;:!?) ")[-1:].isdigit() and text[:3].lstrip("(:- ")[:1].isdigit()):
        return None  # the common case: one message does not end in digits or the next does not start so
    a, b = CARD_TAIL.search(prev), CARD_HEAD.match(text)
    if a is None or b is None:
        return None
    da, db = re.sub(r"\D", "", a.group(0)), re.sub(r"\D", "", b.group(0))
    digits = da + db
    if not (13 <= len(digits) <= 19 and len(da) >= 4 and digits[0] != "0" and luhn_ok(digits)):
        return None
    return _digit_span(prev, a), _digit_span(text, b)


def _digit_span(text: str, m: re.Match) -> tuple[int, int]:
    """The span of ``m`` from its first digit to its last."""
    s, e = m.span()
    while s < e and not text[s].isdigit():
        s += 1
    while e > s and not text[e - 1].isdigit():
        e -= 1
    return s, e


# --- US social security numbers and passports -------------------------------------------------
SSN = re.compile(
    r"(?<![\w\-])(?!000|666|9\d\d)\d{3}(?P<sep>[\- ]?)(?!00)\d{2}(?P=sep)(?!0000)\d{4}(?![\w\-])"
)
_SSN_WORD = re.compile(r"(?:ssn|social\s+security|soc\.?\s*sec|tax\s*id|itin)\W*(?:\w+\W+){0,3}$", re.I)


def ssn_check(m: re.Match, text: str) -> bool:
    """Dashed 3-2-4 is an SSN on its own; spaced or run together only after "SSN" / "social security"."""
    if m.group("sep") == "-":
        return True
    return _SSN_WORD.search(text[max(0, m.start() - 40) : m.start()]) is not None


PASSPORT = re.compile(
    r"(?<!\w)(?:passport|паспорт\w*|загранпаспорт\w*|загран\w*|id[\s\-]?картк?\w*|сери[яиюі]|серія)"
    r"[\s,:;#№.\-]*(?:(?:no|nr|number|num|номер|is|рф|данные|дані|мой|мій|my|серия|серія|и|та|us|usa)"
    r"(?!\w)[\s,:;#№.\-]*){0,4}"
    r"(?P<val>\d{2}\s?\d{2}[,\s]*(?:(?:номер|№|n|no\.?)\s*)?\d{6}|\d{2}\s\d{7}|[A-ZА-ЯІЇЄ]{1,2}\s?(?:№\s?)?\d{6,8}|\d{3}\s?\d{3}\s?\d{3}|\d{6,9})"
    r"(?![\w])",
    re.I,
)

# --- national and tax ID numbers, dates of birth ----------------------------------------------
# A person's own numbers: RU ИНН (12 digits; a company's 10 are public), СНИЛС (11), UA РНОКПП / ІПН
# (10; a company's ЄДРПОУ is 8), Sri Lanka's NIC (12 digits, or 9 and V/X), and any "ID number".
_ID_WORDS = {
    "инн": (12,), "снилс": (11,), "іпн": (10,), "рнокпп": (10,), "ідентифікаційний": (10,),
    "nic": (12,), "nid": tuple(range(6, 15)), "national": tuple(range(6, 15)), "id": tuple(range(6, 15)),
}  # fmt: skip
ID_NUMBER = re.compile(
    r"(?<!\w)(?P<kw>инн|снилс|іпн|рнокпп|ідентифікаційн\w*(?=\s+(?:код|номер))|nic|nid|national(?=\s+id)|id(?=\s*(?:no|nr|number|#|№)))"
    r"(?:\s+(?:id|код|номер|card|no|nr|number))?(?!\w)[\s,:;#№.\-]*(?:(?:is|мой|мій|my|no|nr|number|номер)(?!\w)[\s,:;#№.\-]*){0,3}"
    r"(?P<val>(?:[A-Z]{1,2}\s?)?\d(?:[\- ]?\d){5,13}(?:[VvXx](?!\w))?)(?![\w\-])",
    re.I,
)
ID_HINT = re.compile(r"инн|снилс|іпн|рнокпп|ідентифікаційн|nic|nid|national\s+id|id\s*(?:no|nr|number|#|№)")
NIC_OLD = re.compile(r"(?<![\w\-])\d{9}[VvXx](?!\w)")  # Sri Lanka's NIC before 2016: 9 digits, V or X
SNILS = re.compile(r"(?<![\w\-])\d{3}-\d{3}-\d{3}[ \-]\d{2}(?![\w\-])")  # the form no other number takes


def id_check(m: re.Match, _text: str) -> bool:
    """As many digits as the named ID has (V/X only on Sri Lanka's old NIC)."""
    digits = sum(c.isdigit() for c in m.group("val"))
    kw = m.group("kw").lower()
    if m.group("val")[-1] in "VvXx":
        return kw == "nic" and digits == 9
    if m.group("val")[0].isalpha():  # "AB1234567": only a generic "ID number" has letters
        return kw in ("id", "nid", "national") and 6 <= digits <= 9
    return digits in next(v for k, v in _ID_WORDS.items() if kw.startswith(k))


# a birthday with its year is a date of birth: "my birthday is 12/05/1990", "день рождения 12.05.1990"
_DOB_WORD = (
    r"born|date\s+of\s+birth|birth\s*date|birthday|b-?day|d\.?o\.?b\.?|дата\s+рождения|день\s+рождения|"
    r"днюха|д\.\s?р\.|др|родил(?:ся|ась)|дата\s+народження|день\s+народження|народи(?:вся|лася)|нар\.|"
    r"උපන්\s+දිනය|උපන්දිනය|උපන්නේ"
)
_MONTH = r"[A-Za-zА-Яа-яЁёІіЇїЄє]{3,10}\.?"
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
BIRTHDATE = re.compile(
    rf"(?<!\w)(?P<kw>{_DOB_WORD})(?!\w)[\s:,\-–—]*"
    r"(?:(?:on|is|in|was|my|the|у\s+меня|у\s+мене|мой|мій|:|-)\s+){0,2}"
    # day.month.year with a 2-digit year too ("родился 12.05.90": the word says it is a birth date)
    r"(?P<val>\d{1,2}[./\- ]\d{1,2}[./\- ](?:19|20)?\d{2}|(?:19|20)\d{2}[./\-]\d{1,2}[./\-]\d{1,2}"
    rf"|{_DAY}\s+(?:of\s+)?{_MONTH},?\s+(?:19|20)\d{{2}}|{_MONTH}\s+{_DAY},?\s+(?:19|20)\d{{2}})(?![\d])",
    re.I,
)
_BIRTHDAY = re.compile(r"(?:birthday|b-?day|день\s.*|днюха|др)$", re.I)


def birthdate_check(m: re.Match, _text: str) -> bool:
    """A birthday's date is a date of birth only with a birth year: "birthday 12/05/1990", not the
    party's date ("днюха 25.12.24", "birthday party 12/05/2025"). After a birth word ("born", "DOB",
    "д.р.", "родился") any date is one, a two-digit year too ("родился 12.05.90")."""
    val = m.group("val")
    year = re.findall(r"\d+", val)
    year = year[0] if len(year[0]) == 4 else year[-1]
    if not _BIRTHDAY.match(m.group("kw")):  # "born", "DOB", "д.р.": any date after it
        return True
    return len(year) == 4 and int(year) < datetime.date.today().year - 1


DOB_HINT = re.compile(
    r"born|birth|b-?day|d\.?o\.?b|рождени|д\.\s?р\.|др\b|днюх|родил|народж|народи|нар\.|උපන්"
)


# --- phones -----------------------------------------------------------------------------------
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
# an order, registry or tax number right before the digits: not a phone
_NOT_PHONE_BEFORE = re.compile(
    r"(?<![^\W\d_])(?:(?:order|заказ|invoice|сч[её]т|ticket|тикет|рахун)\w*|№|#|id|no\.?|nr\.?|isbn|issn|track\w*|трек\w*"
    r"|(?:огрн\w*|инн|кпп|окпо|бик|єдрпоу|едрпоу|edrpou|inn|ogrn|vat|crn|ein|kvk|hrb|abn|compan\w*|registr\w*|"
    r"reg\.?|рег\.?|іпн|рнокпп|nip|regon|krs|siret|siren|ust-?id|steuer\w*|cif|nif|p\.?\s?iva|cnpj|унп|бин|"
    r"иин|іін|ogrnip|tin|uen|gst\w*|barcode|ean|upc|imei|serial|s/n|sku|артикул\w*|арт|штрих\w*)"
    r"(?:\W+[^\W\d]+){0,2})"
    r"\W{0,3}(?:no\.?|nr\.?|number|номер|код|code)?\W{0,3}$",
    re.I,
)
# thousands written with separators ("1 250 000", "125 000 000 rubles") and what follows an amount
_THOUSANDS = re.compile(r"\d{1,3}(?:[ ,.\u00a0]\d{3})+")
_DATE = re.compile(r"\d{1,4}[./\-]\d{1,2}[./\-]\d{1,4}")
_UNIT_AFTER = re.compile(
    r"^\s*(?:[$€£₽₴]|rub|руб|р\.|грн|uah|usd|eur|dollars?|euros?|users?|people|человек|людей|km|км|units?|"
    r"шт|pcs|views?|просмотр|subscribers?|подписчик)",
    re.I,
)
# a word that says the digits after it are a phone number
_PHONE_WORD = re.compile(
    r"(?:phone|call|cell|mobile|mob|tel|text|sms|number|whats\s?app|viber|telegram|dial|reach|contact|"
    r"номер\w*|телефон\w*|тел|моб\w*|звони\w*|позвони\w*|набери\w*|дзвони\w*|подзвони\w*|наберіть|"
    r"вайбер\w*|ватсап\w*|вотсап\w*|вацап\w*|viber|сотов\w*|мобіл\w*|wa|zap|අංකය|නම්බර්|දුරකථන|ෆෝන්)"
    r"\W{1,4}(?:\w+\W{1,3}){0,4}$",
    re.I,
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
                cands.append(m)  # "order #4155552671" is an order number
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

    def _candidate(self, text: str, c: re.Match) -> list[tuple[int, int]]:
        pn = _pn()
        raw = c.group(0)
        if raw.startswith("00"):
            return [c.span()] if _valid_intl(pn, raw[2:]) else []
        # a little context on each side lets the matcher see what surrounds the number
        lo, hi = max(0, c.start() - 2), min(len(text), c.end() + 2)
        snippet = text[lo:hi]
        regions = self.regions[:1] if raw.lstrip("(").startswith("+") else self.regions
        for region in regions:
            found = [
                _with_trunk_prefix(text, c.start(), lo + m.start, lo + m.end)
                for m in pn.PhoneNumberMatcher(snippet, region, leniency=pn.Leniency.VALID)
                if lo + m.start >= c.start()  # not "v0.12.345.6789": digits glued to a word are no phone
            ]
            if found:
                return found
        digits = re.sub(r"\D", "", raw)
        if raw.startswith("+"):  # "+44 7700 900123": a reserved (fiction) range is still written as a phone
            phone = len(digits) >= 9 and (_possible_intl(pn, digits) or _valid_prefix(pn, digits))
            return [c.span()] if phone else []
        if len(digits) >= 9 and "." not in raw and any(_valid_in(pn, digits, r) for r in self.inferred):
            return [c.span()]  # the matcher wants a trunk prefix ("093 ..."); a chat's own region does not
        if len(digits) >= 11 and "." not in raw and set(_regions_of_code(pn, digits)) & set(self.regions):
            return [c.span()]  # "380671234567": a configured or the chat's own country code without the "+"
        return [c.span()] if self._written_as_phone(text, c) else []

    def _written_as_phone(self, text: str, c: re.Match) -> bool:
        """A national number of any region: with a trunk ``0``, or after a phone word."""
        pn = _pn()
        raw = c.group(0)
        digits = re.sub(r"\D", "", raw)
        if digits.startswith("80") and len(digits) >= 10:
            digits = digits[1:]  # "8 (044) 123-45-67": the old long-distance 8 before a national 0
        worded = (
            _PHONE_WORD.search(text[max(0, c.start() - 40) : c.start()]) is not None
            or _PHONE_WORD_AFTER.match(text, c.end()) is not None
        )
        national = digits[0] == "0" and len(digits) >= 9 and ("." not in raw or _dotted_phone(raw))
        if not (national or (worded and len(digits) >= 8)):
            return False
        if not national and _valid_intl(pn, digits):
            return True  # "380661234567", "94 77 123 4567": a country code without the "+"
        return any(_valid_in(pn, digits, r) for r in WORLD)


# the start of a phone at the end of a message: "+7 916", "0771", "(067) 123"
_PHONE_TAIL = re.compile(r"(?<![\w+])\+?\(?\d[\d ()\-]*\d[ \-]?$")


# a phone read out in words, as some type it to get past filters: "my number is oh seven seven one two
# three ...", "мой номер восемь девять один шесть ...", "plus three eight zero ..."
_DIGIT_WORDS = (
    "zero|oh|one|two|three|four|five|six|seven|eight|nine|double|triple|ноль|нуль|один|одна|два|две|дві|три|"
    "четыре|чотири|пять|п['’ʼ]ять|шесть|шість|семь|сім|восемь|вісім|девять|дев['’ʼ]ять"
)
_DIGIT_RUN = re.compile(rf"(?<!\w)(?:(?:{_DIGIT_WORDS}|\d)(?:[\s,\-]+|$)){{7,}}", re.I)
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
        tokens = re.findall(rf"{_DIGIT_WORDS}|\d", m.group(0), re.I)
        n = sum(t.lower() not in ("double", "triple") for t in tokens)
        if 7 <= n <= 15 and _SPELLED_BEFORE.search(text[max(0, m.start() - 24) : m.start()]):
            end = m.end()
            while end > m.start() and not text[end - 1].isalnum():
                end -= 1
            spans.append((m.start(), end))
    return spans


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
    """ "1 250 000", "125 000 000 rubles": a number grouped in thousands, or followed by a unit."""
    raw = c.group(0).strip()
    if raw.startswith("+"):
        return False
    if _DATE.fullmatch(raw):
        return True  # "04.05.2024": a date, in any region
    date = _DATE.match(raw)
    if date and re.fullmatch(r"[\sT]+\d{1,2}", raw[date.end() :]) and text[c.end() : c.end() + 1] == ":":
        return True  # "2024-01-15 10:30": a date and a time
    if _UNIT_AFTER.match(text[c.end() : c.end() + 14]):
        return True
    first = re.split(r"\D", raw, maxsplit=1)[0]
    if raw.startswith("0") or _THOUSANDS.fullmatch(raw) is None:
        return False  # "0 800 300 545": an amount never starts with a zero
    return len(first) < 3 or raw.endswith("000")


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


def _valid_intl(pn, rest: str) -> bool:
    digits = re.sub(r"\D", "", rest)
    return 8 <= len(digits) <= 15 and _valid_in(pn, "+" + digits, "ZZ")


def _with_trunk_prefix(text: str, cand_start: int, s: int, e: int) -> tuple[int, int]:
    """A match that left out the national trunk prefix ("8 (916) ...": "8 ") takes it in."""
    return (cand_start, e) if re.fullmatch(r"8[\s\-]*", text[cand_start:s]) else (s, e)
