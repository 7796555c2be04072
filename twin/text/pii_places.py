"""Street addresses:

- English: "221B Baker Street", "42 Maple Ave, apt 3", "No. 25, Galle Road", "45/2, Temple Road",
  "house 12 on Maple Street";
- Russian and Ukrainian: "ул. Ленина, д. 5, кв. 12", "вул. Хрещатик, 22", "дом 14 корпус 3 квартира 88";
  the house before the street ("в доме 5 по улице ленина", "в будинку 5 на вулиці Шевченка"); in lower
  case after a street word ("ул ленина 5", "живу на улице ленина 5"); a name with a flat, an entrance or
  a floor ("тверская 7 кв 12", "Садовую 10, 3 этаж"); typed in Latin letters ("vul. Shevchenka 12, kv. 5");
- Sinhala: "අංක 25, ගාලු පාර";
- street first, as Ukrainian and German addresses are written in English or German: "Horodotska St 12",
  "Hauptstraße 12, 10115 Berlin";
- what follows "адрес:" / "address:" ("адрес: Москва, Тверская 7-15");
- PO boxes ("PO Box 1234", "а/я 56"), a whole UK postcode in capitals ("LS6 2AB"), map coordinates in text.

An address needs a street word (or the word "address") and a house number: "on Baker Street" or "на
улице жарко" is not one. A street or a city alone is public; the house number (and flat, postcode) is
what locates a person.
"""

from __future__ import annotations

import re


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _word_after(text: str, end: int) -> str:
    """The word right after ``text[:end]``, lower case, without trailing punctuation ("" at the end)."""
    after = text[end:].split(maxsplit=1)
    return after[0].lower().strip(".,!?") if after else ""


_EN_SUFFIX = (
    r"street|st|avenue|ave|av|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|way|place|pl|terrace|"
    r"close|square|sq|parkway|pkwy|highway|hwy|crescent|cres|row|gardens|mews|alley|circle|cir|gate|grove|"
    r"quay|wharf|embankment|broadway|mawatha|mw|marg"
)
_EN_UNIT = r"(?:,?\s*(?:apt|apartment|suite|ste|unit|flat|fl|room|#)\.?\s*#?\w{1,5})"
_EN_TAIL = (
    r"(?:,\s*[A-Z][A-Za-z]+(?:\s+[A-Z][A-Za-z]+(?!\d))?)?"  # city (not "NW" of the postcode "NW1 6XE")
    r"(?:,?\s*(?:[A-Z]{2}\s+\d{5}(?:-\d{4})?|[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}))?"  # state + ZIP / UK postcode
)
ADDRESS_EN = re.compile(
    # "No. 25, Galle Road" (Sri Lanka, India): the number may take "No." before it and a comma after it
    rf"(?:\bNo\.?\s*)?(?<![\w#$€£.,:/\-])(?P<num>(?:\d{{1,4}}/)?\d{{1,5}}[A-Za-z]?),?(?P<name>(?:\s+(?:[A-Za-z][A-Za-z'’.\-]*|\d{{1,3}}(?:st|nd|rd|th)))(?:\s+(?:[A-Za-z][A-Za-z'’.\-]*|\d{{1,3}}(?:st|nd|rd|th))){{0,2}}?)"
    rf"\s+(?:{_EN_SUFFIX})\b\.?(?:\s+(?:NW|NE|SW|SE|N|S|E|W)\b)?{_EN_UNIT}?{_EN_TAIL}",
    re.I,
)
# words that make "2 more days and the road" a sentence, not a street name
_NOT_NAME = _words(
    "the a an and or to of in on at for from by with more than less days day hours hour minutes min km "
    "miles mi am pm minute hour mile second block step steps blocks times people years months weeks my your his her our their this that these those is are was "
    "we you they it i me kids cars dogs cats blocks stops exits lanes way ways"
)

