"""Detectors for links, e-mail addresses, IP addresses and crypto wallet addresses.

A link keeps its host and path words: only the secret parts of it (credentials, the value of a
token-like query parameter, a key with a known prefix, a long random path segment) are replaced.
E-mail addresses are found as written (``a@b.io``) and as people hide them from bots
("anna at gmail dot com", "anna [at] gmail [dot] com", "anna собака mail точка ru", "anna @ gmail . com",
a name in Cyrillic before a Cyrillic "@" word: "анна собака gmail точка com").
"""

from __future__ import annotations

import hashlib
import ipaddress
import re


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# --- links ------------------------------------------------------------------------------------
# with a scheme, or scheme-less with a known top-level domain and a path ("amazon.com/gp/product/...")
_TLDS = (
    "com|org|net|io|ru|ua|de|uk|fr|it|es|nl|pl|me|co|ai|dev|app|info|biz|edu|gov|by|kz|lk|in|jp|cn|us|ca|au|"
    "ch|se|no|fi|dk|cz|tr|pt|be|at|ly|gl|gg|tv|su|рф"
)
URL = re.compile(
    r"\b(?:https?|wss?|ftp|sftp|ssh|git|viber|whatsapp|tg|skype"
    # a database or a broker, its password in the link ("postgres://user:pw@host:5432/db")
    r"|postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mqtts?|smtps?|imaps?|ldaps?)://[^\s<>\"'«»]+"
    rf"|(?<![\w@./\-])(?:[\w\-]+\.)+(?:{_TLDS})/[^\s<>\"'«»]*",
    re.I,
)
_URL_SPLIT = re.compile(
    r"^(?P<scheme>[^:/]+://)?(?:(?P<user>[^\s/?#@]*)@)?(?P<host>[^/?#]*)(?P<rest>.*)$", re.S
)
_URL_DELIM = re.compile(r"([/?&#=;])")
TOKEN_PARAMS = _words(
    "token access_token refresh_token id_token auth auth_token authorization api_key apikey key secret "
    "client_secret password passwd pass pwd sig signature x-amz-signature x-amz-credential session "
    "sessionid session_id sid private_token otp code jwt invite rlkey"
)
# one- and two-letter parameters that carry a token in some links ("x.com/verify?t=a8f3k29dm3", a
# share link's "&t=8Kx3qLk2lR1nQYmTzNvYg") and a video time, a search or a page in others ("?t=42",
# "t=1m30s", "?s=rtx4090"): only a value that reads as random is taken (see short_token)
SHORT_TOKEN_PARAMS = _words("t k s tk")
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_\-]{8,64}")
_MEDIA_TIME = re.compile(r"(?:\d+h)?(?:\d+m)?\d*s?", re.I)  # "42", "1m30s", "1h2m3s", "90s"
_LETTER_DIGIT_RUNS = re.compile(r"[A-Za-z]+|\d+")
URL_TRAIL = ".,;:!?)]}»\"'"
PHONE_IN_URL = re.compile(r"(?:\+|%2[Bb])?\d{7,15}")
# query parameters whose digits are a phone number; any other parameter's digits are an id or a search
PHONE_PARAMS = _words("phone tel mobile msisdn number to from whatsapp wa")
# hosts whose path is a phone number (wa.me/380671234567, t.me/+79161234567); on any other site a
# path segment of digits is an id (vimeo.com/123456789, ebay.com/itm/256123456789) unless it has a "+"
PHONE_HOSTS = _words("wa.me api.whatsapp.com t.me telegram.me signal.me")


def phone_in_url(part: str, key: str | None, host: str) -> bool:
    """Are the digits of a path segment, query value or fragment of a link on ``host`` a phone:
    the value of a phone parameter (``?phone=``), or a path part with a "+" or on a messenger's host."""
    if not PHONE_IN_URL.fullmatch(part):
        return False
    if key is not None:
        return key in PHONE_PARAMS
    return part[0] in "+%" or host.lower().removeprefix("www.") in PHONE_HOSTS


