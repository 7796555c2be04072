"""Detectors for numbers that identify a person: cards, IBANs and bank accounts, US SSNs, passports,
national and tax IDs, dates of birth. Phones have their own module, :mod:`twin.text.pii_phones`.
"""

from __future__ import annotations

import datetime
import re
from itertools import pairwise

# a run of four or more one- and two-digit numbers: scores, counts, times, lists
_SMALL_GROUPS = re.compile(r"\d{1,2}(?:[ \t\-.]+\d{1,2}){3,}")


def small_groups(raw: str) -> list[str] | None:
    """The groups of a run of small numbers ("20 15 30 45 67", "1 2 3 4 5 6 7 8 9 10", "0 61 2 1
    7"); None for anything else. The phones of only a few countries are written so ("06 12 34 56
    78"), no card or bank account is."""
    return re.findall(r"\d+", raw) if _SMALL_GROUPS.fullmatch(raw) else None


def a_sequence(raw: str) -> bool:
    """Three or more numbers, each 1-20 above the one before, or each below ("112 113 114", "208 209
    210 226", "101 102 103 104 105 106"): rooms, pages, routes. Random three-digit groups step so
    about once in 1,250 (two steps of 1-20 of the same sign), a phone or a card no more often."""
    nums = [int(g) for g in re.findall(r"\d+", raw)]
    steps = [b - a for a, b in pairwise(nums)]
    return len(nums) >= 3 and (all(0 < d <= 20 for d in steps) or all(-20 <= d < 0 for d in steps))


def loose_groups(raw: str) -> bool:
    """Two or more groups of one or two digits ("9 15 664 55 68 451", "76 77 80 346 63 64"): a list
    of points or scores. A card or an account is typed run together, in fours or as its bank groups
    it, with one short group at most ("40817 810 0 9991 0004312")."""
    return sum(len(g) <= 2 for g in re.findall(r"\d+", raw)) >= 2


# --- cards and IBANs --------------------------------------------------------------------------
SEVEN_DIGITS = re.compile(r"\d(?:[\s\-().]{0,3}\d){6}")
# groups apart by a space, two spaces, a dash or (four by four only, see card_ok) a dot; one
# character class, not an alternation: the engine backtracks less
CARD = re.compile(r"(?<![\w.,])\d(?:[ \-.]{0,2}\d){12,18}(?![\w]|[.,]\d)")
# how cards are typed: run together, or a first four, then fours (or Amex's and Diners' six), and the rest
_CARD_GROUPING = re.compile(r"\d{13,19}|\d{4}(?:[ \-.]{1,2}(?:\d{4}|\d{6}))+(?:[ \-.]{1,2}\d{1,5})?")
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
    one: "счёт 12345678" may be an invoice; 8+ after "account"; not a list of points, "счёт 20 15
    30 45 67" or "счёт 121 60 45 100 26 85"), and personal RU accounts anywhere."""
    spans = []
    for m in ACCOUNT.finditer(text):
        if m.group("ru"):
            spans.append(m.span("ru"))
            continue
        n = sum(c.isdigit() for c in m.group("val"))
        cyrillic = not m.group("kw").isascii()
        score = loose_groups(m.group("val")) or a_sequence(m.group("val"))  # "счёт 20 15 30 45 67": a score
        if (10 if cyrillic else 8) <= n <= 28 and not score:
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
    """Are the digits ``raw`` at ``start`` of ``text`` a card: 13-19 of them, Luhn, not a phone or a
    registry number, not a list of numbers (see :func:`loose_groups`, :func:`a_sequence`), and typed
    run together or in fours (Amex 4-6-5) unless a card word is right before them."""
    digits = re.sub(r"\D", "", raw)
    if not (13 <= len(digits) <= 19 and digits[0] != "0" and luhn_ok(digits)):
        return False
    if loose_groups(raw) or a_sequence(raw):  # one in ten passes Luhn
        return False  # "score 95 90 37 3 79 7 40 80 55", "rooms 101 102 103 104 105 106"
    worded = _CARD_WORD.search(text[max(0, start - 24) : start]) is not None
    if not (worded or _CARD_GROUPING.fullmatch(raw)):
        return False  # "score 817 3 499 318 365": a card is typed in fours (Amex 4-6-5) or run together
    if "." in raw and not _DOTTED_CARD.fullmatch(raw):
        return False  # "1.234.567.890.123": an amount in thousands, not a card written 4111.1111.1111.1111
    if text[max(0, start - 1) : start] == "+":
        return False  # "+4915112345678": a country code, a phone (one in ten passes the Luhn check)
    # a SIRET is Luhn-checked too
    return worded or not registry_number(text, start)


