"""PII scrubbing: each hit becomes a typed placeholder before any other code sees the text.

Placeholders (and the ``pii`` keys in ``stats.json``); the detectors live beside this module, one
per family: ``pii_links`` (links, e-mails, IPs, wallets), ``pii_phones`` (phones), ``pii_numbers``
(cards, IBANs, SSNs, passports, national IDs, dates of birth), ``pii_places`` (street addresses,
coordinates), ``pii_secrets`` (keys, passwords, codes, seeds); ``pii_view`` is the copy of the text
they read (noise made plain); ``pii_split`` finds a number typed over several messages.

========== =================================================================================
``[URL]``      the credentials in a URL (``user:pass@``), the value of a token-like query parameter and
               the hash of a private invite link (t.me/+..., t.me/joinchat/..., chat.whatsapp.com/...) and
               the id of a private share link (dropbox.com/s/..., disk.yandex.ru/d/..., we.tl/..., mega.nz's key);
               the host and the path words of every link stay, with or without a scheme
``[SECRET]``   API keys and tokens: known prefixes (``sk-``, ``ghp_``, ``xoxb-``, ``AKIA``, ``AIza``,
               ``glpat-``, ``hf_``, Telegram bot tokens, ...), JWTs, private-key blocks, long
               high-entropy strings (24+ characters mixing letters and digits; not a 40-hex commit
               hash), and letter-and-digit values after "key:", "api key:", "token =", "Bearer", "ключ апи:"
``[EMAIL]``    e-mail addresses, also spelled out: "anna at gmail dot com", "[at]"/"[dot]", "собака"/"точка";
               a mail provider's without its top-level domain ("ivan.petrov@gmail"), said aloud without
               its dot ("иван собака мейл ру"); a mailbox name after "my gmail is", "почта:", or before
               "at gmail", "на гмейл" (with a digit, ".", "_" or "+" in it)
``[CARD]``     payment card numbers, 13-19 digits (spaces, dashes, or dots four by four), Luhn-checked,
               also with the expiry or CVV typed on; also over two messages or a line break; never
               digits after a ``+`` (a phone's country code), nor a list ("76 77 80 346 63 64", "101
               102 103 ..."); grouped otherwise than in fours (Amex 4-6-5) only after "card", "карта"
``[IBAN]``     IBANs in any case, spaced or dashed, mod-97 checksum (also over a line break or two
               messages); national bank account numbers after their word ("р/с", "счёт", "рахунок",
               "account number", "Konto") and RU personal accounts (40817...) anywhere
``[IP]``       IPv4 / IPv6 addresses, validated with :mod:`ipaddress`
``[PHONE]``    phone numbers (``phonenumbers`` decides): ``+``/``00`` international anywhere (with an
               extension or a second number run on: a valid number followed by more digits), national
               forms of the configured and inferred regions (an inferred one's without the trunk
               prefix only grouped as there: "93 123 4567"), and of any region when written as a
               phone (a ``0`` trunk prefix, also dotted "06.12.34.56.78", or an area code in brackets:
               "(11) 91234-5678"; after "call", "ring", "номер", "whatsapp", "අංකය"...; before
               "that's my number"); two with a "/" between them; also typed over two or three messages, or read
               out in words right after a phone word or "plus" ("oh seven seven one ...", "восемь
               девять один ..."); not after an order, registry, flight or booking word; not three or
               more numbers stepping by 1-20 ("page 112 113 114", a list); not a run of small numbers
               ("20 15 30 45 67", a score) unless after a phone word or grouped as the region writes
               its numbers ("06 12 34 56 78"); in a link, a phone parameter's value, a messenger's
               path (wa.me/..., t.me/+...) or a path part with a "+": another site's digits are an id
               (vimeo.com/123456789)
``[PASSWORD]`` what follows "password", "pass", "pwd", "пароль", "гасло", "parol", "මුරපදය", "கடவுச்சொல்", ... (see
               :mod:`.pii_secrets`); the ``P:`` field of a Wi-Fi QR text (``WIFI:S:..;P:..;;``)
``[CODE]``     PINs and one-time codes after "pin", "code", "otp", "код", "කේතය", "குறியீடு", "домофон", ...: 4-8
               digits, also spaced ("4 8 2 1", "90 21 77") or as an entry-phone code ("45к1234");
               before "is your ... code" / "ваш код", in "use 482193 to verify"; 3 digits only after
               "cvv"/"cvc"
``[CRYPTO]``   crypto wallet addresses: Ethereum ``0x`` + 40 hex digits; Bitcoin base58 and bech32
               (checksums verified)
``[SEED]``     wallet seed phrases: 12+ words of the BIP39 list
``[ADDRESS]``  street addresses with a house number (English, Russian, Ukrainian, Sinhala forms; a
               lower-case street after "на улице" / "на вулиці" unless it is the weather; typed in Latin
               letters, "vul. Shevchenka 12, kv. 5"; a name and a
               house after "адрес:" / "address:", not a count); PO boxes; a UK postcode after "postcode", or
               whole and in capitals anywhere ("LS6 2AB")
``[PASSPORT]`` passport numbers after "passport", "паспорт", "загран", "серия", "id-картка" (RU series +
               number, RU international, US, UA)
``[SSN]``      US social security numbers (``123-45-6789``; other forms after "SSN")
``[ID]``       national and tax ID numbers after their name: RU ИНН (12 digits) and СНИЛС (11; also its
               ``123-456-789 01`` form anywhere), UA РНОКПП/ІПН (10), Sri Lanka's NIC (12 digits after
               "NIC" or "හැඳුනුම්පත"; the old ``123456789V`` form anywhere), "national id" / "ID number";
               an IMEI, a VIN or a licence plate after its name, a MAC address anywhere
``[BIRTHDATE]`` a date with its year after "born", "date of birth", "DOB", "дата рождения", "д.р.",
               "народився", "උපන් දිනය", "பிறந்த தேதி" (the day also in words: "the fifth of May 1988",
               "двадцятого травня 1990"); after "birthday", "день рождения", "др", "பிறந்த நாள்" only with a
               birth year (not this or last year's: that is the party's date)
``[LOCATION]`` map coordinates in text (``50.450123, 30.523456``, ``50.45° N, 30.52° E``, after "lat";
               4 decimals right after "home", "location", "координаты", ...; ``54°41'14.0"N 25°16'47.0"E``);
               map links stay whole
========== =================================================================================

Detectors read through text noise (zero-width characters, no-break spaces, full-width and emoji keycap
digits, letters typed for digits: :mod:`.pii_view`); a text with no hit comes back exactly as it was.

:func:`scrub_messages` scrubs consecutive messages with the previous one in view: a short answer
right after a question about a password, code, PIN or key is that secret, and a card number, a
phone number or a code typed in two messages is found across them.

Times, dates, prices, version numbers, order and company registry numbers are left alone. Speed
matters (a million messages in well under a minute), so each detector runs only when a cheap test
says it could hit. Values are never logged; :class:`Scrubber` only counts hits per type.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from twin.text import pii_links as L
from twin.text import pii_numbers as N
from twin.text import pii_phones as P
from twin.text import pii_places as A
from twin.text import pii_secrets as S
from twin.text import pii_split as T
from twin.text import pii_view as V
from twin.text.pii_numbers import iban_ok, luhn_ok
from twin.text.pii_phones import infer_regions
from twin.text.pii_secrets import answer_span, asked_secret

__all__ = [
    "TYPES", "Scrubber", "scrub_messages", "luhn_ok", "iban_ok", "infer_regions", "asked_secret", "answer_span",
]  # fmt: skip

TYPES = (
    "URL", "SECRET", "EMAIL", "CARD", "IBAN", "IP", "PHONE", "PASSWORD", "CODE", "CRYPTO",
    "SEED", "ADDRESS", "PASSPORT", "SSN", "ID", "BIRTHDATE", "LOCATION",
)  # fmt: skip

_DIGIT = re.compile(r"\d")
# anything that could start a hit; on lower-cased text (re.I with Cyrillic is slow). The words are
# grouped by their first letter ("п(?:арол|асс|...)"): the regex engine then tries one branch per
# position instead of each word, 1.5x faster on chat lines than the flat list
_TRIGGER = re.compile(
    r"[\d@]|\uff20|://|p(?:ass|w|in|[ao]rol|uk)|code|otp|cv[vc]|-----begin|key|token|secret|mail|[ \[({<]at[ \])}>]"
    r"|п(?:арол|асс|асв|ин|очт|ошт|ук)|к(?:од|люч)|токен|секрет|собак|равлик|гасл|мейл|гма|яндекс|yandex|yahoo|outlook"
    r"|icloud|proton|ukr\.?net|укрнет|මුරපද|පාස්වර්ඩ්|ක(?:ේත|ෝඩ්)|கடவுச்|குறியீ|பாஸ்வே|பின்\s"
)
# cheap gates, on lower-cased text, for the detectors that need a word
_PW_WORD = re.compile(
    r"pass|pw|pin|puk|пук|code|otp|cv[vc]|combo|combination|домофон|intercom|buzzer|парол|пасс|пасв|гасл|пин|код|пін|parol|porol|මුරපද|පාස්|කේත|කෝඩ්|පින්"
    r"|கடவுச்|குறியீ|பாஸ்வே|பின்\s"
)
_KEY_WORD = re.compile(r"key|token|secret|bearer|ключ|токен|секрет")
_AT_DOMAIN = re.compile(r" at [a-z0-9\-]+\.[a-z]")


def _obfuscated_at(low: str) -> bool:
    """Cheap test for a spelled-out "@": bracketed, Russian/Ukrainian, or " at " with a domain after it."""
    if (
        "собак" in low
        or "собачк" in low
        or "равлик" in low
        or " @" in low
        or "@ " in low
        or "@]" in low
        or "@)" in low
    ):
        return True
    if "at" not in low:
        return False
    if "[at]" in low or "(at)" in low or "{at}" in low or "<at>" in low or "[ at ]" in low or "( at )" in low:
        return True
    return " at " in low and (
        " dot " in low or "[dot]" in low or " . " in low or _AT_DOMAIN.search(low) is not None
    )


# a placeholder the scrubber writes, captured (the pieces between are the text it kept)
_PLACEHOLDER = re.compile(r"(\[(?:" + "|".join(TYPES) + r")\])")


_PASSPORT_WORD = re.compile(r"passport|паспорт|сери[яиюі]|сері[яїю]|загран|id[\s\-]?карт")


class Scrubber:
    """Replace PII with typed placeholders; counts hits per type in ``self.counts``.

    ``region``: the configured phone regions (``--region``); ``extra``: regions inferred from the
    chat (:func:`infer_regions`), tried after them.
    """

    def __init__(self, region: str | Iterable[str] = "US,RU", extra: Iterable[str] = ()) -> None:
        regions = region.split(",") if isinstance(region, str) else list(region)
        self.regions = [r.strip().upper() for r in regions if r.strip()]
        inferred = [r.upper() for r in extra if r.upper() not in self.regions]
        self.regions += inferred
        self.counts: Counter[str] = Counter()
        self.phones = P.PhoneFinder(self.regions, inferred)

    def _sub(self, kind: str, pattern: re.Pattern, text: str, check=None, group: int | str = 0) -> str:
        spans = []
        for m in pattern.finditer(text):
            if check is None or check(m, text):
                spans.append(m.span(group))
        return self.replace(text, spans, kind)

    def replace(self, text: str, spans: Iterable[tuple[int, int]], kind: str) -> str:
        """``text`` with each span (sorted, non-overlapping ones kept) replaced by ``[kind]``."""
        out: list[str] = []
        last = 0
        for s, e in spans:
            if kind in ("PASSWORD", "CODE"):
                while e > s and text[e - 1] in S.VAL_TRAIL:
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

    def mark(self, text: str, entities: Iterable[Sequence]) -> str:
        """Replace spans the source already tagged, ``[offset, length, kind]`` (Telegram's own entities)."""
        spans = []
        for ent in entities if isinstance(entities, list) else ():
            try:
                o, n, k = ent
                spans.append((int(o), int(o) + int(n), str(k).upper()))
            except (TypeError, ValueError):
                continue  # a hint only: a malformed entry leaves the text to the detectors
        kept: list[tuple[int, int, str]] = []
        for s, e, kind in sorted(spans, key=lambda sp: (sp[0], -sp[1])):  # the outer one of overlapping spans
            if kind in TYPES and 0 <= s < e <= len(text) and (not kept or s >= kept[-1][1]):
                kept.append((s, e, kind))
        for s, e, kind in reversed(kept):
            text = text[:s] + f"[{kind}]" + text[e:]
            self.counts[kind] += 1
        return text

    def __call__(self, text: str) -> str:
        return self.scrub(text)

    def scrub(self, text: str) -> str:
        """``text`` with each hit replaced by its placeholder; links are scrubbed part by part."""
        if "/" not in text:
            return self._scrub_plain(text)
        out, last = [], 0
        for m in L.URL.finditer(text):
            url = m.group(0).rstrip(L.URL_TRAIL)
            out.append(self._scrub_plain(text[last : m.start()]))
            out.append(self._scrub_url(url))
            last = m.start() + len(url)
        out.append(self._scrub_plain(text[last:]))
        return "".join(out)

    def _scrub_url(self, url: str) -> str:
        """Host and path words stay; credentials, token parameters and key-like parts are replaced."""
        m = L.split_url(url)
        if m is None:
            return url
        user, host = m.group("user"), m.group("host")
        out = [m.group("scheme") or ""]
        if user is not None:
            out.append("[URL]@" if ":" in user else user + "@")
            self.counts["URL"] += ":" in user
        ip_host = L.IPV4.fullmatch(host) or host.startswith("[")  # 10.0.0.7:8080, [2001:db8::1]:443
        out.append(self._scrub_plain(host) if ip_host else host)
        parts = L.url_parts(m.group("rest"))
        for i, (part, key) in enumerate(parts):
            secret = L.invite_hash(host, parts, i) or (i > 1 and L.share_id(host, parts, i))
            out.append(self._invite(part) if secret else self._url_part(part, key, host))
        return "".join(out)

    def _invite(self, part: str) -> str:
        self.counts["URL"] += 1
        return "+[URL]" if part.startswith("+") else "[URL]"

    def _url_part(self, part: str, key: str | None, host: str) -> str:
        """One path segment, query value or fragment of a link on ``host`` (``key``: the parameter name)."""
        if len(part) < 3 or part in "/?&#=;":
            return part
        kind = None
        if key in L.TOKEN_PARAMS or (key in L.SHORT_TOKEN_PARAMS and L.short_token(part)):
            kind = "URL"
        elif L.CRYPTO.fullmatch(part) and L.wallet_ok(part):
            kind = "CRYPTO"
        elif S.KEYS.fullmatch(part.removeprefix("bot")) or L.random_segment(
            part
        ):  # api.telegram.org/bot<token>
            kind = "SECRET"
        elif ("@" in part and L.EMAIL.fullmatch(part)) or ("%40" in part and L.EMAIL_PCT.fullmatch(part)):
            kind = "EMAIL"
        elif L.phone_in_url(part, key, host):
            return self._link_phone(part)  # https://wa.me/79161234567
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
        spaces = text.count(" ")
        seedy = S.seed_hint(text, spaces)
        if spaces >= 7 and P.SPELLED_GATE.search(low) and P.SPELLED_HINT.search(low):
            text = self.replace(text, P.spelled_phone_spans(text), "PHONE")  # a phone in words: 8+ words
        if longest < 16 and text.count(":") < 2 and _TRIGGER.search(low) is None and not seedy:
            return text  # most chat lines: no digit, no @, no keyword, no long token
        if V.noisy(text):
            # read through typographic noise; a text with a hit loses the invisible characters in it,
            # one without keeps every character
            stripped = V.strip(text)
            view = V.plain_view(stripped)
            if view != text:
                out = self._detect(
                    view,
                    view.lower(),
                    max(map(len, view.split()), default=0),
                    S.seed_hint(view, view.count(" ")),
                )
                return text if out == view else V.restore(stripped, view, out, _PLACEHOLDER)
        return self._detect(text, low, longest, seedy)

    def _detect(self, text: str, low: str, longest: int, seedy: bool) -> str:
        # each detector runs only when a cheap test on the original text says it could hit
        if longest >= 26:
            text = self._sub("CRYPTO", L.CRYPTO, text, lambda m, _: L.wallet_ok(m.group(0)))
        if (longest >= 16 and any(h in text for h in S.KEY_HINTS)) or "-----BEGIN" in text:
            text = self._sub("SECRET", S.KEYS, text)
        if "@" in text:
            text = self._sub("EMAIL", L.EMAIL, text)
            text = self._sub("EMAIL", L.EMAIL_NO_TLD, text)
        if "%40" in text:
            text = self._sub("EMAIL", L.EMAIL_PCT, text)
        if L.mailbox_hint(low):
            text = self._sub("EMAIL", L.MAILBOX_NAME, text, group="val")
        if _obfuscated_at(low):
            text = self.replace(text, L.obfuscated_email_spans(text), "EMAIL")
        if L.PROVIDER_HINT.search(low):  # after the spelled-out forms: "... at gmail dot com" is theirs
            text = self._sub("EMAIL", L.MAILBOX_AT_PROVIDER, text)
        if seedy:
            text = self.replace(text, S.seed_spans(text), "SEED")
        has_digit = _DIGIT.search(text) is not None
        many_digits = has_digit and N.SEVEN_DIGITS.search(text) is not None
        if many_digits:
            text = self._accounts(text, low)
        if has_digit:
            text = self._ids(text, low, many_digits)
            if text.count(".") >= 3:
                text = self._sub("IP", L.IPV4, text, L.ipv4_check, group=1)  # the port stays
        if has_digit and (text.count(":") >= 5 or text.count("-") >= 5):
            text = self._sub("ID", N.MAC, text, N.mac_check)
        if text.count(":") >= 2:
            text = self._sub("IP", L.IPV6, text, L.ipv6_check)
        text = self._keyworded(text, low, has_digit)
        if many_digits:
            text = self._phone_sub(text)
        if longest >= 24:
            text = self._sub("SECRET", S.LONG_TOKEN, text, S.long_token_check)
        return text

    def _accounts(self, text: str, low: str) -> str:
        """IBANs and national account numbers (before cards: their digit groups can pass the Luhn
        check), then cards."""
        if "\n" in text:  # a number broken by a line break first: its parts alone may pass as others
            text = self.replace(text, N.broken_iban_spans(text), "IBAN")
            text = self.replace(text, N.broken_card_spans(text), "CARD")
        if N.IBAN.search(text):
            text = self.replace(text, N.iban_spans(text), "IBAN")
        if N.ACCOUNT_HINT.search(low):
            text = self.replace(text, N.account_spans(text), "IBAN")
        return self.replace(text, N.card_spans(text), "CARD")

    def _ids(self, text: str, low: str, many_digits: bool) -> str:
        """Passports, SSNs, street addresses and other personal numbers: digits, most with a word beside them."""
        if _PASSPORT_WORD.search(low):
            text = self._sub("PASSPORT", N.PASSPORT, text, group="val")
        if many_digits:  # an SSN's 9 digits
            text = self._sub("SSN", N.SSN, text, N.ssn_check)
        if A.EN_HINT.search(low):
            text = self._sub("ADDRESS", A.ADDRESS_EN, text, A.address_en_check)
            text = self._sub("ADDRESS", A.ADDRESS_HOUSE_FIRST_EN, text, A.house_first_en_check)
        if not low.isascii() and A.RU_HINT.search(low):
            if A.house_first_hint(low):  # before the street-first rule: "доме 5 по улице ленина"
                text = self._sub("ADDRESS", A.ADDRESS_HOUSE_FIRST_RU, text, A.house_first_check)
            text = self._sub("ADDRESS", A.ADDRESS_RU, text, A.address_ru_check)
        if not low.isascii() and A.SI_HINT.search(text):
            text = self._sub("ADDRESS", A.ADDRESS_SI, text)
        if not low.isascii() and A.ta_hint(text):
            text = self._sub("ADDRESS", A.ADDRESS_TA, text)
        if "post" in low and "code" in low:
            text = self._sub("ADDRESS", A.POSTCODE_UK, text, group="val")
        if not text.islower():  # a capital letter somewhere
            text = self._sub("ADDRESS", A.POSTCODE_UK_WHOLE, text)
        if A.po_box_hint(low):
            text = self._sub("ADDRESS", A.PO_BOX, text)
        if A.STREET_FIRST_HINT.search(low):
            text = self._sub("ADDRESS", A.ADDRESS_STREET_FIRST, text, A.street_first_check)
        if A.translit_hint(low):
            text = self._sub("ADDRESS", A.ADDRESS_TRANSLIT, text, A.translit_check)
        if not low.isascii() and A.live_on_hint(low):
            text = self._sub("ADDRESS", A.ADDRESS_LIVE_ON, text, A.live_on_check, group="val")
        if (
            "адрес" in low or "address" in low or "adres" in low
        ):  # the rules above first: they know a flat, a unit, a postcode
            text = self._sub("ADDRESS", A.ADDRESS_AFTER_WORD, text, A.after_word_check, group="val")
        return self._personal_numbers(text, low, many_digits)

    def _personal_numbers(self, text: str, low: str, many_digits: bool) -> str:
        """National and tax IDs, dates of birth, map coordinates."""
        if N.ID_HINT.search(low):
            text = self._sub("ID", N.ID_NUMBER, text, N.id_check, group="val")
            text = self._sub("ID", N.NINO, text, group="val")
            if "инн" in low:  # a personal ИНН away from its word, by its check digits
                text = self._sub("ID", N.INN12, text, N.inn12_check)
        if many_digits:
            text = self._sub("ID", N.SNILS, text)
            text = self._sub("ID", N.NIC_OLD, text)
            if "-" in text:
                text = self._sub("ID", N.ID_FORMS, text)
        if "pan" in low:
            text = self._sub("ID", N.PAN, text, group="val")
        if N.DOB_HINT.search(low):
            text = self._sub("BIRTHDATE", N.BIRTHDATE, text, N.birthdate_check, group="val")
            text = self._sub("BIRTHDATE", N.BIRTHDATE_BEFORE, text, group="val")
        if text.count(".") >= 2:
            text = self._sub("LOCATION", A.COORDS, text, A.coords_check)
        if "°" in text:
            text = self._sub("LOCATION", A.COORDS_DMS, text)
        if (
            "vin" in low or "imei" in low or "вин" in low or "він" in low or "мей" in low
        ) and N.DEVICE_HINT.search(low):
            text = self._sub("ID", N.DEVICE_ID, text, N.device_check, group="val")
        if N.plate_hint(low):
            text = self._sub("ID", N.PLATE, text, group="val")
        return text

    def _keyworded(self, text: str, low: str, has_digit: bool) -> str:
        """Values after a keyword: passwords and codes (before phones: "код 48291573" is a code), keys."""
        if _PW_WORD.search(low):
            text = self._sub("PASSWORD", S.PASSWORD, text, S.password_check, group="val")
            text = self._sub("CODE", S.CODE, text, S.code_check, group="val")
            text = self._sub("CODE", S.CODE_FIRST, text, group="val")
        if has_digit and S.CODE_USE_HINT.search(low):
            text = self._sub("CODE", S.CODE_USE, text, group="val")
        if "/" in text and (
            "login" in low
            or "логін" in low
            or "логин" in low
            or "username" in low
            or "cred" in low
            or "учетк" in low
            or "учётк" in low
            or "облікові" in low
        ):
            text = self._sub("PASSWORD", S.LOGIN_PAIR, text, S.login_pair_check, group="val")
        if "wifi:" in low:
            text = self._sub("PASSWORD", S.WIFI_QR, text, group="val")
        if _KEY_WORD.search(low):
            text = self._sub("SECRET", S.TOKEN_KW, text, S.token_check, group="val")
        return text

    def _phone_sub(self, text: str) -> str:
        return self.replace(text, self.phones.spans(text), "PHONE")

    def _link_phone(self, part: str) -> str:
        """The digits of a messenger link (wa.me/380671234567, ?number=%2B94771234567): a phone of
        one of the regions, or an international number written without its "+"."""
        if self.phones.spans(part) or P.international(part):
            self.counts["PHONE"] += 1
            return "[PHONE]"
        return part


def scrub_messages(texts: Sequence[str], scrubber: Scrubber) -> list[str]:
    """Scrub consecutive messages of one conversation, each with the one before it in view.

    Every text goes through ``scrubber`` alone; then a short answer right after a message asking
    for a password, code, PIN or key ("what's the wifi password?" -> "pelican7") becomes that
    placeholder; a code given in parts ("48", "21") takes every part. One-word replies that hold
    ("sec", "щас") keep the question in view for the next message. A card number or a phone
    typed over several messages is replaced in each (:mod:`.pii_split`). Returns the scrubbed texts, one per input, in order.
    """
    out: list[str] = []
    asked: str | None = None
    for i, text in enumerate(texts):
        # a number cut in two: this message starts with its digits (the cheap test first); an IBAN's
        # second part before this message is scrubbed alone (its digits may pass as a phone)
        cut = i and text.lstrip("(:- +")[:1].isdigit() and out[-1] == texts[i - 1]
        clean = scrubber.scrub(T.iban_head(texts, i, scrubber, out) if cut else text)
        if cut and clean == text:
            clean = T.number_over_messages(texts, i, scrubber, out)
        if clean == text and -1 < text.find("?") < len(text) - 1:
            clean = _asked_and_answered(text, scrubber)  # "the password? it's tulip88"
        keep_asking = False
        if asked is not None and clean == text:
            span = answer_span(text, asked)
            if span is not None:
                clean = text[: span[0]] + f"[{asked}]" + text[span[1] :]
                scrubber.counts[asked] += 1
                # a code given in parts: "48" now, "21" in the next message
                keep_asking = asked == "CODE" and S.PART_OF_CODE.match(text.strip()) is not None
            else:
                keep_asking = text.strip().lower().rstrip(".!…") in S.HOLD
        out.append(clean)
        asked = asked if keep_asking else asked_secret(text, clean)
    return out


def _asked_and_answered(text: str, scrubber: Scrubber) -> str:
    """One message that asks for a secret and answers it after the question mark."""
    k = text.index("?") + 1
    kind = asked_secret(text[:k], text[:k])
    span = answer_span(text[k:], kind) if kind is not None and text[k:].strip() else None
    if span is None:
        return text
    scrubber.counts[kind] += 1
    return text[: k + span[0]] + f"[{kind}]" + text[k + span[1] :]
