"""Detectors for secrets: API keys and tokens, passwords, PINs and one-time codes, wallet seed phrases,
and the secret in an answer to a question asking for one (:func:`asked_secret`, :func:`answer_span`).
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# --- keys and tokens --------------------------------------------------------------------------
_KEY_PATTERNS = [
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
    r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",  # JWT
    r"\bsk-(?:proj-|ant-(?:api\d\d-)?)?[A-Za-z0-9_\-]{20,}",  # OpenAI / Anthropic
    r"\b(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{16,}",  # Stripe
    r"\bgh[pousr]_[A-Za-z0-9]{30,}",
    r"\bgithub_pat_[A-Za-z0-9_]{40,}",
    r"\bglpat-[A-Za-z0-9_\-]{20,}",
    r"\bxox[abposr]-[A-Za-z0-9\-]{10,}",
    r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b",
    r"\bAIza[0-9A-Za-z_\-]{35}",
    r"\bhf_[A-Za-z0-9]{30,}",
    r"\bnpm_[A-Za-z0-9]{36}",
    r"\bpypi-[A-Za-z0-9_\-]{40,}",
    r"\bSG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}",
    r"\bya29\.[A-Za-z0-9_\-]{20,}",
    r"\b\d{8,10}:AA[A-Za-z0-9_\-]{30,}",  # Telegram bot token
    r"\b(?:y0_|t1\.)[A-Za-z0-9_\-]{30,}",  # Yandex OAuth
]
KEYS = re.compile("|".join(f"(?:{p})" for p in _KEY_PATTERNS))
# cheap substring tests that gate the expensive patterns (a plain `in` is ~20x faster than a regex)
KEY_HINTS = (
    "eyJ", "sk-", "sk_", "pk_", "rk_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "xox",
    "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "AIza", "hf_", "npm_", "pypi-", "SG.", "ya29.", ":AA", "y0_", "t1.",
    "-----BEGIN",
)  # fmt: skip
LONG_TOKEN = re.compile(r"(?<![\w/+=\-])[A-Za-z0-9_+/=\-]{24,}(?![\w/+=\-])")
_HASH_WORD = re.compile(
    r"(?:commit|sha\w*|hash|checksum|md5|digest|revision|rev|коммит\w*|хеш\w*|хэш\w*)\W*$", re.I
)


def shannon_bits(s: str) -> float:
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def looks_random(tok: str) -> bool:
    """A long token that is a key, not a word, a path, a number or a commit hash."""
    core = tok.strip("=-_/+")
    if len(core) < 24 or core.isdigit() or core.isalpha():
        return False
    if not (any(c.isdigit() for c in core) and any(c.isalpha() for c in core)):
        return False
    if len(core) == 40 and re.fullmatch(r"[0-9a-f]{40}", core):
        return False  # a git commit (SHA-1): public, not a secret
    # a path or a slug made of words ("my-long-file-name-2024") is not a key
    if re.fullmatch(r"[a-z0-9]+(?:[\-_/][a-z0-9]+)+", core) and max(map(len, re.split(r"[\-_/]", core))) < 16:
        return False
    return shannon_bits(core) >= 3.2


def long_token_check(m: re.Match, text: str) -> bool:
    if not looks_random(m.group(0)):
        return False
    hexy = re.fullmatch(r"[0-9a-fA-F]+", m.group(0)) is not None
    return not (hexy and _HASH_WORD.search(text[max(0, m.start() - 16) : m.start()]))


# --- keyword-introduced passwords and codes (EN + RU + UK, and transliterated) ----------------
# Sinhala: මුරපදය (password), පාස්වර්ඩ් (the English word); Ukrainian гасло
_PW_WORD = (
    r"(?:password|passwd|passcode|passphrase|pass|pwd|pw|парол(?:ьчик\w*|[ьяюеі]м?)|пасс|пас+ворд|гасло|"
    r"parol[ьj']?|porol|මුරපදය|මුරපදේ|පාස්වර්ඩ්|கடவுச்\s?சொல்(?:லை|லு)?|பாஸ்வேர்ட்)"  # Tamil: password
)
_CODE_WORD = (
    r"(?:pin(?:\s*code)?|pincode|otp|cvv2?|cvc2?|one[\s\-]time\s+code|verification\s+code|"
    r"confirmation\s+code|security\s+code|sms\s+code|door\s+code|gate\s+code|code|"
    r"п[иі]н(?:[\s\-]?код)?|код(?:а|ом|у)?|cvv-код|කේතය|කෝඩ්|පින්|домофон\w*|intercom|buzzer|"
    r"(?:otp\s+|ரகசிய\s+)?குறியீடு(?:\s+எண்)?|பின்\s+(?:எண்|நம்பர்)|"
    r"puk2?(?:[\s\-]?(?:code|код))?|пук[\s\-]?код|"  # a SIM's unblocking code  # Tamil: (OTP, secret) code, PIN number
    r"(?:lock|padlock|locker|safe)\s+(?:combo|combination)|combination\s+lock|combo\s+lock)"  # a lock's numbers
)
# a few words may sit between the keyword and the value: "password for wifi is", "код из смс:"
_FILLER = (
    r"(?:\s+(?:(?:for|to|from|of|on|at|от|для|на|к|из|в|від|до|з|із|ot|dlya|na|do)\s+"
    r"(?:(?:the|my|your|our|his|her|this)\s+)?[\w.\-]{1,30}|my|the|"  # "the pin for the safe is 4821"
    r"wifi|wi-fi|account|router|email|mail|bank|phone|sms|is|was|will\s+be|мой|моя|мій|вайфая|вайфай|"
    r"вайфаю|почты|пошти|банка|карты|картки|смс|домофона|подъезда|під'їзду|сейфа|приложения|входа|"
    r"подтверждения|підтвердження|доступу|доступа|це|это|будет|буде|такой|такое|такий|таке|же|ж|same|как|як|as|"
    r"eka|එක|අංකය)){0,5}"  # "пароль такой же как от вк: ...", "the password is the same as for netflix: ..."  # Sinhala "the" (eka) and "number": "password eka ...", "OTP අංකය ..."
)
_SEP = r"(?:\s*(?:[:=]|-|—|–|is|это|це|будет|буде)\s*|\s+)"
PASSWORD = re.compile(
    rf"(?<!\w)(?P<kw>{_PW_WORD}){_FILLER}(?P<sep>{_SEP})[\"'«“]?(?P<val>[^\s\"'»”]{{3,64}})",
    re.I | re.UNICODE,
)
# a short token after "api key:", "key:", "token =", "ключ апи:" (long or prefixed ones are caught above)
TOKEN_KW = re.compile(
    r"(?<!\w)(?P<kw>(?:api|access|secret|private|license|licence|product|activation|wifi|wi-fi|app)[\s_\-]?key|"
    r"api[\s_\-]?secret|secret(?:[\s_\-]?key)?|token|key|апи[\s\-]?ключ|"
    r"ключ(?:\s+(?:api|апи|доступ[ау]|активации|активації|ліцензії|лицензии|от\s+\w+|від\s+\w+))?|"
    r"токен|секрет|bearer)"
    rf"(?:{_FILLER}|\s+\w{{1,12}})\s*(?P<sep>[:=]|-|—|–|is|это|це)?\s*[\"'«“]?(?P<val>[A-Za-z0-9_\-+/=.]{{8,}})",
    re.I,
)
# a login and its password after a slash: "netflix login anna@mail.com / Anna1990!", "логин ivan85/qwe123"
LOGIN_PAIR = re.compile(
    r"(?<!\w)(?:login|логин|логін|username|user\s?name|creds|credentials|уч[её]тк\w*|облікові\s+дані)"
    r"\s*[:\-]?\s*\S+?\s*/\s*[\"'«“]?(?P<val>[^\s\"'»”/]{4,64})",
    re.I,
)


def login_pair_check(m: re.Match, _text: str) -> bool:
    """The part after the slash holds letters and a digit or a symbol, as passwords do ("login / signup" stays)."""
    val = m.group("val").rstrip(VAL_TRAIL)
    if val.startswith("[") or val.endswith("?") or "://" in val:
        return False
    return any(c.isalpha() for c in val) and any(c.isdigit() or not c.isalnum() for c in val)


# an entry-phone code is the flat, a key letter or sign, the code: "45к1234", "45#1234", "12B3456"
_DIGITS_VALUE = r"\d{1,4}[кКkKвВbB#*]\d{3,6}|\d(?:[ \-]\d){3,7}|\d{2,4}(?:[ \-]\d{2,4}){1,3}|\d{3,8}"
# the code first, as services send it: "482193 is your WhatsApp code", "G-482193 is your Google
# verification code", "4821 — ваш код для входа"
CODE_FIRST = re.compile(
    r"(?<!\w)(?:G-)?(?P<val>\d{4,8})\s*(?:is\s+your|[—–\-:]?\s*(?:ваш|твой|твій|це\s+ваш))\s+"
    r"(?:[\w\-]+\s+){0,3}?(?:code|pin|otp|passcode|код\w*|пароль)(?!\w|\s+(?:review|ревью|style|стайл))",
    re.I,
)
CODE = re.compile(
    rf"(?<!\w){_CODE_WORD}{_FILLER}{_SEP}[\"'«“]?[*#]?(?P<val>{_DIGITS_VALUE})[#*]?(?![\d:.,/]\d|\w)",
    re.I | re.UNICODE,
)
# "Use 482193 to verify your account", "Введите 4821 для входа": a code with what it is for
CODE_USE = re.compile(
    r"(?<!\w)(?:use|enter|введите|введи|введіть|используйте|використайте)\s+(?:(?:the\s+)?(?:code|код)\s+)?"
    r"(?P<val>\d{4,8})\s+(?:to\s+(?:verify|log\s*in|sign\s*in|confirm|reset|complete|access)|"
    r"for\s+(?:verification|login|sign)|для\s+(?:входа|подтверждения|верификации)|"
    r"щоб\s+(?:увійти|підтвердити)|чтобы\s+(?:войти|подтвердить))",
    re.I,
)
CODE_USE_HINT = re.compile(r"use |enter |введ|использ|використ")  # on lower-cased text
# the Wi-Fi QR code's text: "WIFI:S:HomeNet;T:WPA;P:Sup3rS3cret;;" (P: is the password; "\;" escapes a ";")
WIFI_QR = re.compile(r"WIFI:(?:[^;]*;)*?P:(?P<val>(?:\\.|[^;\\])+)", re.I)
VAL_TRAIL = ".,;:)]}»\"'”"
_TIME = re.compile(r"\d{1,2}[:.]\d{2}(?::\d{2})?")
# values that are ordinary words, not secrets: "the password is wrong", "пароль не подходит"
_NOT_A_PASSWORD = _words(
    "is was the a an my your his her our their this that it wrong correct right incorrect same new old "
    "changed reset expired protected required forgotten again too here there below above please ok okay "
    "не неверный верный правильный неправильный новый старый тот же такой этот мой твой его её от для "
    "сменил сменила поменял поменяла забыл забыла сбросил подходит не підходить новий старий змінив "
    "забув забула від"
)
# "the password is <word>": words that describe a password rather than being one
_NOT_AFTER_IS = _words(
    "on in at not still also just empty blank easy simple short long weak strong saved stored written "
    "somewhere invalid valid fine good bad secret private set needed missing taped attached public shared "
    "different useless hard complicated enabled disabled off locked unknown closed open valid printed "
    "mine yours what where which why case-sensitive sensitive lost gone long-ish ready done"
)
# what the password or code opens, with a determiner: "for the safe", "to my laptop"
_WHOSE = re.compile(r"\s(?:for|to|from|of|on|at)\s+(?:the|my|your|our|his|her|this)\s", re.I)
_PW_BEFORE_PASS = re.compile(r"(?:^|\W)(?:the|my|your|our|his|her|wifi|wi-fi)\s+$", re.I)
_COPULA_END = re.compile(r"(?:(?<!\w)(?:is|это|це|будет))\s*[\"'«“]?$", re.I)
CYRILLIC = re.compile(r"[а-яёіїєґ]", re.I)
# Russian / Ukrainian words that describe or answer, not a password: adjectives, verbs, pronouns
_CYR_NOT_VALUE = re.compile(
    r"(?:ый|ий|ой|ая|яя|ое|ее|ые|ие|ть|ти|ся|сь|ла|ли|ло|ал|ил|ел|ув|юсь|ешь|ет|ит|ют|ят|ує|ою|ею|ам|ом)$",
    re.I,
)


def token_check(m: re.Match, text: str) -> bool:
    val = m.group("val").rstrip(VAL_TRAIL)
    sep = m.group("sep")
    if m.group("kw").lower() == "key" and sep not in (":", "="):
        return False  # "the key is 2024 growth": only "key: ..." / "key = ..." is a key
    if sep is None and m.group("kw").lower() != "bearer":  # "Bearer <token>", as an HTTP header has it
        # "токен бота 7h3K9d0Qm2": no separator, so only a value that reads as random
        return (
            any(c.isdigit() for c in val) and any(c.islower() for c in val) and any(c.isupper() for c in val)
        )
    return any(c.isdigit() for c in val) and any(c.isalpha() for c in val)


# what code is counted in: "the code is 2024 lines long" is a size, not a PIN
_CODE_UNITS = _words(
    "lines line loc rows bytes kb mb ms seconds sec stars commits files tests edition version "
    "строк строки строчек рядків "
    "байт коммитов файлов тестов"
)


def code_check(m: re.Match, text: str) -> bool:
    after = text[m.end() :].split(maxsplit=1)
    if after and after[0].lower().strip(".,!?") in _CODE_UNITS:
        return False
    n = sum(c.isdigit() for c in m.group("val"))
    # three digits are a CVV only after "cvv"/"cvc"; elsewhere they are an HTTP status, a room...
    return 4 <= n <= 8 or (n == 3 and m.group(0)[:3].lower() in ("cvv", "cvc"))


# a word in Sinhala or Tamil script (letters, vowel signs, joiners)
_SI_TA_WORD = re.compile(r"[\u0b80-\u0bff\u0d80-\u0dff\u200c\u200d]+")


def password_check(m: re.Match, text: str) -> bool:
    val = m.group("val").rstrip(VAL_TRAIL)
    if len(val) < 3 or val.lower() in _NOT_A_PASSWORD or val.startswith("[") or _TIME.fullmatch(val):
        return False  # a word, a placeholder already, or a time ("boarding pass: 10:30")
    sep = m.group("sep").strip()
    if val.endswith("?") or (sep not in (":", "=") and val.lower() in _NOT_AFTER_IS):
        return False  # "the password for the wifi?", "the password is case-sensitive"
    if m.group("kw").lower() == "pass" and _WHOSE.search(text[m.end("kw") : m.start("val")]):
        return False  # "the pass for the gym is 3000 a month": a season ticket
    if CYRILLIC.search(val) and val.isalpha():
        return _cyrillic_word_password(m, text, val)
    if _SI_TA_WORD.fullmatch(val):
        return False  # "මුරපදය: අමතකයි", "கடவுச்சொல் மறந்துவிட்டேன்": the sentence goes on (passwords are typed in Latin)
    if sep in (":", "=", "-", "—", "–"):
        return True
    if re.search(r"\d|[^\w]", val) or (val != val.lower() and val != val.capitalize()):
        return True  # "my password is hunter2": a digit, a symbol or mixed case
    return _plain_word_password(m, text, val)


def _cyrillic_word_password(m: re.Match, text: str, val: str) -> bool:
    """ "пароль от вайфая ромашка": one Cyrillic word after the keyword and what it opens, ending the line."""
    rest = text[m.end() :]
    if re.match(r"\s*[\wа-яё]", rest, re.I) or _CYR_NOT_VALUE.search(val):
        return False  # "пароль: спроси у админа", "пароль простой" go on as a sentence or describe
    between = text[m.end("kw") : m.start("sep")]
    return m.group("sep").strip() in (":", "=", "-", "—", "–") or bool(between.strip())


def _plain_word_password(m: re.Match, text: str, val: str) -> bool:
    """A password that reads like a word: "пароль qwerty", "my password is sunshine"."""
    kw = m.group("kw").lower()
    if CYRILLIC.search(kw):
        return val.isascii()  # a Russian sentence goes on in Cyrillic; a Latin word is typed as the password
    if kw.startswith(("parol", "porol")):
        return True  # a transliterated keyword is followed by the password, not by English prose
    if not _COPULA_END.search(text[m.start() : m.start("val")]) or re.search(r"..(?:ed|ing)$", val):
        return False  # "the password is on the note", "the password is banned", "... is working"
    if _WHOSE.search(text[m.end("kw") : m.start("val")]):
        return False  # "the password to my heart is chocolate": a word after "for/to the X is" is prose
    # "pass" alone is also a mountain pass or a boarding pass: only "the/my/wifi pass is ..."
    return kw != "pass" or _PW_BEFORE_PASS.search(text[max(0, m.start() - 12) : m.start()]) is not None


# --- wallet seed phrases (BIP39) --------------------------------------------------------------
_SEED_LABEL = re.compile(
    r"(?:seed|mnemonic|recovery|backup|secret)\s*(?:phrase|words?)?|"
    r"сид\w*|мнемони\w*|фраз\w*\s+(?:восстановления|відновлення)|секретн\w+\s+фраз\w*",
    re.I,
)
# BIP39 words that ordinary English sentences use a lot: a run made mostly of them is prose
_SEED_COMMON = _words(
    "about above all also any around away because before below between both can come day disagree door "
    "early either else end enough even ever every fall family few find first find follow for found "
    "give good great have here hold home hour just kind know later like little live long make many "
    "may more most much must never next night now number off often once only open other over own "
    "people place please real right same say see seek select shoot should since slow some soon "
    "still such sure take tell then there they thing this time today together tomorrow too top "
    "toward try two under until upon very wait want way what when where which while why wish will "
    "with word work world worth wrong year you young"
)
_LATIN_WORD = re.compile(r"(?<![^\W\d_])[A-Za-z]{3,8}(?![^\W\d_])")
_SEED_WORD = re.compile(r"(?:\d{1,2}[.):]\s*)?([A-Za-z]{3,8})[,;.!]?")


@functools.cache
def _bip39():
    """The English BIP39 word list and checker of the ``mnemonic`` package (trezor's reference code)."""
    from mnemonic import Mnemonic

    m = Mnemonic("english")
    return frozenset(m.wordlist), m


def seed_spans(text: str) -> list[tuple[int, int]]:
    """Runs of 12+ BIP39 words (numbered or not): a valid checksum, a label before, or random words."""
    words, m = _bip39()
    latin = _LATIN_WORD.findall(text)
    if len(latin) < 12 or sum(w.lower() in words for w in latin) < 12:
        return []  # the common case: too few Latin words, or too few of them on the list
    spans, run = [], []
    for tok in re.finditer(r"\S+", text):
        w = _SEED_WORD.fullmatch(tok.group(0))
        if w and w.group(1).lower() in words:
            run.append((tok.start(), tok.end(), w.group(1).lower()))
            continue
        if not re.fullmatch(r"\d{1,2}[.):]?", tok.group(0)):  # a bare "1." between words keeps the run
            _close_run(run, text, spans, m)
            run = []
    _close_run(run, text, spans, m)
    return spans


def _close_run(run: list, text: str, spans: list, mnemo) -> None:
    if len(run) < 12:
        return
    ws = [w for _, _, w in run]
    labelled = _SEED_LABEL.search(text[max(0, run[0][0] - 40) : run[0][0]]) is not None
    checksum = len(ws) in (12, 15, 18, 21, 24) and mnemo.check(" ".join(ws))
    prose = sum(w in _SEED_COMMON for w in ws) > len(ws) // 4
    if labelled or checksum or not prose:
        end = run[-1][1]
        while end > run[0][0] and not text[end - 1].isalpha():
            end -= 1
        spans.append((run[0][0], end))


def seed_hint(text: str, spaces: int | None = None) -> bool:
    """Cheap test: enough words for a seed phrase (``spaces``: ``text.count(" ")`` if the caller has it)."""
    n = (text.count(" ") if spaces is None else spaces) + text.count("\n")
    # words joined by no-break spaces (12 of the list's words take 47+ characters)
    return n >= 11 or (len(text) > 46 and "\xa0" in text and n + text.count("\xa0") >= 11)


# --- the answer in the next message -------------------------------------------------------------
# a message asking for a secret: a keyword of the kind, and a question mark, a colon or a request
_ASK_KIND = (
    ("CODE", re.compile(r"(?<!\w)(?:pin|pincode|otp|code|cvv|cvc|код\w*|п[иі]н\w*|cvv-код)(?!\w)", re.I)),
    (
        "PASSWORD",
        re.compile(
            r"(?<!\w)(?:password|passwd|passcode|passphrase|pwd|парол\w*|пассворд|parol\w*|"
            r"(?:wifi|wi-fi|the|your|ur)\s+pass)(?!\w)",
            re.I,
        ),
    ),
    # "low key" / "low-key" is slang ("low key, how are you?"), not a key being asked for
    (
        "SECRET",
        re.compile(
            r"(?<!\w)(?:api[\s_\-]?key|(?<!low )(?<!low-)key|token|secret|ключ\w*|токен\w*)(?!\w)", re.I
        ),
    ),
)
_ASK_GATE = re.compile(r"pin|code|otp|cvv|cvc|pass|pwd|key|token|secret|код|пин|пін|парол|ключ|токен|parol")
_ASKING = re.compile(
    r"[?:]\s*\W{0,3}$|(?<!\w)(?:what'?s|whats|what\s+(?:is|was|were|are)|which|send|give|tell|share|need|"
    r"remind|скинь|кинь|пришли|дай|напиши|скажи|продиктуй|какой|какая|нужен|нужна|надішли|який|яка|"
    r"потрібен|підкажи|нагадай|напомни)(?!\w)",
    re.I,
)
_HANDLE = re.compile(r"@[A-Za-z]\w{4,31}")
_ANSWER = re.compile(
    r"^(?:(?:it'?s|it\s+is|это|вот|держи|here|ось|це|тримай)\s*:?\s+)?[\"'«“]?"
    r"(?P<val>[*#]?(?:\d(?:[ \-]\d){1,7}|\d{2,4}(?:[ \-]\d{2,4}){1,3})[#*]?|[^\s\"'»”]{1,64})[\"'»”]?$",
    re.I,
)
# one-word replies that are not the value asked for; a reply like this keeps the question in view
HOLD = _words(
    "sec wait hold moment minute checking looking lemme sek секунду секу сек щас ща сейчас погоди "
    "подожди момент минуту минутку гляну смотрю зараз почекай хвилинку"
)
REPLIES = HOLD | _words(
    "ok okay k kk yes yeah yep yup no nope nah sure idk dunno forgot later why what huh hmm lol thanks "
    "thx ty sorry same nothing never none again done sent here there tomorrow today soon asap "
    "да нет ок окей ага угу неа забыл забыла потом позже завтра сегодня зачем почему что кто "
    "спасибо сорян никак никакой такой maybe probably definitely obviously nevermind nvm whatever right "
    "correct exactly true something everything hi hello hey bye please pls thank you "
    "так ні добре дякую забув забула не знаю хз незнаю потім завтра стандартный старый прежний тот "
    "обычный такий звичайний старий"
)
_MULTI_STOP = _words(
    "it it's its is with a an the i my me you your forgot don't dont know wait no not and or but on in "
    "at for to of ask check later was will be"
)
PART_OF_CODE = re.compile(r"^[*#]?\d{1,3}[#*]?$")


def asked_secret(text: str, scrubbed: str) -> str | None:
    """The placeholder type a message asks for ("what's the wifi password?" -> PASSWORD), else None.

    A message that already carried a value of that type (``scrubbed`` holds its placeholder) asks nothing.
    """
    if _ASK_GATE.search(text.lower()) is None or not _ASKING.search(text):
        return None  # the substring test first: most messages name no secret at all
    for kind, pattern in _ASK_KIND:
        if pattern.search(text):
            return None if f"[{kind}]" in scrubbed else kind
    return None


def answer_span(text: str, kind: str) -> tuple[int, int] | None:
    """Where the value of ``kind`` is in a short answer (``pelican7``, ``it's 4821``), else None."""
    stripped = text.strip()
    lead = len(text) - len(text.lstrip())
    m = _ANSWER.match(stripped)
    if m is None:
        return _multi_word_password(stripped, lead) if kind == "PASSWORD" else None
    val = m.group("val")
    span = (lead + m.start("val"), lead + m.end("val"))
    if val.lower().rstrip(".!…") in REPLIES or val.endswith("?") or _TIME.fullmatch(val) or "://" in val:
        return None
    if not any(c.isalnum() for c in val):
        return None  # an emoji
    if kind == "CODE":  # "0482." ends a sentence; a password may end with "!" or "."
        val = val.rstrip(".!")
        span = (span[0], span[0] + len(val))
        n = sum(c.isdigit() for c in val)
        # digits, spaced or not, with "#"/"*" or one letter around them ("7719#", "К1234")
        return span if re.fullmatch(r"[*#]?[^\W\d_]?[\d \-]+[^\W\d_]?[#*]?", val) and 1 <= n <= 8 else None
    if CYRILLIC.search(val) and not any(c.isdigit() for c in val):
        # a Russian/Ukrainian word is a password only as the whole answer to a password question
        ok = kind == "PASSWORD" and val.isalpha() and len(val) >= 4 and not _CYR_NOT_VALUE.search(val)
        return span if ok and val == stripped.strip("\"'«»“”") else None
    if kind == "SECRET":  # a Telegram @username is a handle, which stays (as it does anywhere else)
        ok = (
            len(val) >= 8
            and re.search(r"\d", val)
            and re.search(r"[A-Za-z]", val)
            and not _HANDLE.fullmatch(val)
        )
        return span if ok else None
    return span if len(val) >= 3 else None


def _multi_word_password(text: str, lead: int) -> tuple[int, int] | None:
    """ "Pelican Brief 7": a few words with a digit and none of a sentence's little words."""
    words = text.split()
    if not 2 <= len(words) <= 4 or not any(c.isdigit() for c in text) or text.endswith("?"):
        return None
    if any(w.lower().strip(".,!'\"") in _MULTI_STOP for w in words) or CYRILLIC.search(text):
        return None
    return (lead, lead + len(text))