_RU_STREET = (
    r"ул\.?|улиц[аеуы]|улицей|пр-т\.?|пр-те|пр-та|пр-кт\.?|б-р|пр\.|просп\.?|проспект\w*|пер\.?|переул\w*|бул\.?|бульв\.?|"
    r"бульвар\w*|ш\.|шоссе|наб\.?|набережн\w*|пл\.?|площад\w*|мкр\.?|микрорайон\w*|вул\.?|вулиц\w*|"
    r"пров\.?|провул\w*|майдан\w*|тупик\w*|проезд\w*|проїзд\w*"
)
_RU_HOUSE = (
    r"(?:(?:д|дом|буд|будинок|б)\.?\s*)?\d{1,4}"
    r"(?:\s*(?:/|к\.?|корп\.?|корпус|стр\.?|строение)\s*\d{1,3}|[а-яa-z](?![\w]))?"
    r"(?:-\d{1,4}(?![\d.:]))?"  # "Ленина 5-12": house 5, flat 12
)
# a flat, an office, or the entrance or floor ("Садовая 10, подъезд 2", "Садовую 10, 3 этаж")
_ENTRANCE = r"подъезд|під['’ʼ]?їзд|этаж|поверх"
_FLAT_WORDS = r"кв\.?|квартира|кв-ра|офис|оф\.?|помещение|пом\.?"
_FLAT_ONLY = rf"(?:,?\s*(?:{_FLAT_WORDS})\s*\d{{1,4}})"
_RU_FLAT = (
    rf"(?:,?\s*(?:(?:{_FLAT_WORDS}|подъезд|под\.|під['’ʼ]?їзд)\s*\d{{1,4}}"
    rf"|\d{{1,2}}(?:-?(?:й|ий|ый|ой))?\s*(?:{_ENTRANCE})(?!\w)))"
)
# one word of a street name, up to three ("Маршала Жукова", "8 Марта"); whether a lower-case one
# ("маршала жукова") is a street is decided by address_ru_check
_NAME = r"[А-ЯЁІЇЄҐA-Zа-яёіїєґ0-9][\w'’\-]*\.?"
ADDRESS_RU = re.compile(
    # "ул. Ленина, д. 5, кв. 12", "проспект Мира 15к2", "вул. Хрещатик, 22"
    rf"(?<!\w)(?P<kw>{_RU_STREET})(?:(?<=\.)|(?!\w))\s*(?P<name>{_NAME}(?:\s+{_NAME}){{0,2}}?),?\s*{_RU_HOUSE}{_RU_FLAT}?(?![\w])"
    # "Тверская ул., 7, кв 45", "на Ленинском проспекте 45"
    rf"|(?<!\w)[А-ЯЁІЇЄҐ][\w\-]+\s+(?:(?:ул|вул|пр-т|просп|пер|бул|пр)\.|(?:ул|вул|пр-т|просп|пер|бул)|"
    rf"улиц\w*|проспект\w*|переул\w*|"
    rf"бульвар\w*|шоссе|набережн\w*|вулиц\w*|провул\w*),?\s*{_RU_HOUSE}{_RU_FLAT}?(?![\w])"
    # "Ленина, 5, кв. 12", "тверская 7 кв 12": a street name, a house number and a flat (a lower-case
    # name is checked by address_ru_check)
    rf"|(?<![\w.])(?!(?:дом[еау]?|будин\w*)(?!\w))(?P<flatname>[А-ЯЁІЇЄҐа-яёіїєґ][\w\-]+),?\s+\d{{1,4}}[а-я]?(?:/\d{{1,3}})?{_RU_FLAT}"
    # "дом 14 корпус 3 квартира 88", "д. 5, кв. 12"
    rf"|(?<!\w)(?:д\.|дом|буд\.|будинок)\s*\d{{1,4}}[а-я]?(?:,?\s*(?:корп\.?|корпус|к\.|стр\.?)\s*\d{{1,3}})?"
    rf"{_FLAT_ONLY}",  # "дом 5, подъезд 2": a house and an entrance, no street, stay
    re.I,
)
# the house number first, the street after it: "в доме 5 по улице ленина", "дом 7 по ул. Ленина", "в
# будинку 5 на вулиці Шевченка" (the name is checked by house_first_check)
ADDRESS_HOUSE_FIRST_RU = re.compile(
    r"(?<!\w)(?:дом[еау]?|д\.|будин(?:ок|ку)|буд\.)\s*\d{1,4}[а-яa-z]?(?:/\d{1,3})?(?![\w/])"
    r"(?:,?\s*(?:корп\.?|корпус|к\.)\s*\d{1,3})?"
    rf",?\s+(?:(?:по|на)\s+)?(?P<kw>{_RU_STREET})(?:(?<=\.)|(?!\w))\s*(?P<name>{_NAME})(?!\w){_RU_FLAT}?",
    re.I,
)
# "house 12 on Maple Street", "flat 4 at Baker Street": a dwelling word, its number, on/at, a street
ADDRESS_HOUSE_FIRST_EN = re.compile(
    r"(?<!\w)(?:house|flat|apartment|apt\.?)\s+(?:(?:no\.?|number|#)\s*)?\d{1,4}[A-Za-z]?,?\s+(?:on|at|in)\s+"
    rf"(?P<name>[A-Za-z][A-Za-z'’.\-]*(?:\s+[A-Za-z][A-Za-z'’.\-]*){{0,2}}?)\s+(?:{_EN_SUFFIX})\b\.?",
    re.I,
)