HEX = re.compile(r"(?:0x)?[0-9a-fA-F]+")
# a path segment that is a key: one run of letters and digits, mixed case, no word separators
_RANDOM_SEGMENT = re.compile(r"[A-Za-z0-9_\-]{24,}")


def split_url(url: str) -> re.Match | None:
    return _URL_SPLIT.match(url)


def url_parts(rest: str) -> list[tuple[str, str | None]]:
    """The path, query and fragment of a link cut at its delimiters, each with its parameter name."""
    parts = _URL_DELIM.split(rest)
    return [
        (part, parts[i - 2].lower() if i >= 2 and parts[i - 1] == "=" else None)
        for i, part in enumerate(parts)
    ]


def random_segment(part: str) -> bool:
    """A long path segment that reads as a key or capability token, not as words or an id."""
    if not _RANDOM_SEGMENT.fullmatch(part) or HEX.fullmatch(part):
        return False  # commit and transaction hashes are public
    words = re.split(r"[\-_]", part)
    if len(words) > 2 and max(map(len, words)) < 16:
        return False  # a slug: "ukraine-kharkiv-offensive-what-we-know"
    has = (any(c.islower() for c in part), any(c.isupper() for c in part), any(c.isdigit() for c in part))
    return sum(has) == 3


def short_token(part: str) -> bool:
    """The value of a short parameter (``?t=``) that is a token: 8+ characters in which letters and
    digits alternate at least four times ("a8f3k29dm3", "Zx81kq03Lm"), not a time ("1m30s") nor a
    word with a number ("rtx4090", "iphone15pro")."""
    if not _TOKEN_CHARS.fullmatch(part) or _MEDIA_TIME.fullmatch(part):
        return False
    return len(_LETTER_DIGIT_RUNS.findall(part)) >= 5


# Private-group invite links: anyone holding the hash can join, so the hash is a secret even
# though it is short ("t.me/+AbCdEfGh0123wxyz", "t.me/joinchat/AAAAAE...", "chat.whatsapp.com/Hx2...").
_INVITE_HOSTS = frozenset(("t.me", "telegram.me", "telegram.dog", "chat.whatsapp.com"))
_INVITE_HASH = re.compile(r"[A-Za-z0-9_\-]{8,}")


def invite_hash(host: str, parts: list[tuple[str, str | None]], i: int) -> bool:
    """Is path part ``i`` of a link on ``host`` the hash of a private invite?"""
    host = host.lower().removeprefix("www.")
    if host not in _INVITE_HOSTS or parts[i][1] is not None:
        return False
    part = parts[i][0]
    if host == "chat.whatsapp.com":
        return i == 2 and bool(_INVITE_HASH.fullmatch(part))  # ["", "/", HASH]
    if part.startswith("+"):  # t.me/+HASH; t.me/+79161234567 is a phone, left to the phone rule
        return i == 2 and bool(_INVITE_HASH.fullmatch(part[1:])) and not part[1:].isdigit()
    return i == 4 and parts[2][0].lower() == "joinchat" and bool(_INVITE_HASH.fullmatch(part))


# Share links that open a private file to whoever holds them: the id after the path word
# ("dropbox.com/s/ID/photo.jpg", "dropbox.com/scl/fi/ID/...", "disk.yandex.ru/d/ID", "we.tl/t-ID",
# "wetransfer.com/downloads/ID/HASH", "mega.nz/file/ID#KEY": the fragment is the decryption key)
_SHARE_LINKS = {
    "dropbox.com": ("s", "sh", "scl/fi"),
    "disk.yandex.ru": ("d", "i"),
    "disk.yandex.ua": ("d", "i"),
    "disk.yandex.com": ("d", "i"),
    "yadi.sk": ("d", "i"),
    "we.tl": ("",),
    "wetransfer.com": ("downloads",),
    "mega.nz": ("file", "folder"),
}


