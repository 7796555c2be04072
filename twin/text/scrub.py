"""PII scrubbing: each hit becomes a typed placeholder before any other code sees the text.

Placeholders (and the ``pii`` keys in ``stats.json``):

========== =================================================================================
``[URL]``      the credentials in a URL (``user:pass@``) and the value of a token-like query parameter;
               the scheme, host and every other part of a link stay (see :meth:`Scrubber._scrub_url`)
``[SECRET]``   API keys and tokens: known prefixes (``sk-``, ``ghp_``, ``xoxb-``, ``AKIA``, ``AIza``,
               ``glpat-``, ``hf_``, Telegram bot tokens, ...), JWTs, private-key blocks, long
               high-entropy strings (24+ characters mixing letters and digits), and short
               letter-and-digit values after "api key:", "token =", "ключ:", "токен:"
``[EMAIL]``    e-mail addresses
``[CARD]``     payment card numbers, 13-19 digits, Luhn-checked
``[IBAN]``     IBANs, mod-97 checksum
``[IP]``       IPv4 / IPv6 addresses, validated with :mod:`ipaddress`
``[PHONE]``    phone numbers: international (``+``) anywhere, national forms for the default
               region(s), matched by ``phonenumbers`` (a number must be valid, not just look like one)
``[PASSWORD]`` what follows "password", "pass", "pwd", "пароль", ... and a separator; a plain word only
               as "пароль qwerty" or "my password is sunshine" (see :func:`_plain_word_password`)
``[CODE]``     PINs and one-time codes: 4-8 digits or 3+3 digits (``482-913``, ``482 913``) after
               "pin", "code", "otp", "код", "пин", ... (3 digits only after "cvv"/"cvc": elsewhere that
               is an HTTP status or a room)
``[CRYPTO]``   crypto wallet addresses: Ethereum ``0x`` + 40 hex digits; Bitcoin base58 (``1...``,
               ``3...``, checksum verified) and bech32 / bech32m (``bc1...``, checksum verified)
========== =================================================================================

:func:`scrub_messages` scrubs consecutive messages with the previous one in view: a short answer
right after a question about a password, code, PIN or key is that secret.

Times, dates, prices, version numbers and order numbers are left alone. Speed matters (a million
messages in well under a minute), so each detector runs only when a cheap test says it could hit:
``@`` for e-mails, ``://`` for URLs, a run of 7+ digits for cards / IBANs / phones, and so on.
Values are never logged; :class:`Scrubber` only counts hits per type.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

TYPES = ("URL", "SECRET", "EMAIL", "CARD", "IBAN", "IP", "PHONE", "PASSWORD", "CODE", "CRYPTO")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# --- URLs: only the secret-like parts of a link are replaced ---------------------------------
_URL = re.compile(r"\b(?:https?|wss?|ftp|sftp|ssh|git)://[^\s<>\"'«»]+", re.I)
_URL_SPLIT = re.compile(
    r"^(?P<scheme>[^:]+://)(?:(?P<user>[^\s/?#@]*)@)?(?P<host>[^/?#]*)(?P<rest>.*)$", re.S
)
_URL_DELIM = re.compile(r"([/?&#=;])")
_TOKEN_PARAMS = _words(
    "token access_token refresh_token id_token auth auth_token authorization api_key apikey key secret "
    "client_secret password passwd pass pwd sig signature x-amz-signature x-amz-credential session "
    "sessionid session_id sid private_token otp code jwt"
)
_URL_TRAIL = ".,;:!?)]}»\"'"
_PHONE_IN_URL = re.compile(r"\+?\d{7,15}")
_HEX = re.compile(r"(?:0x)?[0-9a-fA-F]+")

# --- crypto wallet addresses (Presidio's CryptoRecognizer rule, plus Ethereum) ----------------
_CRYPTO = re.compile(
    r"(?<![\w/])(?:0x[0-9a-fA-F]{40}|bc1[02-9ac-hj-np-z]{11,71}|[13][1-9A-HJ-NP-Za-km-z]{25,34})(?![\w])"
)
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

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
_KEYS = re.compile("|".join(f"(?:{p})" for p in _KEY_PATTERNS))
# cheap substring tests that gate the expensive patterns (a plain `in` is ~20x faster than a regex)
_KEY_HINTS = (
    "eyJ", "sk-", "sk_", "pk_", "rk_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "xox",
    "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "AIza", "hf_", "npm_", "pypi-", "SG.", "ya29.", ":AA", "y0_", "t1.",
    "-----BEGIN",
)  # fmt: skip
_LONG_TOKEN = re.compile(r"(?<![\w/+=\-])[A-Za-z0-9_+/=\-]{24,}(?![\w/+=\-])")

# --- e-mail -----------------------------------------------------------------------------------
_EMAIL = re.compile(
    r"(?<![\w.+\-])[\w.+\-]{1,64}@(?:[^\W_](?:[\w\-]{0,61}[^\W_])?\.)+[^\W\d_]{2,24}(?!\w)", re.UNICODE
)

# --- numbers: cards, IBANs, phones ------------------------------------------------------------
_DIGIT = re.compile(r"\d")
# anything that could start a hit; on lower-cased text (re.I with Cyrillic is slow)
_TRIGGER = re.compile(
    r"[\d@]|://|pass|pw|pin|code|otp|cv[vc]|парол|пасс|пин|код|-----begin|key|token|secret|ключ|токен|секрет"
)
_SEVEN_DIGITS = re.compile(r"\d(?:[\s\-().]{0,3}\d){6}")
_CARD = re.compile(r"(?<![\w.,])\d(?:[ \-]?\d){12,18}(?![\w]|[.,]\d)")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){10,30}\b")
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

# --- IPs --------------------------------------------------------------------------------------
_IPV4 = re.compile(r"(?<![\w.])(\d{1,3}(?:\.\d{1,3}){3})(?::\d{1,5})?(?![\w]|\.\d)")
_VERSION_BEFORE = re.compile(r"(?<!\w)(?:v|version|ver\.?|версия|версии|верс\.?)\s*$", re.I)
_IPV6 = re.compile(
    r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,8}(?:[0-9A-Fa-f]{0,4}|\d{1,3}(?:\.\d{1,3}){3})(?![\w:])"
)

# --- keyword-introduced passwords and codes (EN + RU) -----------------------------------------
_PW_WORD = r"(?:password|passwd|passcode|passphrase|pass|pwd|pw|парол[ьяюе]м?|пасс|пассворд)"
_CODE_WORD = (
    r"(?:pin(?:\s*code)?|pincode|otp|cvv2?|cvc2?|one[\s\-]time\s+code|verification\s+code|"
    r"confirmation\s+code|security\s+code|sms\s+code|code|"
    r"пин(?:[\s\-]?код)?|код(?:а|ом|у)?|cvv-код)"
)
# a few words may sit between the keyword and the value: "password for wifi is", "код из смс:"
_FILLER = (
    r"(?:\s+(?:(?:for|to|from|of|on|at|от|для|на|к|из|в)\s+[\w.\-]{1,30}|my|the|wifi|wi-fi|account|router|"
    r"email|mail|bank|phone|sms|is|was|will\s+be|мой|моя|вайфая|вайфай|почты|банка|карты|смс|домофона|"
    r"подъезда|сейфа|приложения|входа|подтверждения|это|будет|такой|такое)){0,3}"
)
_SEP = r"(?:\s*(?:[:=]|-|—|–|is|это|будет)\s*|\s+)"
_PASSWORD = re.compile(
    rf"(?<!\w)(?P<kw>{_PW_WORD}){_FILLER}(?P<sep>{_SEP})[\"'«“]?(?P<val>[^\s\"'»”]{{3,64}})",
    re.I | re.UNICODE,
)
# a short token after "api key:", "token =", "ключ:" (long or prefixed ones are caught above)
_TOKEN_KW = re.compile(
    r"(?<!\w)(?:api[\s_\-]?key|access[\s_\-]?key|secret(?:[\s_\-]?key)?|token|ключ(?:\s+api)?|токен|секрет)"
    rf"{_FILLER}\s*(?:[:=]|-|—|–|is|это)\s*[\"'«“]?(?P<val>[A-Za-z0-9_\-+/=.]{{8,}})",
    re.I,
)
_CODE = re.compile(
    rf"(?<!\w){_CODE_WORD}{_FILLER}{_SEP}[\"'«“]?(?P<val>\d{{3}}[\s\-]\d{{3}}|\d{{3,8}})(?![\d:.,/]\d|\w)",
    re.I | re.UNICODE,
)
_VAL_TRAIL = ".,;:)]}»\"'”"
_TIME = re.compile(r"\d{1,2}[:.]\d{2}(?::\d{2})?")
# values that are ordinary words, not secrets: "the password is wrong", "пароль не подходит"
_NOT_A_PASSWORD = frozenset(
    [
        "is",
        "was",
        "the",
        "a",
        "an",
        "my",
        "your",
        "his",
        "her",
        "our",
        "their",
        "this",
        "that",
        "it",
        "wrong",
        "correct",
        "right",
        "incorrect",
        "same",
        "new",
        "old",
        "changed",
        "reset",
        "expired",
        "protected",
        "required",
        "forgotten",
        "again",
        "too",
        "here",
        "there",
        "below",
        "above",
        "please",
        "ok",
        "okay",
        "не",
        "неверный",
        "верный",
        "правильный",
        "неправильный",
        "новый",
        "старый",
        "тот",
        "же",
        "такой",
        "этот",
        "мой",
        "твой",
        "его",
        "её",
        "от",
        "для",
        "сменил",
        "сменила",
        "поменял",
        "поменяла",
        "забыл",
        "забыла",
        "сбросил",
        "подходит",
    ]
)

# "the password is <word>": words that describe a password rather than being one
_NOT_AFTER_IS = _words(
    "on in at not still also just empty blank easy simple short long weak strong saved stored written "
    "somewhere invalid valid fine good bad secret private set needed missing taped attached public shared "
    "different useless hard complicated enabled disabled off locked unknown closed open valid printed "
    "mine yours what where which why case-sensitive sensitive lost gone long-ish ready done"
)
_PW_BEFORE_PASS = re.compile(r"(?:^|\W)(?:the|my|your|our|his|her|wifi|wi-fi)\s+$", re.I)
_COPULA_END = re.compile(r"(?:(?<!\w)(?:is|это|будет))\s*[\"'«“]?$", re.I)
_CYRILLIC = re.compile(r"[а-яё]", re.I)

# --- the answer in the next message -------------------------------------------------------------
# a message asking for a secret: a keyword of the kind, and a question mark, a colon or a request
_ASK_KIND = (
    ("CODE", re.compile(r"(?<!\w)(?:pin|pincode|otp|code|cvv|cvc|код\w*|пин\w*|cvv-код)(?!\w)", re.I)),
    (
        "PASSWORD",
        re.compile(r"(?<!\w)(?:password|passwd|passcode|passphrase|pwd|парол\w*|пассворд)(?!\w)", re.I),
    ),
    ("SECRET", re.compile(r"(?<!\w)(?:api[\s_\-]?key|key|token|secret|ключ\w*|токен\w*)(?!\w)", re.I)),
)
_ASK_HINTS = ("pin", "code", "otp", "cvv", "cvc", "pass", "pwd", "key", "token", "secret", "код", "пин", "парол", "ключ", "токен")  # fmt: skip
_ASKING = re.compile(
    r"[?:]\s*\W{0,3}$|(?<!\w)(?:what'?s|what\s+is|send|give|tell|share|need|скинь|кинь|пришли|дай|"
    r"напиши|скажи|продиктуй|какой|какая|нужен|нужна)(?!\w)",
    re.I,
)
# the answer: one value, optionally after "it's" / "это" / "вот", optionally quoted or with a full stop
_ANSWER = re.compile(
    r"^(?:(?:it'?s|it\s+is|это|вот|держи|here)\s*:?\s+)?[\"'«“]?(?P<val>\d{3}[\s\-]\d{3}|[^\s\"'»”]{3,64})"
    r"[\"'»”]?$",
    re.I,
)
# one-word replies that are not the value asked for; a reply like this keeps the question in view
_HOLD = _words(
    "sec wait hold moment minute checking looking lemme sek секунду секу сек щас ща сейчас погоди "
    "подожди момент минуту минутку гляну смотрю"
)
_REPLIES = _HOLD | _words(
    "ok okay k kk yes yeah yep yup no nope nah sure idk dunno forgot later why what huh hmm lol thanks "
    "thx ty sorry same nothing never none again done sent here there tomorrow today soon asap "
    "да нет ок окей ага угу неа забыл забыла потом позже завтра сегодня зачем почему что кто "
    "спасибо сорян никак никакой такой maybe probably definitely obviously nevermind nvm whatever right "
    "correct exactly true something everything hi hello hey bye please pls thank you"
)

_PHONE_CAND = re.compile(r"(?<![\w+])\+?\(?\d[\d \t().\-]{5,22}\d(?!\w)")
_PHONE_PREFIX_BAD = re.compile(r"(?:order|заказ|invoice|счёт|счет|ticket|тикет|№|#|id|no\.?)\s*$", re.I)


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
    iban = iban.replace(" ", "").upper()
    expected = _IBAN_LEN.get(iban[:2])
    if expected is None or len(iban) != expected or not iban[2:4].isdigit():
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def shannon_bits(s: str) -> float:
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def _looks_random(tok: str) -> bool:
    """A long token that is a key, not a word, a path or a number."""
    core = tok.strip("=-_/+")
    if len(core) < 24 or core.isdigit() or core.isalpha():
        return False
    has_digit = any(c.isdigit() for c in core)
    has_alpha = any(c.isalpha() for c in core)
    if not (has_digit and has_alpha):
        return False
    # a path or a slug made of words ("my-long-file-name-2024") is not a key
    if re.fullmatch(r"[a-z0-9]+(?:[\-_/][a-z0-9]+)+", core) and max(map(len, re.split(r"[\-_/]", core))) < 16:
        return False
    return shannon_bits(core) >= 3.2


class Scrubber:
    """Replace PII with typed placeholders; counts hits per type in ``self.counts``."""

    def __init__(self, region: str | Iterable[str] = "US,RU") -> None:
        regions = region.split(",") if isinstance(region, str) else list(region)
        self.regions = [r.strip().upper() for r in regions if r.strip()]
        self.counts: Counter[str] = Counter()
        self._phonenumbers = None

    # each step: (placeholder type, text) -> text
    def _sub(self, kind: str, pattern: re.Pattern, text: str, check=None, group: int | str = 0) -> str:
        out: list[str] = []
        last = 0
        for m in pattern.finditer(text):
            if check is not None and not check(m, text):
                continue
            s, e = m.span(group)
            if kind in ("PASSWORD", "CODE"):
                while e > s and text[e - 1] in _VAL_TRAIL:
                    e -= 1
            if s < last or e <= s:
                continue
            out.append(text[last:s])
            out.append(f"[{kind}]")
            self.counts[kind] += 1
            last = e
        if not out:
            return text
        out.append(text[last:])
        return "".join(out)

    def __call__(self, text: str) -> str:
        return self.scrub(text)

    def scrub(self, text: str) -> str:
        """``text`` with each hit replaced by its placeholder; links are scrubbed part by part."""
        if "://" not in text:
            return self._scrub_plain(text)
        out, last = [], 0
        for m in _URL.finditer(text):
            url = m.group(0).rstrip(_URL_TRAIL)
            out.append(self._scrub_plain(text[last : m.start()]))
            out.append(self._scrub_url(url))
            last = m.start() + len(url)
        out.append(self._scrub_plain(text[last:]))
        return "".join(out)

    def _scrub_url(self, url: str) -> str:
        """Scheme and host stay; credentials, token parameters and key-like parts are replaced."""
        m = _URL_SPLIT.match(url)
        if m is None:
            return url
        user, host = m.group("user"), m.group("host")
        out = [m.group("scheme")]
        if user is not None:
            out.append("[URL]@" if ":" in user else user + "@")
            self.counts["URL"] += ":" in user
        ip_host = _IPV4.fullmatch(host) or host.startswith("[")  # 10.0.0.7:8080, [2001:db8::1]:443
        out.append(self._scrub_plain(host) if ip_host else host)
        parts = _URL_DELIM.split(m.group("rest"))
        for i, part in enumerate(parts):
            key = parts[i - 2].lower() if i >= 2 and parts[i - 1] == "=" else None
            out.append(self._url_part(part, key))
        return "".join(out)

    def _url_part(self, part: str, key: str | None) -> str:
        """One path segment, query value or fragment of a link (``key``: the parameter name)."""
        if len(part) < 3 or part in "/?&#=;":
            return part
        kind = None
        if key in _TOKEN_PARAMS:
            kind = "URL"
        elif _CRYPTO.fullmatch(part) and _eth_or_btc_ok(part):
            kind = "CRYPTO"
        elif _KEYS.fullmatch(part) or (_looks_random(part) and not _HEX.fullmatch(part)):
            kind = "SECRET"  # a commit or file hash (hex) in a public link is not a secret
        elif "@" in part and _EMAIL.fullmatch(part):
            kind = "EMAIL"
        elif _PHONE_IN_URL.fullmatch(part):
            return self._phones(part)  # https://wa.me/79161234567
        if kind is None:
            return part
        self.counts[kind] += 1
        return f"[{kind}]"

    def _scrub_plain(self, text: str) -> str:
        if not text:
            return text
        # every key/token form is one 16+ character run without spaces (a PEM block starts with -----)
        longest = max(map(len, text.split()), default=0)
        low = text.lower()
        if longest < 16 and text.count(":") < 2 and _TRIGGER.search(low) is None:
            return text  # most chat lines: no digit, no @, no keyword, no long token
        if longest >= 26:
            text = self._sub("CRYPTO", _CRYPTO, text, lambda m, t: _eth_or_btc_ok(m.group(0)))
        if (longest >= 16 and any(h in text for h in _KEY_HINTS)) or "-----BEGIN" in text:
            text = self._sub("SECRET", _KEYS, text)
        if "@" in text:
            text = self._sub("EMAIL", _EMAIL, text)
        has_digit = _DIGIT.search(text) is not None
        if has_digit and _SEVEN_DIGITS.search(text):
            if _IBAN.search(text):  # before cards: an IBAN's digit groups can pass the Luhn check
                text = self._sub("IBAN", _IBAN, text, lambda m, t: iban_ok(m.group(0)))
            text = self._sub("CARD", _CARD, text, _card_check)
        if has_digit and text.count(".") >= 3:
            text = self._sub("IP", _IPV4, text, _ipv4_check, group=1)  # the port stays
        if text.count(":") >= 2:
            text = self._sub("IP", _IPV6, text, _ipv6_check)
        low = text.lower()  # placeholders may have replaced parts since
        if (
            "pass" in low or "pw" in low or "pin" in low or "code" in low or "otp" in low or "cvv" in low
            or "cvc" in low or "парол" in low or "пасс" in low or "пин" in low or "код" in low
        ):  # fmt: skip
            # before phones: "код из смс 48291573" is a code, not a phone number
            text = self._sub("PASSWORD", _PASSWORD, text, _password_check, group="val")
            text = self._sub("CODE", _CODE, text, _code_check, group="val")
        if (
            "key" in low
            or "token" in low
            or "secret" in low
            or "ключ" in low
            or "токен" in low
            or "секрет" in low
        ):
            text = self._sub("SECRET", _TOKEN_KW, text, _token_check, group="val")
        if has_digit and _SEVEN_DIGITS.search(text):
            text = self._phones(text)
        if longest >= 24:
            text = self._sub("SECRET", _LONG_TOKEN, text, lambda m, t: _looks_random(m.group(0)))
        return text

    def _phones(self, text: str) -> str:
        """Phone numbers among the 7-15-digit candidates; ``phonenumbers`` decides which are real."""
        cands = []
        for m in _PHONE_CAND.finditer(text):
            n = sum(c.isdigit() for c in m.group(0))
            if 7 <= n <= 15 and not _PHONE_PREFIX_BAD.search(text[max(0, m.start() - 12) : m.start()]):
                cands.append(m)  # "order #4155552671" is an order number
        if not cands:
            return text
        if self._phonenumbers is None:
            import phonenumbers

            self._phonenumbers = phonenumbers
        pn = self._phonenumbers
        spans: list[tuple[int, int]] = []
        for c in cands:
            # a little context on each side lets the matcher see what surrounds the number
            lo, hi = max(0, c.start() - 2), min(len(text), c.end() + 2)
            snippet = text[lo:hi]
            regions = self.regions[:1] if c.group(0).lstrip("(").startswith("+") else self.regions
            for region in regions:
                found = [
                    _with_trunk_prefix(text, c.start(), lo + m.start, lo + m.end)
                    for m in pn.PhoneNumberMatcher(snippet, region, leniency=pn.Leniency.VALID)
                ]
                if found:
                    spans.extend(sp for sp in found if not any(sp[0] < e and s < sp[1] for s, e in spans))
                    break
        if not spans:
            return text
        spans.sort()
        out, last = [], 0
        for s, e in spans:
            out.append(text[last:s])
            out.append("[PHONE]")
            self.counts["PHONE"] += 1
            last = e
        out.append(text[last:])
        return "".join(out)


def _with_trunk_prefix(text: str, cand_start: int, s: int, e: int) -> tuple[int, int]:
    """A match that left out the national trunk prefix ("8 (916) ...": "8 ") takes it in."""
    return (cand_start, e) if re.fullmatch(r"8[\s\-]*", text[cand_start:s]) else (s, e)


def _card_check(m: re.Match, text: str) -> bool:
    digits = re.sub(r"\D", "", m.group(0))
    return 13 <= len(digits) <= 19 and digits[0] != "0" and luhn_ok(digits)


def _ipv4_check(m: re.Match, text: str) -> bool:
    try:
        ip = ipaddress.ip_address(m.group(1))
    except ValueError:
        return False
    if _VERSION_BEFORE.search(text[max(0, m.start() - 10) : m.start()]):
        return False
    # "1.2.3.4" style dotted numbers of 1-digit parts are more often versions/section numbers
    parts = m.group(1).split(".")
    return not (all(len(p) == 1 for p in parts) and not ip.is_private)


def _ipv6_check(m: re.Match, text: str) -> bool:
    s = m.group(0)
    if s.count(":") < 2 or not re.search(r"[0-9A-Fa-f]{2}", s):
        return False
    # "addr:22" (a port written without brackets) is still the address
    for cand in (s, s.rsplit(":", 1)[0]):
        try:
            ipaddress.IPv6Address(cand)
            return True
        except ValueError:
            pass
    return False


def _token_check(m: re.Match, text: str) -> bool:
    val = m.group("val").rstrip(_VAL_TRAIL)
    return any(c.isdigit() for c in val) and any(c.isalpha() for c in val)


def _code_check(m: re.Match, text: str) -> bool:
    # three digits are a CVV only after "cvv"/"cvc"; elsewhere they are an HTTP status, a room...
    return len(m.group("val")) > 3 or m.group(0)[:3].lower() in ("cvv", "cvc")


def _password_check(m: re.Match, text: str) -> bool:
    val = m.group("val").rstrip(_VAL_TRAIL)
    if len(val) < 3 or val.lower() in _NOT_A_PASSWORD or val.startswith("[") or _TIME.fullmatch(val):
        return False  # a word, a placeholder already, or a time ("boarding pass: 10:30")
    sep = m.group("sep").strip()
    if val.endswith("?") or (sep not in (":", "=") and val.lower() in _NOT_AFTER_IS):
        return False  # "the password for the wifi?", "the password is case-sensitive"
    if _CYRILLIC.search(val) and val.isalpha() and re.match(r"\s+[а-яё]", text[m.end() :], re.I):
        return False  # "пароль: спроси у админа" goes on as a sentence
    if sep in (":", "=", "-", "—", "–"):
        return True
    if re.search(r"\d|[^\w]", val) or (val != val.lower() and val != val.capitalize()):
        return True  # "my password is hunter2": a digit, a symbol or mixed case
    return _plain_word_password(m, text, val)


def _plain_word_password(m: re.Match, text: str, val: str) -> bool:
    """A password that reads like a word: "пароль qwerty", "my password is sunshine"."""
    kw = m.group("kw").lower()
    if _CYRILLIC.search(kw):
        return val.isascii()  # a Russian sentence goes on in Cyrillic; a Latin word is typed as the password
    if not _COPULA_END.search(text[m.start() : m.start("val")]) or re.search(r"..(?:ed|ing)$", val):
        return False  # "the password is on the note", "the password is banned", "... is working"
    # "pass" alone is also a mountain pass or a boarding pass: only "the/my/wifi pass is ..."
    return kw != "pass" or _PW_BEFORE_PASS.search(text[max(0, m.start() - 12) : m.start()]) is not None


def _eth_or_btc_ok(addr: str) -> bool:
    if addr.startswith("0x"):
        return True
    if addr.startswith("bc1"):
        return _bech32_ok(addr)
    return _base58check_ok(addr)


def _base58check_ok(addr: str) -> bool:
    n = 0
    for c in addr:
        n = n * 58 + _B58.index(c)
    if n.bit_length() > 200:
        return False
    raw = n.to_bytes(25, "big")
    return hashlib.sha256(hashlib.sha256(raw[:-4]).digest()).digest()[:4] == raw[-4:]


def _bech32_ok(addr: str) -> bool:
    """BIP-173 / BIP-350 checksum (bech32 for segwit v0, bech32m for v1+)."""
    hrp, _, data = addr.rpartition("1")
    values = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + [_B32.index(c) for c in data]
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            if (top >> i) & 1:
                chk ^= gen[i]
    return chk in (1, 0x2BC830A3)


def asked_secret(text: str, scrubbed: str) -> str | None:
    """The placeholder type a message asks for ("what's the wifi password?" -> PASSWORD), else None.

    A message that already carried a value of that type (``scrubbed`` holds its placeholder) asks nothing.
    """
    low = text.lower()
    if not any(w in low for w in _ASK_HINTS) or not _ASKING.search(text):
        return None  # the substring test first: most messages name no secret at all
    for kind, pattern in _ASK_KIND:
        if pattern.search(text):
            return None if f"[{kind}]" in scrubbed else kind
    return None


def answer_span(text: str, kind: str) -> tuple[int, int] | None:
    """Where the value of ``kind`` is in a short answer (``pelican7``, ``it's 4821``), else None."""
    m = _ANSWER.match(text.strip())
    if m is None:
        return None
    val = m.group("val")
    lead = len(text) - len(text.lstrip())
    span = (lead + m.start("val"), lead + m.end("val"))
    if val.lower().rstrip(".!…") in _REPLIES or val.endswith("?") or _TIME.fullmatch(val) or "://" in val:
        return None
    if not any(c.isalnum() for c in val) or (_CYRILLIC.search(val) and not any(c.isdigit() for c in val)):
        return None  # an emoji, a Russian word ("забыл", "щас")
    if kind == "CODE":  # "0482." ends a sentence; a password may end with "!" or "."
        val = val.rstrip(".!")
        span = (span[0], span[0] + len(val))
        return span if re.fullmatch(r"\d{4,8}|\d{3}[\s\-]\d{3}", val) else None
    if kind == "SECRET":
        return span if len(val) >= 8 and re.search(r"\d", val) and re.search(r"[A-Za-z]", val) else None
    return span


def scrub_messages(texts: Sequence[str], scrubber: Scrubber) -> list[str]:
    """Scrub consecutive messages of one conversation, each with the one before it in view.

    Every text goes through ``scrubber`` alone; then a short answer right after a message asking
    for a password, code, PIN or key ("what's the wifi password?" -> "pelican7") becomes that
    placeholder. One-word replies that hold ("sec", "щас") keep the question in view for the next
    message. Returns the scrubbed texts, one per input, in order.
    """
    out: list[str] = []
    asked: str | None = None
    for text in texts:
        clean = scrubber.scrub(text)
        keep_asking = False
        if asked is not None and clean == text:
            span = answer_span(text, asked)
            if span is not None:
                clean = text[: span[0]] + f"[{asked}]" + text[span[1] :]
                scrubber.counts[asked] += 1
            keep_asking = span is None and text.strip().lower().rstrip(".!…") in _HOLD
        out.append(clean)
        asked = asked if keep_asking else asked_secret(text, clean)
    return out