def house_first_hint(low: str) -> bool:
    """Cheap test on lower-cased text for a dwelling word (substring tests: this runs on every line
    with a digit and a street word)."""
    return "дом" in low or "будин" in low or "д." in low or "буд." in low


# "අංක 25, ගාලු පාර" / "25/3 මහනුවර පාර": a house number, one to three Sinhala words, a street word
# (පාර road, මාවත mawatha, වීදිය street, පටුමග lane, හන්දිය junction). පාර is also "time" ("3 වෙනි
# පාර", the third time), so the number must read as a house number: after අංක ("No."), as N/M, or with a comma.
ADDRESS_SI = re.compile(
    r"(?:අංක\s*(?:\d{1,4}/)?\d{1,5}[A-Za-z]?,?|(?<![\w.,:/\-])(?:\d{1,4}/(?:\d{1,5}[A-Za-z]?|[A-Za-z]),?|\d{1,5}[A-Za-z]?,))"
    r"(?:\s+[\u0D80-\u0DFF]+){1,3}?"
    r"\s*(?:පාර|මාවත|වීදිය|පටුමග|හන්දිය)(?![\u0D80-\u0DFF])"
)
SI_HINT = re.compile(r"\d.{0,40}(?:පාර|මාවත|වීදිය|පටුමග|හන්දිය)")
# the same in Tamil (Sri Lanka, India): "இல. 25, காலி வீதி", "25, காலி வீதி", "12/A, ..." (வீதி / தெரு street,
# சாலை road, மாவத்தை, ஒழுங்கை lane)
ADDRESS_TA = re.compile(
    r"(?:இல\.?\s*(?:\d{1,4}/)?\d{1,5}[A-Za-z]?,?|(?<![\w.,:/\-])(?:\d{1,4}/(?:\d{1,5}[A-Za-z]?|[A-Za-z]),?|\d{1,5}[A-Za-z]?,))"
    r"(?:\s+[\u0B80-\u0BFF]+){1,3}?"
    r"\s*(?:வீதி|சாலை|தெரு|மாவத்தை|ஒழுங்கை)(?![\u0B80-\u0BFF])"
)


def ta_hint(text: str) -> bool:
    """Cheap test: a Tamil street word (substring tests: most lines hold no Tamil at all)."""
    return "வீதி" in text or "சாலை" in text or "தெரு" in text or "மாவத்தை" in text or "ஒழுங்கை" in text


# abbreviated street words take any name; full ones ("на улице жара 30" is the weather) a capitalised
# one, except those in _LOWER_NAME_OK below
_ABBREVIATED = re.compile(r"^(?:ул|пр-т|пр-кт|б-р|просп|пер|бул|бульв|ш|наб|пл|мкр|вул|пров)\.?$", re.I)
# cheap gates on lower-cased text: a street word somewhere
EN_HINT = re.compile(rf"\d[a-z]?,?(?:\s+[a-z0-9][a-z0-9'’.\-]*){{1,4}}\s+(?:{_EN_SUFFIX})\b")
RU_HINT = re.compile(
    r"ул[.\s]|пр[.\s]|пр-т|пр-кт|б-р|просп|пер[.\s]|бул[.\s]|бульв|ш\.|наб[.\s]|пл[.\s]|мкр|вул[.\s]|пров[.\s]|улиц|"
    r"вулиц|проспект|переул|бульвар|шоссе|набережн|площад|микрорайон|провул|майдан|тупик|проезд|проїзд|"
    r"д\.\s?\d|дом\s?\d|буд\.\s?\d|будинок\s?\d|кв\.?\s?\d|квартир|подъезд|під['’ʼ]?їзд|этаж|поверх"
)


# street words that are also everyday words ("3 goals close", "2 wins in a row"): only after a capitalised name
_AMBIGUOUS = _words("close row place pl court ct gate square sq circle cir way mews gardens grove quay")