# "card no 4276 ...", "номер карты 2200 ...": the "no" / "№" is the card's, not an order's
_CARD_WORD = re.compile(r"(?:card|карт\w*|visa|mastercard)\W*(?:no\.?|nr\.?|number|номер|№|#)?\W*$", re.I)


# a card word anywhere in the words before the digits, for a card typed over several messages ("скинь
# номер карты" / "5375" / "4112" ...)
_CARD_WORD_IN = re.compile(r"(?<!\w)(?:card|карт[аыиуеоі]\w*|visa|mastercard|кард)", re.I)


def card_word_before(text: str, end: int) -> bool:
    """A card word in the last 40 characters of ``text[:end]``."""
    return _CARD_WORD_IN.search(text[max(0, end - 40) : end]) is not None


# an IBAN typed over two messages: its country code, check digits and first groups end one message
# ("IBAN DE89 3704 0044"), the rest starts the next ("0532 0130 00"); the country's length and the
# checksum decide
_IBAN_START = re.compile(r"(?<!\w)[A-Za-z]{2} ?\d{2}")
_IBAN_REST = re.compile(r"(?:[ \-]?[A-Za-z0-9])*")
_DIGIT = re.compile(r"\d")
_IBAN_HEAD = re.compile(r"\W{0,2}[A-Za-z0-9](?:[ \-]?[A-Za-z0-9]){1,31}")


def split_iban(prev: str, text: str) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Spans of an IBAN cut in two: the tail of ``prev`` and the head of ``text`` (the caller's test:
    ``text`` starts with a digit, as an IBAN goes on after its country code and bank letters)."""
    stop = len(prev.rstrip(".,;:!? "))
    lo = max(0, stop - 70)  # 34 characters and the spaces between them at most
    if not (stop and prev[stop - 1].isalnum() and _DIGIT.search(prev, lo, stop)):
        return None  # no digit near the end of the message before
    # the leftmost country code and check digits from which letters and digits in groups run to the end
    # (one regex for the whole tail backtracked at every letter pair: 2 us a message)
    a = next(
        (m for m in _IBAN_START.finditer(prev, lo, stop) if _IBAN_REST.fullmatch(prev, m.end(), stop)), None
    )
    b = _IBAN_HEAD.match(text)
    if a is None or b is None:
        return None
    first = re.sub(r"[\W_]", "", prev[a.start() : stop])
    expected = _IBAN_LEN.get(first[:2].upper())
    if expected is None or len(first) >= expected:
        return None
    start = b.start()
    while not text[start].isalnum():
        start += 1
    need, end = expected - len(first), start
    while need and end < b.end():  # as many characters of the head as the IBAN lacks
        need -= text[end].isalnum()
        end += 1
    if need or (end < len(text) and text[end].isalnum()):
        return None
    if not iban_ok(first + re.sub(r"[\W_]", "", text[start:end])):
        return None
    return (a.start(), stop), (start, end)


# a number broken by a line break inside one message ("GB82 WEST 1234\n5698 7654 32", "4111 1111\n1111
# 1111 моя карта"), read with each break as a space (one character for one: the spans hold). Only the
# numbers that cross a break: the others are found as they are.
def _across_lines(spans: list[tuple[int, int]], text: str) -> list[tuple[int, int]]:
    return [(s, e) for s, e in spans if "\n" in text[s:e]]


def broken_iban_spans(text: str) -> list[tuple[int, int]]:
    """IBANs cut by a line break: the country's length and the mod-97 checksum decide, as on one line."""
    return _across_lines(iban_spans(text.replace("\n", " ")), text)