def share_id(host: str, parts: list[tuple[str, str | None]], i: int) -> bool:
    """Is part ``i`` of a link on ``host`` the id (or mega's key) of a private share link?"""
    words = _SHARE_LINKS.get(host.lower().removeprefix("www."))
    if words is None or parts[i][1] is not None or not _INVITE_HASH.fullmatch(parts[i][0]):
        return False
    if parts[i - 1][0] == "#":
        return "file" in words  # mega.nz/file/ID#KEY
    path = "".join(p for p, _ in parts[: i - 1]).strip("/")  # the path words before it
    return path in words or (words == ("downloads",) and path.startswith("downloads/"))


# --- crypto wallet addresses (Presidio's CryptoRecognizer rule, plus Ethereum) ----------------
CRYPTO = re.compile(
    r"(?<![\w/])(?:0x[0-9a-fA-F]{40}|bc1[02-9ac-hj-np-z]{11,71}|[13][1-9A-HJ-NP-Za-km-z]{25,34})(?![\w])"
)
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def wallet_ok(addr: str) -> bool:
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


# --- e-mail -----------------------------------------------------------------------------------
EMAIL = re.compile(
    r"(?<![\w.+\-])[\w.+\-]{1,64}@(?:[^\W_](?:[\w\-]{0,61}[^\W_])?\.)+[^\W\d_]{2,24}(?!\w)", re.UNICODE
)
# "ivan.petrov@gmail", "olga@yandex,ru": a mail provider's address typed without (or with a broken) top-level domain
# an e-mail percent-encoded in a link or a mailto: ("anna%40gmail.com", "?email=anna%40gmail.com")
EMAIL_PCT = re.compile(
    r"(?<![\w.%+\-])[\w.+\-]+%40[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}(?![\w\-])"
)
EMAIL_NO_TLD = re.compile(
    r"(?<![\w.+\-])[\w.+\-]{1,64}@(?:gmail|googlemail|yahoo|outlook|hotmail|icloud|yandex|ya|mail|proton|"
    r"protonmail|ukr|bk|inbox|list|rambler|gmx|aol|live|me)(?![\w@\-]|\.[^\W\d_])",
    re.I,
)
# a mailbox name given without its domain after a mail word: "my gmail is annasmith1990", "почта: ivan_petrov85"
# (a digit, dot, "_" or "+" in it: "my email is down" is a sentence)
MAILBOX_NAME = re.compile(
    r"(?<!\w)(?:g-?mail|e-?mail|mail|почта|пошта|имейл|мейл|емейл|імейл)(?:\s+(?:is|это|це|address|адрес|адреса))?"
    r"\s*[:\-—]?\s+(?P<val>(?=[\w.+\-]*[\d._+])(?=(?:[\d.+\-]*[A-Za-z_]){3})[A-Za-z][\w.+\-]{3,63})"
    r"(?![\w@.+\-]|\.\w)",
    re.I,
)

# "ivan.petrov93 at gmail", "пиши ivan.petrov на гмейл": a mailbox name (a digit, dot, "_" or "+" in it, as
# above), then "at" / "на" and a mail provider named without its domain (as people name them, Cyrillic
# too; the spelled-out forms' domain words are _PROVIDERS below)
_NAMED_PROVIDERS = (
    r"g-?mail|yahoo|outlook|hotmail|icloud|yandex|proton(?:mail)?|ukr\.?net|mail\.?ru|"
    r"гмейл\w*|гмайл\w*|гмаил\w*|джимейл\w*|яндекс\w*|укрнет\w*|мейл\s?ру"
)
MAILBOX_AT_PROVIDER = re.compile(
    r"(?<![\w.+\-@])(?=[\w.+\-]*[\d._+])(?=(?:[\d.+\-]*[A-Za-z_]){3})[A-Za-z][\w.+\-]{3,63}"
    rf"\s+(?:at|на|собака|равлик)\s+(?:{_NAMED_PROVIDERS})(?![\w.@])",  # "olena.k равлик укрнет" too
    re.I,
)
PROVIDER_HINT = re.compile(r"mail|мейл|гма|яндекс|yandex|yahoo|outlook|icloud|proton|ukr\.?net|укрнет")


def mailbox_hint(low: str) -> bool:
    """Cheap test on lower-cased text for a mail word (substring tests: this runs on most lines)."""
    return "mail" in low or "почт" in low or "пошт" in low or "мейл" in low