def address_en_check(m: re.Match, text: str) -> bool:
    words = m.group("name").split()
    comma = text[m.end("num") : m.end("num") + 1] == ","
    house = "/" in m.group("num") and all(w[0].isupper() for w in words)  # "45/2, Temple Road" (Sri Lanka)
    if comma and m.group(0)[:2].lower() != "no" and not house:
        return False  # "I ran 3, then road cycling": a comma after the number only in "No. 25, Galle Road"
    if not words or any(w.lower().strip(".'") in _NOT_NAME for w in words):
        return False
    suffix = re.match(r"[A-Za-z]+", text[m.end("name") :].lstrip()).group(0)
    return suffix.lower() not in _AMBIGUOUS or all(w[0].isupper() or w[0].isdigit() for w in words)


def address_ru_check(m: re.Match, text: str) -> bool:
    kw, name = m.group("kw"), m.group("name")
    if m.group("flatname") and (m.group("flatname")[0].islower() or re.search(_ENTRANCE, m.group(0), re.I)):
        return _lower_street_with_flat(m)  # an entrance or floor: "Буду 10, 3 этаж" has no street
    if kw is None:
        return True
    words = name.split()
    capitalised = all(w[:1].isupper() or w[:1].isdigit() for w in words[1:])  # "Маршала Жукова"
    if capitalised and (_ABBREVIATED.match(kw) or name[:1].isupper()):
        return True
    after_prep = _AFTER_PREPOSITION.match(kw) is not None
    if not ((_ABBREVIATED.match(kw) or _LOWER_NAME_OK.match(kw) or after_prep) and name[:1].isalpha()):
        return False
    if any(w.lower().strip(".") in _RU_NOT_NAME for w in words):
        return False
    if after_prep and not _street_name_after_preposition(m, text, words):
        return False
    # "бульвар шевченка 4", "ул маршала жукова 7" (typed in lower case), not "шоссе было 5 минут" nor
    # "проспект компании 2024"
    house = re.search(r"\d+", text[m.end("name") : m.end()])
    year = house is not None and len(house.group(0)) == 4 and house.group(0)[:2] in ("19", "20")
    return not year and _word_after(text, m.end()) not in _RU_QUANTITIES


def house_first_check(m: re.Match, text: str) -> bool:
    """ "в доме 5 по улице ленина", not "в доме 25 на улице жарко" nor "в будинку 3 на вулиці стоять
    машини": a capitalised name, or after an abbreviated street word ("по ул. ленина"), is a street;
    a lower-case one must read as a street name (as after "на улице" with the number after it)."""
    kw, name = m.group("kw"), m.group("name")
    if not name[:1].isalpha() or name.lower().strip(".") in _RU_NOT_NAME:
        return False
    if name[:1].isupper() or _ABBREVIATED.match(kw):
        return name.lower() not in _OUTSIDE_WORDS
    return (
        name.lower() not in _OUTSIDE_WORDS
        and not _VERB_OR_ADVERB.search(name)
        and len(name) >= 4
        and _STREET_NAME_END.search(name) is not None
    )


def house_first_en_check(m: re.Match, text: str) -> bool:
    """ "house 12 on Maple Street", not "flat 3 on the way"; an everyday street word ("close", "row")
    only after a capitalised name."""
    words = m.group("name").split()
    if any(w.lower().strip(".'") in _NOT_NAME for w in words):
        return False
    suffix = re.match(r"[A-Za-z]+", text[m.end("name") :].lstrip()).group(0)
    return suffix.lower() not in _AMBIGUOUS or all(w[0].isupper() for w in words)


# full street words that are rarely anything else take a lower-case name too ("бульвар шевченка 4",
# "улица ленина 5", "пр. мира 7"); "на улице" ("на улице жарко 30"), "площадь" (an area) and the rest
# need a capitalised one
_LOWER_NAME_OK = re.compile(
    r"^(?:улица|вулиця|пр\.|бульвар\w*|проспект\w*|переул\w*|провул\w*|шоссе|набережн\w*|микрорайон\w*)$",
    re.I,
)
# "на улице" / "по улице" / "на вулиці" is also "outside": "на улице жара 30" is the weather, "на улице
# ленина 5" an address; the name decides (see _street_name_after_preposition)
_AFTER_PREPOSITION = re.compile(r"^(?:улиц[еуы]|вулиц[іюя])$", re.I)
_OUTSIDE_WORDS = _words(
    "жара жарко холод холодно тепло прохладно мороз минус плюс дождь снег ветер солнце солнечно пасмурно "
    "сыро темно светло дубак духота пекло кошмар ужас жуть капец жесть холодина колотун слякоть туман ливень "
    "гроза сегодня сейчас вчера завтра днем днём ночью утром вечером опять снова где-то примерно почти около "
    "целых аж всего только градусов градуса человек людей машин народу никого много мало ровно уже "
    "спека спекотно мінус холодина сьогодні зараз вчора вдень вночі вранці ввечері знову десь приблизно "
    "майже близько лише тільки людей багато мало нікого градусів"
)
# a verb or an adverb ("стоит", "было", "реально"), not a street name ("ленина", "садовая", "шевченка",
# "грушевського")
_VERB_OR_ADVERB = re.compile(
    r"(?:ть|ти|ся|сь|ет|ит|ют|ят|ут|ло|ли|ал|ил|ел|ув|ав|(?<!енк)(?<![оеь]г)о)$", re.I
)