def broken_card_spans(text: str) -> list[tuple[int, int]]:
    """Cards cut by a line break, in a message with a card word: a table of numbers joined across its
    lines passes the Luhn check one time in ten."""
    if _CARD_WORD_IN.search(text) is None:
        return []
    return _across_lines(card_spans(text.replace("\n", " ")), text)


# an order, registry or tax number right before the digits: not a phone (nor a card)
_REGISTRY_BEFORE = re.compile(
    r"(?<![^\W\d_])(?:(?:order|заказ|invoice|сч[её]т|ticket|тикет|рахун)\w*|№|#|id|no\.?|nr\.?|isbn|issn|track\w*|трек\w*"
    r"|(?:огрн\w*|инн|кпп|окпо|бик|єдрпоу|едрпоу|edrpou|inn|ogrn|vat|crn|ein|kvk|hrb|abn|compan\w*|registr\w*|"
    r"reg\.?|рег\.?|іпн|рнокпп|nip|regon|krs|siret|siren|ust-?id|steuer\w*|cif|nif|p\.?\s?iva|cnpj|унп|бин|"
    r"иин|іін|ogrnip|tin|uen|gst\w*|barcode|ean|upc|imei|serial|s/n|sku|артикул\w*|арт|штрих\w*)"
    r"(?:\W+[^\W\d]+){0,2})"
    r"\W{0,3}(?:no\.?|nr\.?|number|номер|код|code)?\W{0,3}$",
    re.I,
)


def registry_number(text: str, start: int) -> bool:
    """An order, tax, company registry, flight or booking number: the words right before the digits say so."""
    before = text[max(0, start - 24) : start]
    return _REGISTRY_BEFORE.search(before) is not None or _TRAVEL_BEFORE.search(before) is not None


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
    r"(?<!\w)(?:passport|паспорт\w*|загранпаспорт\w*|загран\w*|id[\s\-]?картк?\w*|сери[яиюі]|сері[яїю])"
    r"[\s,:;#№.\-]*(?:(?:no|nr|number|num|номер|is|рф|данные|дані|мой|мій|my|серия|серія|и|та|us|usa|id|"
    r"громадянина|гражданина|україни|украины)"
    r"(?!\w)[\s,:;#№.\-]*){0,4}"
    r"(?P<val>\d{2}\s?\d{2}[,\s]*(?:(?:номер|№|n|no\.?)\s*)?\d{6}|\d{2}\s\d{7}|[A-ZА-ЯІЇЄ]{1,2}\s?(?:(?:№|номер)\s?)?\d{6,8}|\d{3}\s?\d{3}\s?\d{3}|\d{6,9})"
    r"(?![\w])",
    re.I,
)