# "anna.k at gmail dot com", "j.smith [at] proton [dot] me", "olga собака yandex точка ru"
_AT = r"(?:\s*[\[({<]\s*(?:at|собака|собачка|ет|@)\s*[\])}>]\s*|\s+(?:at|собака|собачка|равлик)\s+|\s+@\s*|\s*@\s+)"
# a dot may have a space on each side ("anna @ gmail . com", see obfuscated_email_ok); the plain "."
# first and the spaced forms behind one "\s+": as fast as the list before the spaced dot was added
_DOT = r"(?:\.|\s+(?:\.|dot|точка|крапка)\s+|\s*[\[({<]\s*(?:dot|точка|крапка)\s*[\])}>]\s*)"
# a mail provider spelled in Cyrillic after the "@" word: "petrov собака яндекс точка ру"
_CYR_PROVIDERS = r"(?:яндекс|гмейл|гмайл|гмаил|джимейл|мейл|майл|укрнет|рамблер|инбокс)"
# any Latin top-level domain; a few spelled in Cyrillic ("точка ру")
_MAIL_TLD = r"(?:[a-z]{2,6}|рф|ру|ком|нет|орг|юа)"
OBFUSCATED_EMAIL = re.compile(
    # a Latin name; a Cyrillic one only before a Cyrillic "@" word ("анна собака gmail точка com")
    rf"(?<![\w.+\-])(?:[A-Za-z0-9_+\-]+(?:{_DOT}[A-Za-z0-9_+\-]+)*|[а-яёіїєґ]+(?=\s+(?:собак|равлик)))"
    rf"{_AT}(?:[A-Za-z0-9\-]+|{_CYR_PROVIDERS})(?:{_DOT}[A-Za-z0-9\-]+)*"
    rf"{_DOT}{_MAIL_TLD}(?![\w.])",
    re.I,
)


_PROVIDERS = _words(
    "gmail googlemail yahoo outlook hotmail live msn icloud me mail yandex ya proton protonmail pm ukr i bk "
    "inbox list rambler gmx web aol zoho tutanota fastmail qq 163 naver"
)
_BARE_AT = re.compile(r"\s(?:at)\s", re.I)
_AT_RE = re.compile(_AT, re.I)
_SPACED_DOT = re.compile(r"\s\.\s")
_CYRILLIC_AT = re.compile(r"(?<!\w)(?:собака|собачка|равлик|ет)(?!\w)", re.I)
# the top-level domains a spaced dot may end in when the domain is no mail provider ("anna @ firma .
# com"); "see you @ 5 . ok" and "I'm @ home . it's late" are sentences
_SPACED_TLDS = _words("com net org ru ua")


def obfuscated_email_ok(m: re.Match, text: str) -> bool:
    """A real obfuscation, not a sentence: "I am at home dot net" and "look at google dot com" stay.

    With a bare " at " the name must look like a mailbox name (a dot, digit, "_" or "+" in it) or
    the domain must be a mail provider; the bracketed and Russian/Ukrainian forms are never prose.
    """
    s = m.group(0)
    if not (_spelled_dot_ok(s) and _local_script_ok(s)):
        return False
    if "@" in s:  # "anna.k @ gmail.com", "anna.k[@]gmail.com": the plain pattern wants neither
        return re.search(r"\s@|@\s|[\[({<]\s*@", s) is not None
    bare = _BARE_AT.search(s)
    if bare is None:
        return True
    local, domain = s[: bare.start()], s[bare.end() :]
    first = re.split(r"\s|\.|[\[({<]", domain.strip(), maxsplit=1)[0].lower()
    if re.search(r"[._\d+]|\sdot\s", local, re.I) is not None or first in _PROVIDERS:
        return True
    return _MAIL_BEFORE.search(text[max(0, m.start() - 24) : m.start()]) is not None


# a mail word right before a spelled-out address on a domain of its own: "mail anna at anna-design dot
# com", "email: ivan at petrenko dot ua" ("look at google dot com" has none)
_MAIL_BEFORE = re.compile(
    r"(?<!\w)(?:e-?mail|mail|почта|пошта|мейл|имейл|імейл)(?:\s+(?:is|me|to|на))?[\s:\-–—]*$", re.I
)