def _lower_street_with_flat(m: re.Match) -> bool:
    """ "тверская 7 кв 12", not "продажи 3 кв 2024" (a quarter) nor "за 3 кв 12" (a price)."""
    name = m.group("flatname").lower()
    if (
        name in _RU_NOT_NAME
        or name in _OUTSIDE_WORDS
        or name in _RU_QUANTITIES
        or _VERB_OR_ADVERB.search(name)
    ):
        return False
    flat = re.findall(r"\d+", m.group(0))[-1]
    return not (len(flat) == 4 and flat[:2] in ("19", "20"))


def _street_name_after_preposition(m: re.Match, text: str, words: list[str]) -> bool:
    """ "на улице ленина 5", not "на улице жара 30", "на улице стоит 3 машины", "на вулиці +5", "на
    улице народ 100 человек", "на вулиці сніг 20 см".

    A street is named in the genitive ("ленина", "гоголя", "франка", "бандери", "грушевського") or by
    an adjective ("садовая", "тихий"): the last word must end so; the weather, crowds and traffic are
    nouns in the nominative ("сніг", "народ", "очередь"), and a unit after the number gives the rest away.
    """
    if any(w.lower() in _OUTSIDE_WORDS or _VERB_OR_ADVERB.search(w) or len(w) < 4 for w in words):
        return False
    if not _STREET_NAME_END.search(words[-1]):
        return False
    house = text[m.end("name") : m.end()]
    return not re.match(r"\s*[+\-−]", house) and not _UNIT_AFTER.match(text[m.end() :])


_STREET_NAME_END = re.compile(r"(?:а|я|и|і|ї|ый|ий|ой|ого|его|ього|ко|ая|яя|ов|ев|ин)$", re.I)
# what a temperature, a depth, a crowd or a wait is counted in
_UNIT_AFTER = re.compile(
    r"\s*(?:°|%|гр\b|град\w*|см\b|мм\b|м\b|м/с|км\w*|метр\w*|балл?\w*|бал\w*|человек|чел\b|люд\w*|час\w*|"
    r"годин\w*|хв\w*|мин\w*|сек\w*|дн\w*|дня|недел\w*|тиж\w*|раз\w*|шт\w*|процент\w*|тыс\w*|тис\w*|"
    r"руб\w*|грн|гривен\w*|гривень|доллар\w*|евро|машин\w*|авто\w*|танк\w*|лет|років|рок\w*)",
    re.I,
)


_RU_NOT_NAME = _words(
    "на в во и а но с со к ко по за до от из у о об для без при над под про через около было был была были "
    "будет будут есть это этот эта там тут уже ещё еще всего всех всё все всі вже ще було буде був була є це "
    "буду будем будешь будете будемо будеш"
)
_RU_QUANTITIES = _words(
    "мин минут минуты минуту хв хвилин часов часа час год годин км метров метра м раз раза разів лет років "
    "дней дня днів руб рублей рубля грн гривен гривень штук шт процентов %"
)


# a post-office box locates a person as a house number does: "PO Box 1234", "а/я 56", "абонентский ящик 12"
PO_BOX = re.compile(
    r"(?<!\w)(?:p\.?\s?o\.?\s?box|post\s+office\s+box|а/я|абонентск\w+\s+ящик\w*|поштов\w+\s+скриньк\w*)"
    r"\s*[№#]?\s*\d{1,6}(?!\d)",
    re.I,
)


def po_box_hint(low: str) -> bool:
    """Cheap test on lower-cased text (substring tests: this runs on every line with a digit)."""
    return "box" in low or "а/я" in low or "ящик" in low or "скриньк" in low