# --- national and tax ID numbers, dates of birth ----------------------------------------------
# A person's own numbers: RU ИНН (12 digits; a company's 10 are public), СНИЛС (11), UA РНОКПП / ІПН
# (10; a company's ЄДРПОУ is 8), Sri Lanka's NIC (12 digits, or 9 and V/X; "NIC" or හැඳුනුම්පත, identity
# card), and any "ID number".
_ID_WORDS = {
    "инн": (12,), "снилс": (11,), "іпн": (10,), "рнокпп": (10,), "ідентифікаційний": (10,),
    "nic": (12,), "හැඳුනුම්පත": (12,), "தேசிய": (12,), "அடையாள": (12,), "nid": tuple(range(6, 15)), "national": tuple(range(6, 15)), "id": tuple(range(6, 15)),
    "иин": (12,), "iin": (12,), "жсн": (12,), "унзр": (13,), "запис": (13,), "aadha": (12,), "adha": (12,),
    "cnic": (13,), "полис": (16,), "омс": (16,), "driv": tuple(range(6, 13)), "dl": tuple(range(6, 13)),
    "вод": tuple(range(6, 13)), "посвідчення": tuple(range(6, 13)), "pesel": (11,), "steuer": (11,),
}  # fmt: skip
_LETTERED_IDS = ("id", "nid", "national", "driv", "dl", "вод", "посвідчення")  # "AB1234567", "ВХК 123456"
ID_NUMBER = re.compile(
    r"(?<!\w)(?P<kw>инн|снилс|іпн|рнокпп|ідентифікаційн\w*(?=\s+(?:код|номер))|nic|nid|national(?=\s+id)|id(?=\s*(?:no|nr|number|#|№))|"
    # Kazakhstan's ИИН / ЖСН, Ukraine's УНЗР (the record number on an ID card), India's Aadhaar, Pakistan's
    # CNIC, a Russian medical policy (полис ОМС), a driving licence
    r"иин|iin|жсн|унзр|запис(?=\s*№)|aadhaa?r|adhaar|cnic|(?:полис\s+)?омс|(?:driving|driver'?s)\s+licen[cs]e|"
    # a driving licence in Ukrainian and Russian, "DL no."; Poland's PESEL (Ukrainians there have one), Germany's Steuer-ID
    r"dl(?=\s*(?:no|nr|number|#|№))|посвідчення\s+водія|водійськ\w*\s+посвідчення|водительск\w*\s+удостоверени\w*|"
    r"вод\.\s*удостоверени\w*|pesel|steuer[\s\-]?id|"
    r"(?:ජාතික\s+)?හැඳුනුම්පත්?|(?:தேசிய\s+)?அடையாள\s+அட்டை)"  # Sinhala, Tamil: "(national) identity card"
    r"(?:\s+(?:id|код|номер|card|no|nr|number|අංකය|எண்))?(?!\w)[\s,:;#№.\-]*(?:(?:is|мой|мій|my|no|nr|number|номер|අංකය|எண்|எனது|физ\.?\s?лиц\w*|фіз\.?\s?особ\w*)(?!\w)[\s,:;#№.\-]*){0,3}"
    r"(?P<val>(?:[A-ZА-ЯЁІЇЄҐ]{1,3}\s?)?\d(?:[\- ]?\d){5,15}(?:[VvXx](?!\w))?)(?![\w\-])",
    re.I,
)
ID_HINT = re.compile(
    r"инн|снилс|іпн|рнокпп|ідентифікаційн|nic|nid|national\s+id|id\s*(?:no|nr|number|#|№)|හැඳුනුම්පත|அடையாள"
    r"|иин|iin|жсн|унзр|запис\s*№|aadha|adhaar|cnic|омс|licen[cs]e|dl\s*(?:no|nr|number|#|№)|водительск|водійськ|вод\.\s*уд|посвідчення|pesel|steuer|insurance|ni\s+(?:number|no)"
)
# device identifiers after their name: a phone's IMEI (15 digits passing Luhn, as "*#06#" shows it, also
# "35-693803-564380-9"; 16 for an IMEISV) and a car's VIN (17 letters and digits, no I, O or Q; a
# licence plate: PLATE); all are on police and insurance records with the owner's name
DEVICE_ID = re.compile(
    r"(?<!\w)(?P<kw>imei(?:sv)?|имей|імей|vin|вин|він)(?:[\s\-]*(?:код|code|number|no|nr|номер)\.?)?(?!\w)[\s,:;#№.\-]*"
    r"(?:(?:is|мой|мій|my|номер|number|телефона|телефону|phone|машины|машини|авто|car)(?!\w)[\s,:;#№.\-]*){0,3}"
    r"(?P<val>\d(?:[\- ]?\d){13,15}|(?=[A-HJ-NPR-Z0-9]{0,16}\d)(?=[A-HJ-NPR-Z0-9]{0,16}[A-Z])[A-HJ-NPR-Z0-9]{17})(?![\w\-])",
    re.I,
)
DEVICE_HINT = re.compile(r"imei|имей|імей|vin|вин|він")  # on lower-cased text


def device_check(m: re.Match, _text: str) -> bool:
    """An IMEI's 15 digits pass Luhn (16: an IMEISV); a VIN after "vin" only."""
    kw, val = m.group("kw").lower(), m.group("val")
    digits = re.sub(r"\D", "", val)
    if kw in ("vin", "вин", "він"):
        return len(val) == 17 and not val.isdigit()
    return len(digits) == 16 or (len(digits) == 15 and luhn_ok(digits))