def _domain_words(s: str) -> tuple[str, str]:
    """The first word after the "@" (or its spelling) and the last word of a spelled-out address."""
    at = _AT_RE.search(s)
    words = re.findall(r"[\w\-]+", s[at.end() :] if at else s)
    return (words[0].lower(), words[-1].lower()) if words else ("", "")


def _spelled_dot_ok(s: str) -> bool:
    """A spaced dot ("gmail . com") only with a mail provider or a common top-level domain."""
    if _SPACED_DOT.search(s) is None:
        return True
    first, tld = _domain_words(s)
    return first in _PROVIDERS or tld in _SPACED_TLDS


def _local_script_ok(s: str) -> bool:
    """A name in Cyrillic ("анна собака gmail точка com") only before a Cyrillic "@" word and a mail
    provider: Latin-script words before "at" are English prose."""
    local = re.split(r"\s|@|[\[({<]", s, maxsplit=1)[0]
    if local.isascii():
        return True
    at = _CYRILLIC_AT.search(s[len(local) :])
    return at is not None and "@" not in s and _domain_words(s)[0] in _PROVIDERS


# an address said aloud, the dot left out: "иван собака мейл ру", "petrov собака yandex ru" (a mail
# provider between the Cyrillic "@" word and the top-level domain)
SPOKEN_EMAIL = re.compile(
    r"(?<![\w.+\-])(?:[A-Za-z0-9_+\-]+(?:\.[A-Za-z0-9_+\-]+)*|[а-яёіїєґ]+)\s+(?:собака|собачка|равлик)\s+"
    rf"(?:{_CYR_PROVIDERS}|mail|yandex|gmail|ukr|bk|list|inbox|rambler|icloud|outlook)\s+"
    r"(?:ру|ru|ком|com|нет|net|юа|ua)(?!\w)",
    re.I,
)


def obfuscated_email_spans(text: str) -> list[tuple[int, int]]:
    """Spans of spelled-out addresses; after a rejected match ("me at m.jones") the search goes on
    from the next character, so the real address inside it ("m.jones at yahoo.com") is still found."""
    spans, pos = [], 0
    while (m := OBFUSCATED_EMAIL.search(text, pos)) is not None:
        if obfuscated_email_ok(m, text):
            spans.append(m.span())
            pos = m.end()
        else:
            pos = m.start() + 1
    if not spans and ("соба" in text or "равлик" in text):
        spans = [
            m.span() for m in SPOKEN_EMAIL.finditer(text) if m.group(0).split()[0].lower() not in _WHOSE_DOG
        ]
    return spans


# "моя собака мейл ру не любит": a possessive before "собака" makes it the dog
_WHOSE_DOG = _words("моя мой твоя твой наша наш ваша ваш его её ее их эта та чья своя мій його її ця своя")


# --- IPs --------------------------------------------------------------------------------------
IPV4 = re.compile(r"(?<![\w.])(\d{1,3}(?:\.\d{1,3}){3})(?::\d{1,5})?(?![\w]|\.\d)")
_VERSION_BEFORE = re.compile(r"(?<!\w)(?:v|version|ver\.?|версия|версии|верс\.?)\s*$", re.I)
IPV6 = re.compile(
    r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,8}(?:[0-9A-Fa-f]{0,4}|\d{1,3}(?:\.\d{1,3}){3})(?![\w:])"
)


def ipv4_check(m: re.Match, text: str) -> bool:
    try:
        ip = ipaddress.ip_address(m.group(1))
    except ValueError:
        return False
    if _VERSION_BEFORE.search(text[max(0, m.start() - 10) : m.start()]):
        return False
    # "1.2.3.4" style dotted numbers of 1-digit parts are more often versions/section numbers
    parts = m.group(1).split(".")
    return not (all(len(p) == 1 for p in parts) and not ip.is_private)


def ipv6_check(m: re.Match, text: str) -> bool:
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