# what follows "адрес:" / "address:" is an address even without a street word: "адрес: Москва,
# Тверская 7-15", "мой адрес доставки — Київ, Хрещатик 22, кв 5" (a city, then a name and a house)
ADDRESS_AFTER_WORD = re.compile(
    r"(?<!\w)(?:адрес(?:[аеу]|ом|ою)?|address|adres[aeuy]?)(?:\s+(?-i:[а-яёіїєґa-z])[\w'’]+)?(?:\s+(?:is|такой|такий))?"
    r"\s*[:\-—]?\s*(?P<val>(?:(?-i:[А-ЯЁІЇЄҐA-Z])[\w'’\-]+,\s*)?(?-i:[А-ЯЁІЇЄҐA-Z])[\w'’\-]+(?:\s+[\w'’\-]+){0,2}?,?\s+"
    rf"\d{{1,4}}[а-яa-z]?(?:\s*[/\-]\s*\d{{1,4}})?(?![\w.:/]?\d)(?:{_RU_FLAT}|{_EN_UNIT})?)(?!\w)",
    re.I,
)

# where someone lives or has things delivered: "живу на Ленина 5", "живемо на Садовій 3а", "доставка на
# Ленина 5-12": a capitalised name and a house after "live on" / "deliver to" are a street and its house
# ("живу на Кипре 2 года" counts: after_word_check; "доставка по Москве 300" is a price: no "по")
ADDRESS_LIVE_ON = re.compile(
    r"(?<!\w)(?i:живу|живём|живем|живёт|живет|живут|живемо|живе|живуть|проживаю|проживает|мешкаю|мешкає|"
    r"доставк[аиу]|доставкой|доставкою)\s+на\s+"  # "Живу на ...": the verb in any case, the name capitalised
    r"(?P<val>[А-ЯЁІЇЄҐ][а-яёіїєґ'’\-]+(?:\s+[А-ЯЁІЇЄҐ][а-яёіїєґ'’\-]+)?,?\s+"
    rf"\d{{1,3}}[а-я]?(?:\s*[/\-]\s*\d{{1,4}})?(?![\w.:/]?\d|-[а-яёіїє])(?i:{_RU_FLAT})?)(?!\w)"
)
# a month after the number makes it a date ("доставка на Новый Год 31 декабря")
_MONTH_AFTER = re.compile(
    r"января|февраля|марта|апреля|мая|июня|июля|августа|сентября|октября|ноября|декабря|"
    r"січня|лютого|березня|квітня|травня|червня|липня|серпня|вересня|жовтня|листопада|грудня"
)


def live_on_check(m: re.Match, text: str) -> bool:
    """Not a count ("живу на Кипре 2 года") nor a date ("доставка на Новый Год 31 декабря")."""
    return after_word_check(m, text) and not _MONTH_AFTER.fullmatch(_word_after(text, m.end("val")))


def live_on_hint(low: str) -> bool:
    """Cheap test on lower-cased text for a "live on" / "deliver to" word."""
    return "жив" in low or "доставк" in low or "прожива" in low or "мешка" in low


# what a number before them counts: "адрес: Москва, 3 дня назад", "the address is Main Street 5 minutes away"
_COUNTED_RU = re.compile(
    r"(?:раз|раза|дн[яейиі]|день|рік|час\w*|минут\w*|мин|сек\w*|недел\w*|тижн\w*|месяц\w*|місяц\w*|год[а]?|"
    r"лет|рок\w*|км|метр\w*|м|шт|штук\w*|рубл\w*|руб|грн|гривен\w*|гривн\w*|доллар\w*|долар\w*|евро|євро|"
    r"человек\w*|людей|осіб|хвилин\w*|годин\w*|днів|тыс\w*|тис\w*|млн|млрд|милли\w*|мільй\w*|мільярд\w*)$",
    re.I,
)


def after_word_check(m: re.Match, text: str) -> bool:
    """Not a count ("3 дня", "5 minutes"): the word after the number is no unit of time, distance or money."""
    word = _word_after(text, m.end("val"))
    return not word or not (word in _SMALL_OR_COUNT or _COUNTED_RU.match(word))


# a UK postcode after its name: about 15 addresses share one ("my postcode is SW1A 1AA"); a US ZIP
# or a Russian индекс covers thousands and stays
POSTCODE_UK = re.compile(
    r"(?<!\w)(?:post\s?code|postal\s+code)(?:\s+is)?\s*[:\-]?\s*(?P<val>[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2})(?!\w)",
    re.I,
)