# a car's licence plate after its word ("госномер А123ВС 777", "номер авто: AA 1234 BB", "car reg AB12 CDE",
# "වාහන අංකය WP CAB-1234"): on the same registers as the VIN, with the owner's name. Only in a plate's
# shape: Russian (letter, 3 digits, 2 letters, region), Ukrainian (2 letters, 4 digits, 2 letters),
# British (AB12 CDE), Sri Lankan (WP CAB-1234), or 5-8 capitals and digits mixed (US states)
_PLATE_LETTER_RU = "[АВЕКМНОРСТУХABEKMHOPCTYX]"
PLATE = re.compile(
    r"(?<!\w)(?:гос\.?\s?номер\w*|госномер\w*|держ\.?\s?номер\w*|держномер\w*|номерн(?:ой|ий|ые|і)\s+знак\w*|"
    r"номер\w*\s+(?:машин\w*|авто\w*|тачки|автомобил\w*|автомобіл\w*)|(?:машин\w*|авто|тачк\w*)\s+номер|"
    r"(?:licen[cs]e|number|registration|reg\.?)\s+plate|plate(?:\s+(?:no|number))?|car\s+reg(?:istration)?|"
    r"වාහන\s+අංකය|வாகன\s+எண்)(?!\w)[\s:#№.\-]*"  # not "registration number": a company's too
    r"(?:(?:is|my|мой|мій|у\s+меня|у\s+мене)(?!\w)[\s:#№.\-]*){0,2}"
    rf"(?P<val>{_PLATE_LETTER_RU}\s?\d{{3}}\s?{_PLATE_LETTER_RU}{{2}}\s?\d{{2,3}}"
    r"|[A-ZА-ЯІ]{2}\s?\d{4}\s?[A-ZА-ЯІ]{2}|[A-Z]{2}\d{2}\s?[A-Z]{3}|[A-Z]{2}\s?[A-Z]{2,3}[\s\-]?\d{4}"
    r"|(?-i:(?=[A-Z\d\- ]{0,8}\d)(?=[A-Z\d\- ]{0,8}[A-Z])[A-Z\d]{2,4}[\s\-]?[A-Z\d]{2,4}))(?![\w\-])",
    re.I,
)


def plate_hint(low: str) -> bool:
    """Cheap test on lower-cased text for a plate's word (substring tests: 3x faster than one regex)."""
    return "номер" in low or "plate" in low or "reg" in low or "වාහන" in low or "வாகன" in low


# a MAC address: six hex pairs joined by ":" or "-", a letter among them ("12-34-56-78-90-12" may be
# lottery numbers, "25:23:19:25:15:10" set scores; twelve hex digits are all decimal 0.3% of the time)
MAC = re.compile(r"(?<![\w:\-])[0-9A-Fa-f]{2}([:\-])[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}(?![\w:\-])")


def mac_check(m: re.Match, _text: str) -> bool:
    return not m.group(0).replace(m.group(1), "").isdigit()


# the UK's National Insurance number: two letters, six digits, A-D ("QQ 12 34 56 C")
NINO = re.compile(
    r"(?<!\w)(?:national\s+insurance(?:\s+(?:number|no\.?))?|ni\s+(?:number|no\.?))(?:\s+is)?[\s:#\-]*"
    r"(?P<val>[A-Z]{2}\s?\d{2}\s?\d{2}\s?\d{2}\s?[A-D])(?!\w)",
    re.I,
)
NIC_OLD = re.compile(r"(?<![\w\-])\d{9}[VvXx](?!\w)")  # Sri Lanka's NIC before 2016: 9 digits, V or X
SNILS = re.compile(r"(?<![\w\-])\d{3}-\d{3}-\d{3}[ \-]\d{2}(?![\w\-])")  # the form no other number takes
# forms no other number takes either: Pakistan's CNIC 5-7-1 ("35202-1234567-1"), the UAE's Emirates ID
# (784, the birth year, 7 digits, a check digit: "784-1990-1234567-1")
ID_FORMS = re.compile(r"(?<![\w\-])(?:\d{5}-\d{7}-\d|784-(?:19|20)\d{2}-\d{7}-\d)(?![\w\-])")
# India's PAN after its name: five letters (the fourth P, a person), four digits, a letter
PAN = re.compile(
    r"(?<!\w)(?P<kw>pan)(?:\s+(?:card|no|number|is|#|:))*[\s:#\-]*(?P<val>[A-Z]{3}P[A-Z]\d{4}[A-Z])(?!\w)",
    re.I,
)


