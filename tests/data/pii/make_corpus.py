"""Builds the labeled PII corpus files in this directory (run once; the files are committed).

The values come from the numbering/checksum rules themselves (Luhn, ISO 13616 mod-97, real
area codes, key formats from vendor docs), not from twin's scrubber, so the test measures the
scrubber against independent ground truth. ``positives.tsv``: type, value, snippet (the snippet
contains the value). ``clean.txt``: chat lines with no PII at all, full of times, dates, prices,
versions and order numbers, one per line.
"""

import base64
import hashlib
import json
import random
import string
from pathlib import Path

R = random.Random(7)
HERE = Path(__file__).parent
ALNUM = string.ascii_letters + string.digits


def luhn(prefix: str, length: int) -> str:
    body = prefix + "".join(R.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return body + str((10 - total % 10) % 10)


def iban(country: str, bban: str) -> str:
    n = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{country}{98 - n % 97:02d}{bban}"


def digits(n: int) -> str:
    return "".join(R.choice(string.digits) for _ in range(n))


def rs(alphabet: str, n: int) -> str:
    return "".join(R.choice(alphabet) for _ in range(n))


FIRST = ["anna", "john", "maria", "ivan", "olga", "peter", "kate", "dmitry", "lisa", "sergey", "emma", "alex"]
LAST = ["smith", "petrova", "brown", "ivanov", "lee", "kuznetsov", "garcia", "novak", "chen", "orlov"]
DOMAINS = [
    "gmail.com",
    "yandex.ru",
    "mail.ru",
    "outlook.com",
    "company.io",
    "uni-bonn.de",
    "example.org",
    "proton.me",
    "bk.ru",
    "icloud.com",
    "startup.co.uk",
]


def email() -> str:
    f, ln = R.choice(FIRST), R.choice(LAST)
    user = R.choice(
        [
            f"{f}.{ln}",
            f"{f}{ln[:1]}",
            f"{f}_{ln}{R.randint(1, 99)}",
            f"{ln}.{f}+work",
            f"{f}{R.randint(70, 99)}",
        ]
    )
    return f"{user}@{R.choice(DOMAINS)}"


def phone() -> str:
    kind = R.randrange(9)
    if kind == 0:
        a = R.choice(["212", "415", "646", "312", "617", "202", "305", "718", "510", "206"])
        return f"+1 ({a}) {R.randint(201, 989)}-{digits(4)}"
    if kind == 1:
        a = R.choice(["212", "415", "646", "312", "617", "202"])
        return R.choice(
            [
                f"({a}) {R.randint(201, 989)}-{digits(4)}",
                f"{a}-{R.randint(201, 989)}-{digits(4)}",
                f"{a}.{R.randint(201, 989)}.{digits(4)}",
            ]
        )
    op = R.choice(["903", "905", "916", "926", "985", "999", "977", "921", "912"])
    a, b, c = digits(3), digits(2), digits(2)
    if kind == 2:
        return f"+7 ({op}) {a}-{b}-{c}"
    if kind == 3:
        return f"+7{op}{a}{b}{c}"
    if kind == 4:
        return R.choice([f"8 ({op}) {a}-{b}-{c}", f"8 {op} {a} {b} {c}", f"8{op}{a}{b}{c}"])
    if kind == 5:
        return f"+44 20 7{digits(3)} {digits(4)}"
    if kind == 6:
        return f"+49 30 {R.randint(2, 9)}{digits(7)}"
    if kind == 7:
        return f"+33 6 {digits(2)} {digits(2)} {digits(2)} {digits(2)}"
    return f"+7 495 {R.randint(2, 9)}{digits(2)}-{digits(2)}-{digits(2)}"


def card() -> str:
    num = luhn(R.choice(["4", "4276", "51", "55", "2200", "2202", "37", "6011"]), R.choice([16, 16, 16, 15]))
    style = R.randrange(3)
    if style == 0:
        return num
    sep = " " if style == 1 else "-"
    return sep.join(num[i : i + 4] for i in range(0, len(num), 4))


def iban_value() -> str:
    country, bban = R.choice(
        [
            ("DE", lambda: digits(18)),
            ("GB", lambda: R.choice(["WEST", "BARC", "NWBK"]) + digits(14)),
            ("FR", lambda: digits(10) + rs(string.ascii_uppercase + string.digits, 11) + digits(2)),
            ("NL", lambda: R.choice(["ABNA", "INGB", "RABO"]) + digits(10)),
            ("ES", lambda: digits(20)),
            ("IT", lambda: R.choice(string.ascii_uppercase) + digits(10) + digits(12)),
            ("CH", lambda: digits(17)),
            ("PL", lambda: digits(24)),
            ("AT", lambda: digits(16)),
            ("BE", lambda: digits(12)),
        ]
    )
    v = iban(country, bban())
    return v if R.random() < 0.4 else " ".join(v[i : i + 4] for i in range(0, len(v), 4))


def ip() -> str:
    k = R.randrange(5)
    if k == 0:
        return f"192.168.{R.randint(0, 255)}.{R.randint(1, 254)}"
    if k == 1:
        return f"10.{R.randint(0, 255)}.{R.randint(0, 255)}.{R.randint(1, 254)}"
    if k == 2:
        return f"{R.randint(11, 223)}.{R.randint(0, 255)}.{R.randint(0, 255)}.{R.randint(1, 254)}"
    if k == 3:
        return f"2001:db8:{R.randint(1, 0xFFFF):x}::{R.randint(1, 0xFFFF):x}"
    return ":".join(f"{R.randint(0, 0xFFFF):x}" for _ in range(8))


def b64url(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


def secret() -> str:
    k = R.randrange(13)
    return [
        lambda: "sk-" + rs(ALNUM, 48),
        lambda: "sk-proj-" + rs(ALNUM + "_-", 56),
        lambda: "ghp_" + rs(ALNUM, 36),
        lambda: "github_pat_" + rs(ALNUM, 22) + "_" + rs(ALNUM, 59),
        lambda: "xoxb-" + digits(12) + "-" + digits(13) + "-" + rs(ALNUM, 24),
        lambda: "AKIA" + rs(string.ascii_uppercase + string.digits, 16),
        lambda: "AIza" + rs(ALNUM + "_-", 35),
        lambda: "glpat-" + rs(ALNUM + "_-", 20),
        lambda: (
            b64url({"alg": "RS256", "typ": "JWT"})
            + "."
            + b64url({"sub": digits(8), "exp": 1735689600})
            + "."
            + rs(ALNUM + "_-", 86)
        ),
        lambda: "hf_" + rs(ALNUM, 34),
        lambda: digits(10) + ":AA" + rs(ALNUM + "_-", 33),
        lambda: "sk_live_" + rs(ALNUM, 24),
        lambda: rs(ALNUM, R.choice([32, 40, 48])),
    ][k]()


def password() -> str:
    return R.choice(
        [
            lambda: (
                R.choice(["Sunflower", "Dragon", "Kotik", "Summer", "Winter", "Moscow", "Qwerty"])
                + digits(R.randint(2, 4))
                + R.choice(["!", "", "#", "_"])
            ),
            lambda: rs(ALNUM + "!@#$%", R.randint(8, 14)),
            lambda: R.choice(["kotik", "zaya", "sobaka", "hunter", "masha", "pass"]) + digits(4),
        ]
    )()


def code() -> str:
    return digits(R.choice([4, 4, 6, 6, 5]))


def url() -> tuple[str, str, str]:
    """(secret part, link, the link as scrubbed: only the secret part replaced)."""
    host = R.choice(
        ["files.corp.com", "api.service.io", "drive.example.org", "s3.amazonaws.com", "cloud.mail.ru"]
    )
    if R.random() < 0.4:
        user, pw = R.choice(FIRST), rs(ALNUM, 10)
        path = R.choice(["backup.zip", "x", "share/12"])
        return f"{user}:{pw}", f"https://{user}:{pw}@{host}/{path}", f"https://[URL]@{host}/{path}"
    param = R.choice(["token", "access_token", "api_key", "key", "sig", "auth", "X-Amz-Signature", "session"])
    head = (
        f"https://{host}/{R.choice(['v1/export', 'share', 'dl', 'invite'])}?id={R.randint(1, 999)}&{param}="
    )
    tok = rs(ALNUM, R.randint(12, 40))
    return tok, head + tok, head + "[URL]"


TEMPLATES = {
    "EMAIL": (
        email,
        [
            "my email is {v}",
            "write to {v} pls",
            "пиши на {v}",
            "почта: {v}",
            "send it to {v}, thanks!",
            "мой мейл {v} если что",
            "cc {v} and me",
            "{v}",
            "contact: {v}.",
            "скинь на почту {v}, ок?",
        ],
    ),
    "PHONE": (
        phone,
        [
            "call me at {v}",
            "мой номер {v}",
            "his number: {v}",
            "позвони по {v}",
            "tel {v}",
            "номер курьера {v}, он ждёт",
            "whatsapp {v}",
            "{v} — это мама",
            "new number {v}!",
            "звони {v}",
        ],
    ),
    "CARD": (
        card,
        [
            "card {v}",
            "кинь на карту {v}",
            "my card number is {v}",
            "номер карты: {v}",
            "pay with {v} exp 11/26",
            "{v} сбер",
            "use {v} for the booking",
            "перевод на {v} пожалуйста",
        ],
    ),
    "IBAN": (
        iban_value,
        [
            "IBAN: {v}",
            "my iban is {v}",
            "реквизиты {v}",
            "send the deposit to {v}",
            "счёт IBAN {v}, получатель я",
            "{v}",
        ],
    ),
    "IP": (
        ip,
        [
            "server ip {v}",
            "ssh to {v}",
            "сервер на {v}",
            "ping {v} pls",
            "the box is {v}:22",
            "айпишник {v}",
            "my ip is {v} right now",
        ],
    ),
    "SECRET": (
        secret,
        [
            "key {v}",
            "here's the token: {v}",
            "токен {v}",
            "export API_KEY={v}",
            "use {v} for now",
            "вот ключ {v} не свети",
            "Authorization: Bearer {v}",
            "{v}",
        ],
    ),
    "PASSWORD": (
        password,
        [
            "password: {v}",
            "пароль: {v}",
            "my password is {v}",
            "пароль от вайфая {v}",
            "wifi pass - {v}",
            "пароль {v}",
            "the password for the account is {v}",
            "pwd={v}",
            "пароль от почты: {v}",
            "pass: {v}",
        ],
    ),
    "CODE": (
        code,
        [
            "the code is {v}",
            "код {v}",
            "PIN: {v}",
            "пин-код {v}",
            "код из смс {v}",
            "verification code: {v}",
            "otp {v}",
            "код подтверждения: {v}",
            "my pin is {v}",
            "код домофона {v}",
        ],
    ),
    "URL": (
        url,
        ["link {v}", "держи {v}", "download here: {v}", "{v}", "вот ссылка {v} !", "open {v} and log in"],
    ),
}
COUNTS = {
    "EMAIL": 45,
    "PHONE": 60,
    "CARD": 40,
    "IBAN": 30,
    "IP": 35,
    "SECRET": 50,
    "PASSWORD": 30,
    "CODE": 30,
    "URL": 20,
}


def positives() -> list[tuple[str, str, str, str]]:
    """(type, value, snippet, expected): expected is the snippet with only the value replaced."""
    rows = []
    for kind, n in COUNTS.items():
        make, templates = TEMPLATES[kind]
        for i in range(n):
            v = make()
            tpl = templates[i % len(templates)]
            if kind == "URL":
                secret, link, scrubbed = v
                rows.append((kind, secret, tpl.format(v=link), tpl.format(v=scrubbed)))
            elif kind == "IP" and ":" in v and "{v}:22" in tpl:  # a port after IPv6 needs brackets
                rows.append((kind, v, tpl.format(v=f"[{v}]"), tpl.format(v="[[IP]]")))
            else:
                rows.append((kind, v, tpl.format(v=v), tpl.format(v=f"[{kind}]")))
    return rows + new_positives() + ROUND2_POSITIVES + ROUND3_POSITIVES


# --- issue 10 items 3-5: split codes, plain-word passwords, links, crypto, answers -------------
# A second generator so the rows above stay exactly as they were.
R2 = random.Random(10)
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
B32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def base58check(payload: bytes) -> str:
    """Base58Check as Bitcoin addresses use it (version byte + hash160 + 4-byte double-SHA256)."""
    raw = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    n, out = int.from_bytes(raw, "big"), ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return "1" * (len(raw) - len(raw.lstrip(b"\0"))) + out


def bech32_polymod(values: list[int]) -> int:
    gen = [0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3]
    chk = 1
    for v in values:
        b = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if (b >> i) & 1 else 0
    return chk


def segwit_address(program: bytes, version: int = 0) -> str:
    """BIP-173 (v0, bech32) / BIP-350 (v1+, bech32m) address with hrp "bc"."""
    acc, bits, data = 0, 0, [version]
    for byte in program:
        acc, bits = (acc << 8) | byte, bits + 8
        while bits >= 5:
            bits -= 5
            data.append((acc >> bits) & 31)
    if bits:
        data.append((acc << (5 - bits)) & 31)
    const = 1 if version == 0 else 0x2BC830A3
    hrp = [ord(c) >> 5 for c in "bc"] + [0] + [ord(c) & 31 for c in "bc"]
    mod = bech32_polymod(hrp + data + [0] * 6) ^ const
    return "bc1" + "".join(B32[d] for d in data + [(mod >> 5 * (5 - i)) & 31 for i in range(6)])


def crypto() -> str:
    k = R2.randrange(4)
    if k == 0:
        return "0x" + "".join(R2.choice("0123456789abcdefABCDEF") for _ in range(40))
    if k == 1:
        return base58check(bytes([R2.choice([0, 5])]) + R2.randbytes(20))
    if k == 2:
        return segwit_address(R2.randbytes(20))
    return segwit_address(R2.randbytes(32), version=1)


def split_code() -> str:
    return f"{R2.randint(100, 999)}{R2.choice(['-', ' '])}{R2.randint(0, 999):03d}"


WORD_PASSWORDS = [
    "sunshine", "bluebird", "correcthorsebatterystaple", "qwerty", "dragonfly", "pelican", "marmalade",
    "admin", "letmein", "monkey", "butterfly", "starlight", "iloveyou", "princess", "football",
]  # fmt: skip

NEW_TEMPLATES: dict[str, list[str]] = {
    "CODE": [
        "code: {v}",
        "your code: {v}",
        "sms code {v}",
        "код {v}",
        "код из смс: {v}",
        "verification code {v}",
        "пин-код {v}",
        "the code is {v}",
        "код подтверждения {v}, никому не говори",
        "otp: {v}",
    ],  # fmt: skip
    "PASSWORD": [
        "my password is {w}",
        "пароль {w}",
        "the pass is {w}",
        "wifi password: {w}",
        "пароль от вайфая {w}",
        "the wifi password is {w}",
        "мой пароль {w}, только никому",
        "password is {w} lol",
        "пароль: {w}",
        "our password is {w}",
    ],  # fmt: skip
    "CRYPTO": [
        "send it to {v}",
        "мой кошелёк {v}",
        "wallet: {v}",
        "USDT на {v} пожалуйста",
        "{v}",
        "https://basescan.org/token/{v}#balances",
        "https://etherscan.io/address/{v}",
        "https://mempool.space/address/{v}",
        "адрес {v}, сеть правильная",
        "my btc address is {v}",
    ],  # fmt: skip
}


def new_positives() -> list[tuple[str, str, str, str]]:
    rows = []
    for i in range(24):
        v = split_code()
        tpl = NEW_TEMPLATES["CODE"][i % 10]
        rows.append(("CODE", v, tpl.format(v=v), tpl.format(v="[CODE]")))
    for i in range(24):
        w = WORD_PASSWORDS[i % len(WORD_PASSWORDS)]
        tpl = NEW_TEMPLATES["PASSWORD"][i % 10]
        rows.append(("PASSWORD", w, tpl.format(w=w), tpl.format(w="[PASSWORD]")))
    for i in range(24):
        v = crypto()
        tpl = NEW_TEMPLATES["CRYPTO"][i % 10]
        rows.append(("CRYPTO", v, tpl.format(v=v), tpl.format(v="[CRYPTO]")))
    for i in range(10):  # a link's secret-like path part: the rest of the link stays
        v = "".join(R2.choice(ALNUM) for _ in range(R2.choice([24, 33, 44])))
        links = [
            ("https://hooks.slack.com/services/T04ABCD12/B05EFGH34/{v}", "webhook {link}"),
            ("https://docs.google.com/document/d/{v}/edit", "доку смотри тут {link}"),
        ]
        link, tpl = links[i % 2]
        rows.append(
            ("SECRET", v, tpl.format(link=link.format(v=v)), tpl.format(link=link.format(v="[SECRET]")))
        )
    return rows


# (question, answer, type) where the answer is the secret: the placeholder replaces the answer's value
ANSWERED = [
    ("what's the wifi password?", "{pw}", "PASSWORD"),
    ("какой пароль от вайфая?", "{pw}", "PASSWORD"),
    ("скинь код из смс", "{code}", "CODE"),
    ("what's your PIN?", "{pin}", "CODE"),
    ("password?", "it's {pw}", "PASSWORD"),
    ("пароль?", "{pw}", "PASSWORD"),
    ("send me the code pls", "{code}", "CODE"),
    ("пришли код подтверждения", "{code}", "CODE"),
    ("what's the door code?", "{pin}.", "CODE"),
    ("код домофона какой?", "{pin}", "CODE"),
    ("can you give me the api key?", "{key}", "SECRET"),
    ("скинь токен", "{key}", "SECRET"),
    ("what is the wifi password", "{pw}", "PASSWORD"),
    ("напиши пароль от почты", "«{pw}»", "PASSWORD"),
    ("what's the otp?", "{code6}", "CODE"),
]
# (question, answer): the answer is not a secret and survives
SURVIVES = [
    ("what's the wifi password?", "ok"),
    ("what's the wifi password?", "I forgot it"),
    ("when do we meet?", "12:30"),
    ("what's the code?", "sec"),
    ("скинь код из смс", "щас"),
    ("какой пароль?", "не помню"),
    ("what's your PIN?", "why?"),
    ("did the code review go well?", "yes"),
    ("how much was it?", "4500"),
    ("what time?", "19:30"),
    ("какой у тебя этаж?", "12"),
    ("what's the password for the wifi?", "no idea, ask Sam"),
    ("пароль от вайфая?", "забыл"),
    ("how many people?", "1200"),
    ("what's the room number?", "4821"),
    ("do you have the key?", "nope"),
    ("where's the key?", "downstairs"),
    ("код какой?", "ща гляну"),
    ("что по коду?", "всё ок"),
    ("what's the password?", "👍"),
    ("which flight?", "SU2134"),
    ("got the code?", "not yet"),
    ("password?", "later"),
    ("what's the score?", "3:1"),
    ("пин какой?", "тот же"),
    ("password?", "sure!"),
    ("what's the code?", "ok."),
    ("do you remember the wifi password?", "maybe"),
    ("what's the wifi password?", "it's on the fridge"),
    ("what's the key to the garage?", "downstairs"),
]


def dialogs() -> list[tuple[str, str, str, str, str]]:
    """(type, value, question, answer, expected answer); type is "" where the answer survives."""
    rows = []
    for i in range(len(ANSWERED) * 2):
        q, a, kind = ANSWERED[i % len(ANSWERED)]
        vals = {
            "pw": R2.choice(WORD_PASSWORDS + ["pelican7", "Qwerty123!", "kotik2024", "h0rse_Battery"]),
            "code": R2.choice([str(R2.randint(1000, 999999)), split_code()]),
            "code6": f"{R2.randint(0, 999999):06d}",
            "pin": f"{R2.randint(0, 9999):04d}",
            "key": "".join(R2.choice(ALNUM) for _ in range(R2.randint(10, 20))) + str(R2.randint(0, 9)),
        }
        v = next(vals[k] for k in vals if "{" + k + "}" in a)
        rows.append((kind, v, q, a.format(**vals), a.format(**dict.fromkeys(vals, f"[{kind}]"))))
    for q, a in SURVIVES * 2:
        rows.append(("", "", q, a, a))
    return rows


CLEAN_NEW = [
    "https://github.com/huggingface/peft/commit/4f2e4a2e1b8c9d0e7f6a5b4c3d2e1f0a9b8c7d6e",
    "see https://github.com/pytorch/pytorch/blob/9c3b1e2f4a5d6e7f8091a2b3c4d5e6f708192a3b/README.md",
    "https://gist.github.com/karpathy/d4dee566867f8291f086",
    "https://en.wikipedia.org/wiki/Bitcoin is a good start",
    "https://pypi.org/project/transformers/5.0.0/",
    "https://youtu.be/dQw4w9WgXcQ",
    "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42s",
    "https://t.me/durov",
    "https://example.com/docs?page=2&lang=ru",
    "https://arxiv.org/abs/2106.09685",
    "https://huggingface.co/tiiuae/falcon-7b/tree/main",
    "https://docs.python.org/3/library/re.html#re.sub",
    "https://store.steampowered.com/app/1091500/",
    "читай https://habr.com/ru/companies/yandex/articles/801234/ там всё есть",
    "https://www.ozon.ru/product/kofemashina-1234567/?sh=abc",
    "https://etherscan.io/tx/0x5c504ed432cb51138bcf09aa5e8a410dd4a1e204ef84bfed1be16dfba1b22060",
    "https://basescan.org/token/ERC20#balances",
    "https://news.ycombinator.com/item?id=39812345",
    "https://stackoverflow.com/questions/11227809/why-is-processing-a-sorted-array-faster",
    "https://maps.google.com/?q=Red+Square",
    "the password is case-sensitive",
    "the password is on the sticky note",
    "I changed my password yesterday",
    "пароль должен быть длиннее 12 символов",
    "пароль не подходит, сброшу",
    "the mountain pass is closed today",
    "my boarding pass is in the app",
    "pass the charger please",
    "code 200 means ok",
    "код ревью завтра в 11",
    "we need more code comments",
    "pin the message in the chat",
    "the pin is broken on my jacket",
    "отправил код на ревью",
    "key takeaways from the talk: ship small",
    "the token economy talk was boring",
    "0x1F is 31 in decimal",
    "fee was 0.0001 BTC",
    "ETH at 3 500 again",
    "btc went up 3% today",
    "my wallet is in the car",
    "кошелёк дома забыл",
    "what's the wifi password? I forgot",
    "скинь код, который ты писал вчера",
    "the password manager is 1Password",
    "пин-код от карты поменял",
    "passwords should be long, not clever",
    "the code is on GitHub",
    "код на гитхабе, ссылку скину",
    "the sms never came",
    "session 3 starts at 14:00",
    "секретный ингредиент — любовь",
    "I passed the exam!",
    "passport photos are ready",
    "the api key is in the vault, not in chat",
    "ключ под ковриком",
    "commit 9fceb02 broke the build",
    "the sha256 of the file matches, all good",
    "the word password is banned here",
    "code: see the attached file",
    "пароль: спроси у админа",
    "wifi is down again",
]


CLEAN_EN = [
    "see you at {t}",
    "meeting moved to {t} on {d}",
    "it was {p}, kinda pricey",
    "the flight lands at {t}",
    "updated to {v}, works fine now",
    "my {o} still hasn't arrived",
    "we won {s}!",
    "train leaves at {t}, platform {n}",
    "rent is {p} per month",
    "can you do {d} instead?",
    "it's {n} km from here",
    "room {n}, floor {f}",
    "{n} people signed up already",
    "lunch was {p} for two",
    "battery at {n}%",
    "python {v} broke my venv lol",
    "the score was {s} at half time",
    "i'll be there in {n} minutes",
    "it weighs {w}",
    "order total {p}, shipping free",
    "deadline is {d} at {t}",
    "temperature is {n}°C today",
    "chapter {n}, page {n}",
    "their {o} got cancelled",
    "we need {n} chairs and {n} tables",
    "i paid {p} for the tickets",
    "{d} works, {t}?",
    "bus {n} at {t}",
]
CLEAN_RU = [
    "встречаемся в {t}",
    "перенесли на {d} в {t}",
    "вышло {p}, дороговато",
    "поезд в {t}, платформа {n}",
    "обновился до {v}, всё норм",
    "мой {o} так и не пришёл",
    "выиграли {s}!",
    "аренда {p} в месяц",
    "давай {d}?",
    "это {n} км отсюда",
    "кабинет {n}, {f} этаж",
    "уже {n} человек записались",
    "обед {p} на двоих",
    "заряд {n}%",
    "счёт {s} в перерыве",
    "буду через {n} минут",
    "весит {w}",
    "итого {p}, доставка бесплатно",
    "дедлайн {d} в {t}",
    "сегодня {n} градусов",
    "глава {n}, страница {n}",
    "их {o} отменили",
    "нужно {n} стульев",
    "билеты {p}",
    "{d} ок, в {t}?",
    "автобус {n} в {t}",
]
T = ["7", "7:30", "19:45", "08:00", "12:15", "6pm", "10:30am", "23:59", "18:00:00", "9.30"]
D = [
    "2024-03-15",
    "15.03.2024",
    "03/15/2024",
    "March 15",
    "15 марта",
    "the 3rd",
    "1 апреля 2025",
    "12/05",
    "Monday",
    "2023-12-31",
    "31.12",
]
P = [
    "$12.50",
    "$1,299.99",
    "€45",
    "1500 ₽",
    "2 400 руб.",
    "£7.20",
    "99.90",
    "12 000 р",
    "$3",
    "350 000 рублей",
]
V = ["3.11.2", "v2.0.1", "1.14.0-rc1", "18.04", "v10.2.3", "5.4.0-150-generic", "2.31.0", "v1.2.3.4"]
ORDERS = [
    "order #123456",
    "order #48151623",
    "order 4815162342",
    "заказ №12345678",
    "ticket #99812",
    "invoice 2024-000123",
    "заказ 1029384756",
    "parcel RA123456789RU",
    "booking ref XK7Q2P",
    "order no. 20240315001",
]
S = ["3:1", "2-0", "101:99", "4:4", "0:2"]
N = ["3", "12", "45", "250", "1000", "1,250", "7", "86", "2024", "15", "1 000 000", "64"]
F = ["2", "5", "12", "3rd"]
W = ["1.5 kg", "300 g", "2,5 кг", "12 lbs"]


HANDWRITTEN = [
    "call me at 7 when you're free",
    "the mountain pass was closed because of snow",
    "ping me at 10:30",
    "my pin code? no idea lol",
    "http code 200 means ok",
    "commit a1b2c3d fixed it",
    "request id 123e4567-e89b-12d3-a456-426614174000 failed",
    "pass the salt please",
    "он сдал на пять",
    "код ревью в 15:00",
    "пароль? не помню, потом скажу",
    "the password is on the sticky note, ask Sam",
    "кинь код в чат, я гляну",
    "version 2.7.18 is ancient",
    "ip? no idea, ask the admin",
    "the meeting is at 14:00-15:30 in room 4.12",
    "+5 to that",
    "1-800 numbers are free lol",
    "we scored 3-2-1",
    "it costs 4 999 ₽ on sale",
    "см. пункт 3.2.1 договора",
    "коды ответа 404 и 500",
    "the 2024-2025 season starts soon",
    "ISBN 978-3-16-148410-0",
    "tracking: 1Z999AA10123456784",
    "it's 10,000 steps a day",
    "pi is 3.14159265358979",
    "my score: 1 234 567 points!!",
    "flight SU 2134 departs 06:40",
    "call at 9-10 tomorrow",
    "ставка 7,5% годовых",
    "the https://example.com/docs page is down",
    "см https://habr.com/ru/articles/712345/",
    "what a passionate speech",
    "ok passing by the shop now",
    "компьютер с кодовым названием Орёл",
]


def clean() -> list[str]:
    out = set(HANDWRITTEN)
    while len(out) < 340:
        tpl = R.choice(CLEAN_EN + CLEAN_RU)
        line = tpl
        for key, vals in (
            ("{t}", T),
            ("{d}", D),
            ("{p}", P),
            ("{v}", V),
            ("{o}", ORDERS),
            ("{s}", S),
            ("{n}", N),
            ("{f}", F),
            ("{w}", W),
        ):
            while key in line:
                line = line.replace(key, R.choice(vals), 1)
        out.add(line)
    return sorted(out | set(CLEAN_NEW) | set(CLEAN_ROUND3))


# issue 19: seed phrases, street addresses, passports, SSNs (hand-written; values from the rules:
# BIP39 phrases from the `mnemonic` generator, SSN area/group/serial rules)
ROUND2_POSITIVES = [
    (
        "SEED",
        "dance sample radio elder uncle cancel negative zone flame lend donkey law",
        "seed: dance sample radio elder uncle cancel negative zone flame lend donkey law",
        "seed: [SEED]",
    ),
    (
        "SEED",
        "join live jacket tourist mango wrestle retire sleep biology ski three prefer",
        "join live jacket tourist mango wrestle retire sleep biology ski three prefer",
        "[SEED]",
    ),
    (
        "SEED",
        "leg boy peasant lock faint chief stairs meat evolve zero rate deny",
        "сид фраза: leg boy peasant lock faint chief stairs meat evolve zero rate deny ок?",
        "сид фраза: [SEED] ок?",
    ),
    (
        "SEED",
        "mimic wagon upgrade trap kite father wait detail convince afraid road park",
        "mimic wagon upgrade trap kite father wait detail convince afraid road park.",
        "[SEED].",
    ),
    (
        "SEED",
        "endless vault champion torch perfect cheap message proud naive much border broom",
        "мнемоніка endless vault champion torch perfect cheap message proud naive much border broom",
        "мнемоніка [SEED]",
    ),
    ("ADDRESS", "221B Baker Street", "I live at 221B Baker Street now", "I live at [ADDRESS] now"),
    (
        "ADDRESS",
        "42 Maple Ave, apt 3",
        "party at 42 Maple Ave, apt 3 — come at 8",
        "party at [ADDRESS] — come at 8",
    ),
    ("ADDRESS", "17 oak road", "new place: 17 oak road", "new place: [ADDRESS]"),
    ("ADDRESS", "ул. Ленина, д. 5, кв. 12", "адрес: ул. Ленина, д. 5, кв. 12", "адрес: [ADDRESS]"),
    ("ADDRESS", "проспект Мира 15к2", "приезжай на проспект Мира 15к2", "приезжай на [ADDRESS]"),
    ("ADDRESS", "вул. Хрещатик, 22, кв. 5", "адреса: вул. Хрещатик, 22, кв. 5", "адреса: [ADDRESS]"),
    (
        "ADDRESS",
        "дом 14 корпус 3 квартира 88",
        "дом 14 корпус 3 квартира 88, домофон не работает",
        "[ADDRESS], домофон не работает",
    ),
    ("PASSPORT", "45 12 345678", "паспорт 45 12 345678", "паспорт [PASSPORT]"),
    ("PASSPORT", "4512 номер 345678", "серия 4512 номер 345678, выдан ОВД", "серия [PASSPORT], выдан ОВД"),
    ("PASSPORT", "A12345678", "my passport number is A12345678", "my passport number is [PASSPORT]"),
    ("PASSPORT", "548792316", "passport no. 548792316", "passport no. [PASSPORT]"),
    ("PASSPORT", "СН 123456", "паспорт СН 123456, виданий 2001", "паспорт [PASSPORT], виданий 2001"),
    ("SSN", "123-45-6789", "SSN 123-45-6789", "SSN [SSN]"),
    ("SSN", "078 05 1120", "my social security number is 078 05 1120", "my social security number is [SSN]"),
    ("SSN", "219-09-9999", "for the form: 219-09-9999 is mine", "for the form: [SSN] is mine"),
    ("SSN", "536904471", "ssn: 536904471", "ssn: [SSN]"),
]


# issue 18, round 3: national/tax IDs (RU ИНН of a person has 12 digits, СНИЛС 11 with its own layout,
# UA РНОКПП 10, Sri Lanka NIC 12 or 9 + V/X), dates of birth, coordinates, street-first addresses.
ROUND3_POSITIVES = [
    ("ID", "500100732259", "мой ИНН 500100732259, для налоговой", "мой ИНН [ID], для налоговой"),
    ("ID", "112-233-445 95", "СНИЛС 112-233-445 95", "СНИЛС [ID]"),
    ("ID", "112-233-445 95", "вот 112-233-445 95 для работы", "вот [ID] для работы"),
    ("ID", "3012345678", "мій РНОКПП: 3012345678", "мій РНОКПП: [ID]"),
    (
        "ID",
        "3012345678",
        "ідентифікаційний код 3012345678 треба в банк",
        "ідентифікаційний код [ID] треба в банк",
    ),
    ("ID", "199012345678", "my NIC is 199012345678", "my NIC is [ID]"),
    ("ID", "901234567V", "NIC no 901234567V", "NIC no [ID]"),
    ("ID", "852345678V", "mage 852345678V eka", "mage [ID] eka"),
    ("ID", "AB1234567", "national id number AB1234567", "national id number [ID]"),
    ("BIRTHDATE", "12.03.1990", "дата рождения 12.03.1990", "дата рождения [BIRTHDATE]"),
    ("BIRTHDATE", "03/12/1990", "born 03/12/1990 in Kyiv", "born [BIRTHDATE] in Kyiv"),
    ("BIRTHDATE", "12 March 1990", "I was born on 12 March 1990", "I was born on [BIRTHDATE]"),
    ("BIRTHDATE", "1990-03-12", "DOB: 1990-03-12", "DOB: [BIRTHDATE]"),
    ("BIRTHDATE", "5 травня 1988", "народився 5 травня 1988", "народився [BIRTHDATE]"),
    ("BIRTHDATE", "12.03.1990", "д.р. 12.03.1990", "д.р. [BIRTHDATE]"),
    ("LOCATION", "50.450123, 30.523456", "я тут 50.450123, 30.523456 приходи", "я тут [LOCATION] приходи"),
    ("LOCATION", "50.4501, lon 30.5234", "lat 50.4501, lon 30.5234", "lat [LOCATION]"),
    ("LOCATION", "6.9271° N, 79.8612° E", "we're at 6.9271° N, 79.8612° E", "we're at [LOCATION]"),
    ("ADDRESS", "Horodotska St 12", "I live at Horodotska St 12, Lviv", "I live at [ADDRESS], Lviv"),
    ("ADDRESS", "Main Street 5, apt 3", "my address: Main Street 5, apt 3", "my address: [ADDRESS]"),
    ("ADDRESS", "Hauptstraße 12, 10115 Berlin", "Hauptstraße 12, 10115 Berlin", "[ADDRESS]"),
    ("ADDRESS", "Khreshchatyk Street 22", "meet me at Khreshchatyk Street 22", "meet me at [ADDRESS]"),
]
CLEAN_ROUND3 = [
    "Main Street 5 minutes away from here",
    "we walked down Baker Street 3 times",
    "my birthday is on the 12th, come over",
    "born in 1990, so what",
    "the ratio was 3.1415, 2.7182 and so on",
    "ИНН компании 7707083893 в счёте",
    "ЄДРПОУ 14360570 на сайті банку",
    "score 2.500, 1.250 after the update",
    "version 10.2.3, 10.2.4 both fine",
    "Spring 2025 collection is out",
    "room 12, floor 3",
    "id 12 and id 13 are duplicates",
]

if __name__ == "__main__":
    with (HERE / "positives.tsv").open("w", encoding="utf-8") as f:
        f.write("type\tvalue\tsnippet\texpected\n")
        for row in positives():
            f.write("\t".join(row) + "\n")
    with (HERE / "dialogs.tsv").open("w", encoding="utf-8") as f:
        f.write("type\tvalue\tquestion\tanswer\texpected\n")
        for row in dialogs():
            f.write("\t".join(row) + "\n")
    (HERE / "clean.txt").write_text("\n".join(clean()) + "\n", encoding="utf-8")