# a whole UK postcode in capitals anywhere ("John Smith / 23 Oak Road / Leeds / LS6 2AB" over lines):
# its area is one of the 124 postcode areas, its inward part a digit and two of the 20 letters used
_UK_AREAS = (
    "AB|AL|B|BA|BB|BD|BH|BL|BN|BR|BS|BT|CA|CB|CF|CH|CM|CO|CR|CT|CV|CW|DA|DD|DE|DG|DH|DL|DN|DT|DY|E|"
    "EC|EH|EN|EX|FK|FY|G|GL|GU|GY|HA|HD|HG|HP|HR|HS|HU|HX|IG|IM|IP|IV|JE|KA|KT|KW|KY|L|LA|LD|LE|LL|"
    "LN|LS|LU|M|ME|MK|ML|N|NE|NG|NN|NP|NR|NW|OL|OX|PA|PE|PH|PL|PO|PR|RG|RH|RM|S|SA|SE|SG|SK|SL|SM|SN|"
    "SO|SP|SR|SS|ST|SW|SY|TA|TD|TF|TN|TQ|TR|TS|TW|UB|W|WA|WC|WD|WF|WN|WR|WS|WV|YO|ZE"
)
POSTCODE_UK_WHOLE = re.compile(
    rf"(?=[A-Z]{{1,2}}\d)(?<![\w+])(?:{_UK_AREAS})\d[A-Z\d]? \d[ABD-HJLNP-UW-Z]{{2}}(?![\w+])"
)

# "Horodotska St 12", "Main Street 5, apt 3": a capitalised name, a street word, then the number
_EN_STREET_FIRST = r"street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr"
_DE_STREET = r"stra(?:ß|ss)e|str\.|gasse|allee|platz|damm|ufer|chaussee"
ADDRESS_STREET_FIRST = re.compile(
    rf"(?<![\w.])(?P<name>(?-i:[A-ZÄÖÜ])[A-Za-zÄÖÜäöüß'’\-]+(?:\s+(?-i:[A-Z])[A-Za-z'’\-]+){{0,2}})"
    rf"(?:\s+(?:{_EN_STREET_FIRST})\.?|(?<=[a-zäöü])(?:{_DE_STREET})|\s+(?-i:[A-ZÄÖÜ])[a-zäöü]*(?:{_DE_STREET}))"
    r",?\s+(?P<num>\d{1,4}[A-Za-z]?(?:\s*[/\-]\s*\d{1,4}[a-z]?)?)(?![\w.,:/\-]?\d)"
    rf"{_EN_UNIT}?(?:,?\s+\d{{5}}\s+(?-i:[A-ZÄÖÜ])[\wäöü\-]+)?",
    re.I,
)
STREET_FIRST_HINT = re.compile(rf"(?:\s(?:{_EN_STREET_FIRST})\.?|{_DE_STREET}),?\s+\d")  # on lower-cased text


def street_first_check(m: re.Match, text: str) -> bool:
    """Not "Main Street 5 minutes away" nor "Broad St 10 times": the number is not a quantity."""
    return _word_after(text, m.end("num")) not in _SMALL_OR_COUNT


# the Russian and Ukrainian forms typed in Latin letters (translit): "vul. Shevchenka 12, kv. 5", "ul. Lenina 5
# kv 12", "prospekt Mira 15"; a short abbreviation that is also an English word ("per", "pl", "bul", "prov")
# only with its dot
_TR_STREET = (
    r"ul\.?|ulits[aey]\w*|ulic[aey]\w*|vul\.?|vulyts\w*|vulits\w*|prospekt\w*|prosp\.?|pr-t\.?|pereul\w*|"
    r"per\.|bulvar\w*|bul\.|ploshch\w*|pl\.|naberezhn\w*|shosse|mkr\.?|mikrorayon\w*|provul\w*|prov\."
)
_TR_FLAT = r"(?:,?\s*(?:kv|kvartira|kvartyra|of)\.?\s*\d{1,4})"
ADDRESS_TRANSLIT = re.compile(
    rf"(?<![\w.])(?:{_TR_STREET})(?:(?<=\.)|(?!\w))\s*(?P<name>[A-Za-z][\w'’\-]*(?:\s+[A-Za-z][\w'’\-]*){{0,2}}?),?\s*"
    rf"(?:(?:d|dom|bud)\.?\s*)?(?P<num>\d{{1,4}}[a-z]?(?:/\d{{1,3}})?(?:-\d{{1,4}})?){_TR_FLAT}?(?![\w/])"
    # "Horodotska 45 kv 12": a capitalised name, a house and a flat
    rf"|(?<![\w.])(?P<flatname>(?-i:[A-Z])[a-z'’\-]+),?\s+\d{{1,4}}[a-z]?(?:/\d{{1,3}})?{_TR_FLAT}(?!\w)",
    re.I,
)
_COUNTED_TRANSLIT = _words("minut minuty min raz raza km chasov chasa dney")
TR_HINT = re.compile(rf"(?<![a-z])(?:{_TR_STREET}|kv\.?\s?\d)")  # on lower-cased text