def id_check(m: re.Match, _text: str) -> bool:
    """As many digits as the named ID has (V/X only on Sri Lanka's old NIC)."""
    digits = sum(c.isdigit() for c in m.group("val"))
    kw = m.group("kw").lower().removeprefix("ජාතික").strip()
    if m.group("val")[-1] in "VvXx":
        return kw.startswith(("nic", "හැඳුනුම්පත", "தேசிய", "அடையாள")) and digits == 9
    if m.group("val")[0].isalpha():  # "AB1234567": only a generic "ID number" has letters
        return kw.startswith(_LETTERED_IDS) and 6 <= digits <= 9
    return digits in next(v for k, v in _ID_WORDS.items() if kw.startswith(k))


# a person's 12-digit ИНН anywhere in a message that names an ИНН, when its two check digits hold (one
# number in a hundred passes): "ИНН 7707083893 это ООО, а мой 500100732259" (the word is the company's)
INN12 = re.compile(r"(?<![\w\-])\d{12}(?![\w\-])")


def inn12_check(m: re.Match, _text: str) -> bool:
    d = [int(c) for c in m.group(0)]
    w11, w12 = (7, 2, 4, 10, 3, 5, 9, 4, 6, 8), (3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8)
    check11 = sum(a * b for a, b in zip(w11, d[:10], strict=True)) % 11 % 10
    check12 = sum(a * b for a, b in zip(w12, d[:11], strict=True)) % 11 % 10
    return d[10] == check11 and d[11] == check12


# a birthday with its year is a date of birth: "my birthday is 12/05/1990", "день рождения 12.05.1990"
_DOB_WORD = (
    r"born|date\s+of\s+birth|birth\s*date|birthday|b-?day|d\.?o\.?b\.?|дата\s+рождения|день\s+рождения|"
    r"днюха|д\.\s?р\.|др|родил(?:ся|ась)|дата\s+народження|день\s+народження|народи(?:вся|лася|лась)|нар\.|"
    # abbreviated: "дата рожд.", "д.н." (дата народження), "г.р." (год рождения); Sinhala "was born"
    r"дата\s+рожд\.?|д\.\s?н\.|г\.\s?р\.|"
    r"උපන්\s+දිනය|උපන්දිනය|උපන්නේ|ඉපදු[නණ]ේ|"
    r"பிறந்த\s+(?:தேதி|திகதி|நாள்)|பிறந்தேன்|பிறந்தார்|பிறந்தாள்"  # Tamil: date of birth, birthday, was born
)
_MONTH = r"[A-Za-zА-Яа-яЁёІіЇїЄє]{3,10}\.?"
# a month by its name, for a two-digit year after it ("dob: 12 Mar 95"; "born 5 weeks 20 days early" is none)
_MONTH_NAME = (
    r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|янв|фев|мар|апр|ма[йя]|июн|июл|авг|сен|окт|ноя|дек|"
    r"січ|лют|бер|кві|тра|чер|лип|сер|вер|жов|лис|гру)[a-zа-яёіїє]{0,7}\.?"
)
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
# a day in words, as a date is said: "born on the fifth of May 1988", "народився двадцятого травня 1990",
# "родилась тридцать первого мая 1991" (English ordinals; Russian and Ukrainian genitive ones)
_DAY_WORD = (
    r"(?:(?:twenty|thirty)[\s\-]?)?(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth)|tenth|"
    r"eleventh|twelfth|(?:thir|four|fif|six|seven|eigh|nine)teenth|twentieth|thirtieth|"
    r"(?:(?:двадцать|тридцать|двадцять|тридцять)\s+)?"
    r"(?:перв|втор|трет|четв[её]рт|пят|шест|седьм|восьм|девят|десят|одиннадцат|двенадцат|тринадцат|"
    r"четырнадцат|пятнадцат|шестнадцат|семнадцат|восемнадцат|девятнадцат|двадцат|тридцат|"
    r"перш|друг|п['’]?ят|шост|сьом|дев['’]?ят|одинадцят|дванадцят|тринадцят|чотирнадцят|п['’]?ятнадцят|"
    r"шістнадцят|сімнадцят|вісімнадцят|дев['’]?ятнадцят|двадцят|тридцят)(?:ого|ьего|ього)"
)
_DAY_ANY = rf"(?:{_DAY}|{_DAY_WORD})"
# Tamil month names ("12 மே 1990")
_TA_MONTH = "(?:ஜனவரி|பிப்ரவரி|மார்ச்|ஏப்ரல்|மே|ஜூன்|ஜூலை|ஆகஸ்ட்|செப்டம்பர்|அக்டோபர்|நவம்பர்|டிசம்பர்)"
# Sinhala month names, written after the year as Sinhala dates are ("1995 මාර්තු 12")
_SI_MONTH = "(?:ජනවාරි|පෙබරවාරි|මාර්තු|අප්\u200d?රේල්|මැයි|ජූනි|ජූලි|අගෝස්තු|සැප්තැම්බර්|ඔක්තෝබර්|නොවැම්බර්|දෙසැම්බර්)"
BIRTHDATE = re.compile(
    rf"(?<!\w)(?P<kw>{_DOB_WORD})(?!\w)[\s:,\-–—]*"
    r"(?:(?:on|is|in|was|my|the|у\s+меня|у\s+мене|мой|мій|:|-)\s+){0,2}"
    # day.month.year with a 2-digit year too ("родился 12.05.90": the word says it is a birth date)
    r"(?P<val>\d{1,2}[./\- ]\d{1,2}[./\- ](?:19|20)?\d{2}|(?:19|20)\d{2}[./\-]\d{1,2}[./\-]\d{1,2}"
    rf"|{_DAY_ANY}\s+(?:of\s+)?(?:{_MONTH}|{_TA_MONTH}),?\s+(?:19|20)\d{{2}}|{_DAY}\s+(?:of\s+)?{_MONTH_NAME}\s+['’]?\d{{2}}"
    rf"|(?:19|20)\d{{2}}\s+(?:{_MONTH_NAME}|{_SI_MONTH})\s+\d{{1,2}}"  # year first: "1995 මාර්තු 12"
    rf"|{_MONTH}\s+(?:the\s+)?{_DAY_ANY},?\s+(?:19|20)\d{{2}})(?![\d])",
    re.I,
)
_BIRTHDAY = re.compile(r"(?:birthday|b-?day|день\s.*|днюха|др|பிறந்த\s+நாள்)$", re.I)