def translit_hint(low: str) -> bool:
    """Cheap test on lower-cased text: substring tests (most Cyrillic lines have none), then TR_HINT."""
    cheap = ("ul", "pros", "pr-t", "per.", "pl", "nab", "shosse", "mk", "mikro", "kv", "prov.")
    return any(w in low for w in cheap) and TR_HINT.search(low) is not None


def translit_check(m: re.Match, text: str) -> bool:
    """A street name, not "ul 5 minutes" or "per day 5": no English small word in the name, no count after it."""
    name = m.group("name") or m.group("flatname")
    if any(w.lower().strip(".'") in _SMALL_OR_COUNT for w in name.split()):
        return False
    word = _word_after(text, m.end())
    return not (word in _QUANTITIES or word in _COUNTED_TRANSLIT or _COUNTED_RU.match(word))


_QUANTITIES = _words(
    "min mins minutes secs seconds hrs hours km kms m meters metres mins times x euros dollars"
)
_SMALL_OR_COUNT = _NOT_NAME | _QUANTITIES  # a sentence's word or a count, not a street's

# "50.450123, 30.523456", "lat 50.4501 lon 30.5234", "50.4501° N, 30.5234° E" (a map link stays whole:
# like its path words, its place is what the owner chose to share, usually a public one)
COORDS = re.compile(
    r"(?<![\w.\-])(?P<lat>-?\d{1,2}\.\d{3,})°?(?:\s*[NSns](?!\w))?"
    r"(?:\s*(?:,|;|%2C)\s*(?:(?:lon|lng|long|longitude)\s*[:=]?\s*)?|\s+(?:lon|lng|long|longitude)\s*[:=]?\s*|(?P<sp>\s+))"
    r"(?P<lon>-?\d{1,3}\.\d{3,})°?(?:\s*[EWew](?!\w))?(?![\w.]\d)"
)


def coords_check(m: re.Match, text: str) -> bool:
    """On the globe, and marked as a place: °, N/E, "lat"/"lon", or the 5+ decimals a phone's GPS
    gives ("score 2.500, 1.250" and "3.1415, 2.7182" are not places)."""
    if abs(float(m.group("lat"))) > 90 or abs(float(m.group("lon"))) > 180:
        return False
    marked = (
        re.search(r"[°NSEWnsew]|lon|lng", m.group(0))
        or "lat" in text[max(0, m.start() - 10) : m.start()].lower()
    )
    decimals = min(len(m.group(k).split(".")[1]) for k in ("lat", "lon"))
    # 4 decimals (11 m: a house) after a word that names the place as one's own or as a location
    placed = (
        decimals >= 4 and _PLACE_WORD.search(text[max(0, m.start() - 40) : m.start()].lower()) is not None
    )
    if m.group("sp"):  # "55.7558 37.6173": only so named
        return placed
    return bool(marked or decimals >= 5 or placed)


# words that make a pair of 4-decimal numbers a place: home, location, "I'm here", coordinates, geo/gps
_PLACE_WORD = re.compile(
    r"(?<!\w)(?:home|house|my\s+place|location|coords?|coordinates|gps|geo|here|i'?m\s+here|here\s+i\s+am|"
    r"дом|дома|домой|хата|локаци\w*|геолокаци\w*|геопозици\w*|координат\w*|я\s+(?:тут|здесь)|"
    r"будинок|вдома|додому|локаці\w*|геолокаці\w*|геопозиці\w*|я\s+тут)"
    # right before the numbers: "home: ", "home is at ", "координаты "
    r"(?:\s+(?:is|это|це))?(?:\s+(?:at|на))?\s*[:=\-—]?\s*$"
)

# degrees, minutes and seconds, as Google Maps copies them: 54°41'14.0"N 25°16'47.0"E (a house, to the
# second: 30 m)
COORDS_DMS = re.compile(
    r"(?<!\d)\d{1,2}°\s?\d{1,2}['′’]\s?\d{1,2}(?:[.,]\d+)?(?:[\"″”]|'')\s?[NSСЮ]"
    r"[\s,;]*\d{1,3}°\s?\d{1,2}['′’]\s?\d{1,2}(?:[.,]\d+)?(?:[\"″”]|'')\s?[EWВЗ](?!\w)"
)