def birthdate_check(m: re.Match, _text: str) -> bool:
    """A birthday's date is a date of birth only with a birth year: "birthday 12/05/1990", not the
    party's date ("днюха 25.12.24", "birthday party 12/05/2025"). After a birth word ("born", "DOB",
    "д.р.", "родился") any date is one, a two-digit year too ("родился 12.05.90")."""
    val = m.group("val")
    year = re.findall(r"\d+", val)
    year = year[0] if len(year[0]) == 4 else year[-1]
    if not _BIRTHDAY.match(m.group("kw")):  # "born", "DOB", "д.р.": any date after it
        return True
    if re.match(r"\d{4}\s", val):
        return False  # "birthday 2019 may 5 guests": a year first is a birth date only after a birth word
    return len(year) == 4 and int(year) < datetime.date.today().year - 1


DOB_HINT = re.compile(
    r"born|birth|b-?day|d\.?o\.?b|рожд|д\.\s?р\.|др\b|днюх|родил|народж|народи|нар\.|д\.\s?н\.|г\.\s?р\.|р\.\s?н\.|උපන්|ඉපදු|பிறந்"
)
# a date with "г.р." / "р.н." (year of birth) after it, as forms and lists write it: "Иванов И., 12.03.1990 г.р."
BIRTHDATE_BEFORE = re.compile(
    r"(?<![\w.])(?P<val>\d{1,2}[./\-]\d{1,2}[./\-](?:19|20)\d{2})\s*(?:г\.?\s?р\.|р\.?\s?н\.|года\s+рождения|року\s+народження|"
    r"(?:அன்று\s+)?பிறந்(?:தேன்|தார்|தாள்))",  # Tamil puts "was born" after the date ("03.11.1987 அன்று பிறந்தேன்")
    re.I,
)
