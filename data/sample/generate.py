"""Generate the bundled sample: a Telegram Desktop whole-account export (``result.json``).

Deterministic (fixed seed, stdlib only): ``python data/sample/generate.py`` rewrites
``result.json`` and ``planted_pii.json`` byte for byte. The owner, Alex Morozov, writes in a
recognisable way so a tiny fine-tune has something to learn: lower-case, pet phrases ("sounds
good", "no worries", "tbh" / "короче", "ну такое", "давай"), a ")" smiley in Russian, 👍 and 😅 in
English, one-word answers to colleagues and long, warm ones to family and close friends.

Planted PII (every kind ``twin prepare`` scrubs) is listed with where it was planted in
``planted_pii.json``; none of those strings occurs anywhere else in the export.
"""

from __future__ import annotations

import base64
import json
import random
import string
from datetime import UTC, datetime, timedelta
from pathlib import Path

SEED = 20240601
SESSION_SCALE = 2.8  # sessions per week are multiplied by this: ~21k messages
HERE = Path(__file__).resolve().parent
TZ = timedelta(hours=3)  # the exporting machine's local time (Desktop writes wall time, no zone)
START = datetime(2024, 1, 8, tzinfo=UTC)
END = datetime(2024, 8, 20, tzinfo=UTC)
OWNER = {"user_id": 100000001, "first_name": "Alex", "last_name": "Morozov", "username": "alexmoroz"}
OWNER_NAME = "Alex Morozov"
NOT_INCLUDED = "(File not included. Change data exporting settings to download.)"

# name, user id, language, style of my replies (short | normal | long), sessions per week
CONTACTS = [
    ("Мама", 200000101, "ru", "long", 4.0),
    ("Папа", 200000102, "ru", "normal", 1.5),
    ("Катя", 200000103, "ru", "long", 5.0),
    ("Дима Соколов", 200000104, "ru", "normal", 3.0),
    ("Олег (работа)", 200000105, "ru", "short", 3.0),
    ("Наташа", 200000106, "ru", "normal", 1.5),
    ("Серёга", 200000107, "ru", "normal", 2.0),
    ("Бабушка", 200000108, "ru", "long", 1.0),
    ("Лена Ким", 200000109, "ru", "normal", 1.2),
    ("Артём Барбер", 200000110, "ru", "short", 0.6),
    ("Игорь Васильевич", 200000111, "ru", "short", 0.8),
    ("Sam Carter", 200000201, "en", "short", 3.0),
    ("Emily Chen", 200000202, "en", "long", 3.0),
    ("Mark Thompson", 200000203, "en", "short", 2.0),
    ("Jake", 200000204, "en", "normal", 2.0),
    ("Priya Patel", 200000205, "en", "normal", 1.5),
    ("Tom Wilson", 200000206, "en", "normal", 1.0),
    ("Olivia", 200000207, "en", "long", 1.5),
    ("Landlord Mike", 200000208, "en", "short", 0.5),
    ("Carlos Mendes", 200000209, "en", "normal", 0.8),
    ("Anna Smirnova", 200000210, "mix", "normal", 2.0),
    ("Max Bauer", 200000211, "mix", "normal", 1.0),
]

R = random.Random(SEED)

# ------------------------------------------------------------------ vocabulary
EN = {
    "day": ["tomorrow", "on friday", "this weekend", "on saturday", "tonight", "on sunday", "next week"],
    "time": ["at 7", "at 6:30", "around 8", "at noon", "at 7:45", "after 5", "at 19:00"],
    "place": [
        "the usual place",
        "that ramen spot",
        "Blue Bottle",
        "the park",
        "Joe's",
        "the mall",
        "my place",
    ],
    "food": ["pizza", "ramen", "tacos", "sushi", "burgers", "pho", "dim sum"],
    "movie": ["Dune 2", "the new Pixar one", "Oppenheimer", "that horror movie", "Poor Things", "Civil War"],
    "price": ["$12.50", "$40", "$8.99", "$120", "$15", "$3.75", "€25"],
    "thing": ["the report", "the slides", "the PR", "the budget sheet", "the release notes", "the invoice"],
    "version": ["v2.3.1", "1.14.0", "v3.0-beta", "2.0.7", "v1.9"],
    "order": ["order #48213", "order #55102", "order 77419", "ticket #3391", "order #60027"],
    "date": ["March 3rd", "the 15th", "Jan 20", "12/05", "April 2", "May 30"],
}
RU = {
    "day": ["завтра", "в пятницу", "на выходных", "в субботу", "сегодня вечером", "в воскресенье"],
    "time": ["в 7", "в 19:30", "к восьми", "в 12:00", "часов в 6", "в 18:15", "после работы"],
    "place": ["у метро", "в нашем кафе", "в парке", "у тебя", "в Шоколаднице", "на Чистых", "в ТЦ"],
    "food": ["пиццу", "суши", "шаурму", "пельмени", "хинкали", "бургеры", "блины"],
    "movie": ["Дюну", "новый сезон", "Мастера и Маргариту", "этот сериал", "Слово пацана"],
    "price": ["1500 ₽", "300 руб", "2 400 р.", "99 рублей", "12 000", "750₽"],
    "thing": ["отчёт", "презентацию", "таблицу", "ТЗ", "релиз", "договор"],
    "version": ["v2.3.1", "1.14.0", "версия 3.0", "2.0.7"],
    "order": ["заказ №48213", "заказ 55102", "номер заказа 77419", "заявка №3391"],
    "date": ["3 марта", "15-го", "20.01", "к 1 апреля", "30 мая"],
}

# Topics: beats of (speaker, variants). "me" lines are then styled by my_style().
TOPICS_EN = {
    "plans": [
        (
            "them",
            [
                "hey, free {day}?",
                "yo wanna grab {food} {day}?",
                "are we still on for {day}?",
                "any plans {day}?",
            ],
        ),
        ("me", ["yeah sure, what time?", "sounds good, when?", "yes! where?", "kinda busy but yeah, when?"]),
        (
            "them",
            ["{time} at {place}?", "how about {time}?", "{place} {time}, ok?", "{time}, i'll book a table"],
        ),
        ("me", ["sounds good 👍", "deal, see you there", "perfect, see you {time}", "works for me"]),
        ("them", ["cool", "great!", "👍", "see ya"]),
    ],
    "work": [
        (
            "them",
            [
                "did you see my message about {thing}?",
                "can you review {thing} today?",
                "quick q about {thing}",
                "hey, is {thing} ready?",
            ],
        ),
        (
            "me",
            ["lemme check", "yep, on it", "not yet, will do after lunch", "tbh i forgot, doing it now 😅"],
        ),
        (
            "them",
            [
                "thanks! need it by {time}",
                "no rush, {day} is fine",
                "ok, ping me when done",
                "cool, the client asked about it",
            ],
        ),
        ("me", ["sure", "no worries", "will do 👍", "ok, basically done, just fixing numbers"]),
    ],
    "movie": [
        ("them", ["have you seen {movie}?", "watched {movie} yesterday", "we should watch {movie}"]),
        (
            "me",
            [
                "not yet, is it good?",
                "yeah, it was kinda long but good",
                "haha yes, loved it",
                "tbh it wasn't my thing",
            ],
        ),
        (
            "them",
            [
                "it's amazing, the soundtrack!!",
                "meh, the ending was weird",
                "tickets are {price} now lol",
                "you have to see it on a big screen",
            ],
        ),
        ("me", ["ok ok, adding to my list", "haha fair", "let's go {day} then?", "no way, {price}?? 😅"]),
    ],
    "food": [
        ("them", ["i'm starving", "what are you eating?", "made {food} today", "ordered {food} again lol"]),
        ("me", ["haha same", "{food} sounds great rn", "nice, recipe?", "lol what a surprise"]),
        (
            "them",
            ["it was {price} with delivery", "it's super easy, i'll send it", "come over, there's plenty"],
        ),
        ("me", ["deal 👍", "no worries, next time", "sounds good, omw", "tbh i'd rather cook myself"]),
    ],
    "howareyou": [
        ("them", ["how are you?", "how's it going?", "long time no see!", "how was your week?"]),
        (
            "me",
            [
                "good, busy with work tbh. you?",
                "all good! kinda tired",
                "haha yeah, was crazy busy. you?",
                "not bad, you?",
            ],
        ),
        (
            "them",
            [
                "same, work is crazy",
                "pretty good, just got back from a trip",
                "tired but fine",
                "good! moving {day}",
            ],
        ),
        (
            "me",
            [
                "oh nice, where to?",
                "haha i feel you",
                "need help with the move?",
                "sounds good, let's catch up",
            ],
        ),
        ("them", ["yeah let's do {day}", "thanks!", "would be great", "sure, i'll text you"]),
    ],
    "tech": [
        (
            "them",
            ["my laptop is super slow again", "which version should i install?", "the app keeps crashing"],
        ),
        (
            "me",
            [
                "did you update? {version} fixed a lot",
                "try restarting first lol",
                "which version are you on?",
                "basically reinstall it, worked for me",
            ],
        ),
        ("them", ["i'm on {version}", "ok trying", "still broken", "worked! thanks"]),
        (
            "me",
            [
                "no worries 👍",
                "hmm weird, lemme check tonight",
                "update to {version}, should help",
                "haha told you",
            ],
        ),
    ],
    "shopping": [
        ("them", ["did your {order} arrive?", "got the package?", "i ordered the headphones, {price}"]),
        (
            "me",
            [
                "yep, {order} came {day}",
                "not yet, tracking says {date}",
                "nice, good price",
                "kinda expensive tbh",
            ],
        ),
        ("them", ["cool", "mine is late too", "it was on sale", "worth it"]),
    ],
    "weekend": [
        ("them", ["what did you do on the weekend?", "any fun plans for the weekend?", "weekend was great!"]),
        (
            "me",
            [
                "nothing much, just chilled",
                "went hiking, kinda tired now 😅",
                "haha slept all day",
                "saw friends, watched {movie}",
            ],
        ),
        ("them", ["nice", "jealous", "we went to the lake", "same lol"]),
        ("me", ["sounds good", "haha nice", "next time let's go together", "no worries, next weekend then"]),
    ],
}

TOPICS_RU = {
    "plans": [
        (
            "them",
            [
                "привет! ты {day} свободен?",
                "го {day} поедим {food}?",
                "мы {day} в силе?",
                "какие планы {day}?",
            ],
        ),
        ("me", ["да, давай, во сколько?", "давай) где?", "короче, да, когда?", "ну в принципе свободен"]),
        ("them", ["{time} {place}?", "давай {time}", "{place}, {time} норм?", "{time}, я столик забронирую"]),
        ("me", ["давай", "ок, понял 👌", "договорились)", "норм, до встречи"]),
        ("them", ["👍", "ок", "отлично!", "до встречи"]),
    ],
    "work": [
        (
            "them",
            [
                "глянешь {thing}?",
                "ты видел мое сообщение про {thing}?",
                "когда будет {thing}?",
                "нужен {thing} до {time}",
            ],
        ),
        ("me", ["щас гляну", "да, делаю", "короче, после обеда", "ок, понял"]),
        ("them", ["спасибо!", "{day} успеешь?", "там заказчик спрашивал", "ок, напиши как будет"]),
        ("me", ["да не вопрос", "ок", "сделаю)", "ну такое, но постараюсь"]),
    ],
    "mom": [
        (
            "them",
            ["Сыночек, ты поел?", "Как ты там? Не болеешь?", "Позвони, когда сможешь", "Ты оделся тепло?"],
        ),
        (
            "me",
            [
                "да мам, всё хорошо) поел, работаю",
                "привет, мам! всё норм, просто замотался на работе",
                "да, тепло, не переживай)",
                "щас не могу, вечером позвоню",
            ],
        ),
        (
            "them",
            [
                "Хорошо. Папа передает привет",
                "Приезжай {day}, я {food} сделаю",
                "Береги себя",
                "Ну ладно, целую",
            ],
        ),
        (
            "me",
            [
                "передавай привет) {day} постараюсь приехать",
                "ура, {food}! приеду обязательно",
                "спасибо, мам, целую",
                "люблю тебя) не волнуйся",
            ],
        ),
    ],
    "movie": [
        ("them", ["смотрел {movie}?", "вчера посмотрели {movie}", "давай посмотрим {movie}"]),
        ("me", ["ещё нет, норм?", "ну такое, затянуто", "ахах да, огонь", "короче, не моё"]),
        ("them", ["очень круто, советую", "концовка странная", "билеты {price} уже", "надо в кино смотреть"]),
        ("me", ["ок, добавил в список)", "ахах ну да", "давай {day}", "{price}?? ну такое"]),
    ],
    "food": [
        ("them", ["есть хочу ужасно", "что ешь?", "приготовила {food}", "опять заказал {food}"]),
        ("me", ["ахах аналогично", "{food} звучит отлично", "о, рецепт скинешь?", "ну кто бы сомневался)"]),
        ("them", ["с доставкой {price} вышло", "там легко, скину", "приходи, много осталось"]),
        ("me", ["давай)", "да не вопрос, в следующий раз", "иду", "короче, сам приготовлю"]),
    ],
    "howareyou": [
        ("them", ["как дела?", "как ты?", "сто лет не виделись!", "как неделя?"]),
        (
            "me",
            [
                "норм, работы много. ты как?",
                "да всё ок, устал немного)",
                "ахах, да, завал был. как ты?",
                "потихоньку, ты как?",
            ],
        ),
        ("them", ["тоже завал", "отлично, вернулась из отпуска", "нормально", "переезжаю {day}"]),
        ("me", ["о, куда ездила?", "понимаю", "помочь с переездом?", "давай встретимся)"]),
        ("them", ["давай {day}", "спасибо!", "было бы супер", "ок, спишемся"]),
    ],
    "tech": [
        ("them", ["ноут опять тормозит", "какую версию ставить?", "приложение вылетает"]),
        (
            "me",
            [
                "обновись, в {version} много починили",
                "перезагрузи для начала)",
                "а какая версия?",
                "короче, переустанови, мне помогло",
            ],
        ),
        ("them", ["стоит {version}", "пробую", "всё равно не работает", "заработало! спасибо"]),
        ("me", ["да не вопрос", "хм странно, вечером гляну", "обнови до {version}", "ахах я же говорил"]),
    ],
    "shopping": [
        ("them", ["пришёл твой {order}?", "посылку получил?", "заказала наушники, {price}"]),
        ("me", ["да, {order} пришёл {day}", "ещё нет, пишут {date}", "норм цена", "ну такое, дороговато"]),
        ("them", ["класс", "мой тоже задерживается", "была скидка", "оно того стоит"]),
    ],
    "football": [
        ("them", ["смотрел вчера матч?", "ну и игра была", "{day} играем в футбол, придёшь?"]),
        (
            "me",
            [
                "да, ну такое, защита никакая",
                "ахах да, второй тайм огонь",
                "давай, во сколько?",
                "короче, не успел посмотреть",
            ],
        ),
        ("them", ["{time}, как обычно", "судья вообще ослеп", "счёт 2:1 в итоге", "возьми мяч"]),
        ("me", ["ок, буду", "ну такое судейство)", "ок, понял 👌", "давай"]),
    ],
}

SHORT_EN = ["ok", "👍", "sure", "yep", "ok 👍", "will do", "np", "sounds good"]
SHORT_RU = ["ок", "👍", "ага", "ок, понял 👌", "сделаю", "давай", "да", "норм"]
LONG_EN = [
    "how's your week going btw?",
    "miss you guys tbh, we should hang out more",
    "tell me how it went later, i wanna know everything",
    "i'm stuck at work all day but free tonight, so just text me whenever",
    "btw are you free this weekend? kinda want to go somewhere",
]
LONG_RU = [
    "как у тебя дела, кстати?",
    "соскучился уже, давно не виделись)",
    "расскажи потом, как прошло, мне правда интересно",
    "я сегодня весь день на работе, вечером наберу",
    "кстати, на выходных свободна? короче, хочется куда-нибудь выбраться",
]
THEM_EXTRA_EN = ["lol", "btw", "also", "oh and", "😂", "haha", "wait"]
THEM_EXTRA_RU = ["кстати", "ахаха", "😂", "слушай", "а, и ещё", "блин"]
STICKERS = ["😂", "👍", "❤️", "😅", "🔥", "🙃", "😭"]
CHANNELS = ["Tech News", "Медуза", "Funny Cats", "NASA", "Лентач", "Hacker News Digest"]


# ------------------------------------------------------------------ planted PII
def luhn_complete(prefix: str, length: int) -> str:
    """A card number starting with ``prefix`` with the Luhn check digit appended."""
    body = prefix + "".join(R.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return body + str((10 - total % 10) % 10)


def iban_make(country: str, bban: str) -> str:
    digits = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(digits) % 97
    return f"{country}{check:02d}{bban}"


def group4(s: str) -> str:
    return " ".join(s[i : i + 4] for i in range(0, len(s), 4))


def rand_str(alphabet: str, n: int) -> str:
    return "".join(R.choice(alphabet) for _ in range(n))


ALNUM = string.ascii_letters + string.digits


def b64url(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode().rstrip("=")


def planted_values() -> list[tuple[str, str, str]]:
    """(type, value, message template) — ``{v}`` is where the value goes."""
    card1 = luhn_complete("427638", 16)
    card2 = luhn_complete("55", 16)
    card3 = luhn_complete("4", 16)
    jwt = (
        b64url({"alg": "HS256", "typ": "JWT"})
        + "."
        + b64url({"sub": "alexmoroz", "iat": 1712000000, "role": "admin"})
        + "."
        + rand_str(ALNUM + "-_", 43)
    )
    return [
        ("EMAIL", "alex.morozov.dev@gmail.com", "my new email is {v}, the old one is dead"),
        ("EMAIL", "katya.sun@yandex.ru", "пиши лучше на почту {v}"),
        ("EMAIL", "m.thompson@northwind-corp.com", "please cc {v} on the invoice"),
        ("EMAIL", "dima_sokolov88@mail.ru", "скинь на {v}"),
        ("PHONE", "+7 916 482-73-15", "мой новый номер {v}, старый не работает"),
        ("PHONE", "+1 646 555 0143", "call me at {v} if i'm late"),
        ("PHONE", "+44 20 7946 0958", "the london office number is {v}"),
        ("PHONE", "8 (903) 718-24-56", "запиши номер мастера: {v}"),
        ("PHONE", "(415) 555-2671", "my cell is {v}"),
        ("PHONE", "+49 30 90182736", "hotel in berlin: {v}"),
        ("CARD", group4(card1), "кидай на карту {v}"),
        ("CARD", card2, "use my card {v} for the tickets"),
        ("CARD", "-".join(group4(card3).split()), "card: {v}, exp 09/27"),
        ("IBAN", group4(iban_make("DE", "370400440532013000")), "my IBAN is {v}"),
        ("IBAN", iban_make("GB", "WEST12345698765432"), "rent goes to {v} from now on"),
        ("IBAN", group4(iban_make("FR", "20041010050500013M02606")), "реквизиты: IBAN {v}"),
        ("IP", "185.143.172.44", "the server is at {v}, ssh in"),
        ("IP", "192.168.88.17", "роутер на {v}"),
        ("IP", "2a02:6b8:c0e:501::1:2f", "ipv6 of the box: {v}"),
        ("SECRET", "sk-proj-" + rand_str(ALNUM, 40), "here's the openai key {v} don't share"),
        ("SECRET", "ghp_" + rand_str(ALNUM, 36), "github token {v}"),
        ("SECRET", "xoxb-" + rand_str(string.digits, 11) + "-" + rand_str(ALNUM, 24), "slack bot token: {v}"),
        ("SECRET", "AKIA" + rand_str(string.ascii_uppercase + string.digits, 16), "aws key id {v}"),
        ("SECRET", "AIza" + rand_str(ALNUM + "-_", 35), "maps api key {v}"),
        ("SECRET", "glpat-" + rand_str(ALNUM, 20), "токен гитлаба {v}"),
        ("SECRET", jwt, "вот jwt для теста {v}"),
        ("SECRET", rand_str(ALNUM, 40), "the staging secret is {v}"),
        ("PASSWORD", "Sunflower42!", "wifi password is {v}"),
        ("PASSWORD", "kotik2024", "пароль от вайфая: {v}"),
        ("PASSWORD", "Tr0ub4dor&3", "pass: {v}"),
        ("PASSWORD", "Qwerty_789z", "мой пароль {v}, только никому"),
        ("PASSWORD", "blue-Horse-93", "the password for netflix is {v}"),
        ("CODE", "7391", "PIN is {v}"),
        ("CODE", "482915", "код из смс {v}"),
        ("CODE", "615204", "the verification code is {v}"),
        ("CODE", "2580", "пин-код от карты {v}"),
        ("URL", "https://admin:Xy7pQ2rs@files.northwind-corp.com/backup.zip", "backup is here {v}"),
        ("URL", "https://api.example.com/v1/export?format=csv&token=9f8e7d6c5b4a392817", "export link: {v}"),
        ("URL", "https://drive.example.org/share?id=18&access_token=Zx81kq0LmN", "держи ссылку {v}"),
        ("CRYPTO", "0x52908400098527886E0F7030069857D2E4169EE7", "send the usdt to {v} (erc20 only)"),
        ("CRYPTO", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", "мой биткоин-кошелёк {v}"),
    ]


# ------------------------------------------------------------------ message building
class Export:
    def __init__(self) -> None:
        self.personal_id = 1000  # personal chats share one id sequence in Telegram

    def next_id(self) -> int:
        self.personal_id += R.randint(1, 3)
        return self.personal_id


def stamp(t: datetime) -> dict:
    t = t.replace(microsecond=0)
    return {"date": (t + TZ).replace(tzinfo=None).isoformat(), "date_unixtime": str(int(t.timestamp()))}


def entities_for(text: str, entity: tuple[str, str] | None) -> tuple[object, list]:
    """Desktop's ``text`` (string, or list of strings and {type, text}) and ``text_entities``."""
    if not entity or entity[1] not in text:
        return text, ([{"type": "plain", "text": text}] if text else [])
    kind, val = entity
    i = text.index(val)
    parts: list = []
    ents = []
    if text[:i]:
        parts.append(text[:i])
        ents.append({"type": "plain", "text": text[:i]})
    parts.append({"type": kind, "text": val})
    ents.append({"type": kind, "text": val})
    if text[i + len(val) :]:
        parts.append(text[i + len(val) :])
        ents.append({"type": "plain", "text": text[i + len(val) :]})
    return parts, ents


def message(mid: int, t: datetime, sender: tuple[str | None, int], text: str, entity=None, **extra) -> dict:
    msg = {"id": mid, "type": "message", **stamp(t), "from": sender[0], "from_id": f"user{sender[1]}"}
    msg.update(extra)
    msg["text"], msg["text_entities"] = entities_for(text, entity)
    return msg


def fill(template: str, vocab: dict) -> str:
    out = template
    for key, values in vocab.items():
        token = "{" + key + "}"
        while token in out:
            out = out.replace(token, R.choice(values), 1)
    return out


def my_style(text: str, lang: str, style: str) -> str:
    if style == "short" and R.random() < 0.7:
        return R.choice(SHORT_RU if lang == "ru" else SHORT_EN)
    if style == "long" and R.random() < 0.35:
        text = (
            text
            + (". " if not text.endswith((")", "!", "?", "👍", "👌", "😅")) else " ")
            + R.choice(LONG_RU if lang == "ru" else LONG_EN)
        )
    if lang == "ru":
        if R.random() < 0.12 and not text.startswith(("короче", "ну")):
            text = R.choice(["короче, ", "ну "]) + text
        if R.random() < 0.25 and not text.endswith((")", "👌", "?")):
            text += ")"
    else:
        if R.random() < 0.1 and not text.startswith(("haha", "tbh")):
            text = R.choice(["haha ", "tbh ", "basically "]) + text
        if R.random() < 0.15 and not text.endswith(("👍", "😅", "?")):
            text += R.choice([" 👍", " 😅"])
    return text[0].lower() + text[1:] if text[:1].isupper() and R.random() < 0.85 else text


def contact_lang(lang: str) -> str:
    return R.choice(["ru", "en"]) if lang == "mix" else lang


def build_personal(
    exp: Export, name: str, uid: int, lang: str, style: str, per_week: float, pii: list
) -> dict:
    me = (OWNER_NAME, OWNER["user_id"])
    them = (name, uid)
    msgs: list[dict] = []
    t = START + timedelta(hours=R.uniform(0, 72))
    planted_here = [p for p in pii]
    mean_gap_h = 24 * 7 / (per_week * SESSION_SCALE)
    while t < END:
        lang_s = contact_lang(lang)
        topics = TOPICS_RU if lang_s == "ru" else TOPICS_EN
        vocab = RU if lang_s == "ru" else EN
        keys = list(topics)
        if name == "Мама" or name == "Бабушка":
            keys = ["mom", "mom", "food", "howareyou"]
        chosen = [R.choice(keys) for _ in range(R.choice([1, 1, 2, 2, 3]))]
        for topic in chosen:
            for speaker, variants in topics[topic]:
                if speaker == "them" and R.random() < 0.08:
                    continue  # they do not always answer every beat
                text = fill(R.choice(variants), vocab)
                sender = them if speaker == "them" else me
                if speaker == "me":
                    text = my_style(text, lang_s, style)
                t += timedelta(seconds=R.choice([8, 20, 45, 90, 180, 600, 1500]) * R.uniform(0.5, 1.5))
                extra: dict = {}
                if msgs and R.random() < 0.06:
                    extra["reply_to_message_id"] = msgs[-1]["id"]
                if R.random() < 0.03:
                    et = (t + timedelta(seconds=R.randint(5, 120))).replace(microsecond=0)
                    extra["edited"] = (et + TZ).replace(tzinfo=None).isoformat()
                    extra["edited_unixtime"] = str(int(et.timestamp()))
                # several short messages in a row, the way people type
                if speaker == "them" and R.random() < 0.2:
                    msgs.append(
                        message(
                            exp.next_id(),
                            t,
                            sender,
                            R.choice(THEM_EXTRA_RU if lang_s == "ru" else THEM_EXTRA_EN),
                        )
                    )
                    t += timedelta(seconds=R.randint(3, 30))
                msgs.append(message(exp.next_id(), t, sender, text, None, **extra))
                if speaker == "me" and style == "long" and R.random() < 0.25:
                    t += timedelta(seconds=R.randint(3, 40))
                    msgs.append(message(exp.next_id(), t, sender, R.choice(["❤️", "😘", ")", "😅", "👍"])))
        # extras: stickers, photos, voice, forwards, calls, links
        r = R.random()
        t += timedelta(seconds=R.randint(20, 600))
        sender = R.choice([me, them])
        if r < 0.12:
            msgs.append(
                message(
                    exp.next_id(),
                    t,
                    sender,
                    "",
                    file=NOT_INCLUDED,
                    thumbnail=NOT_INCLUDED,
                    media_type="sticker",
                    sticker_emoji=R.choice(STICKERS),
                    width=512,
                    height=512,
                )
            )
        elif r < 0.2:
            cap = R.choice(
                ["", "", "смотри какой вид", "вот", "ахах"]
                if lang_s == "ru"
                else ["", "", "look", "lol", "the view from the office"]
            )
            msgs.append(message(exp.next_id(), t, sender, cap, photo=NOT_INCLUDED, width=1280, height=960))
        elif r < 0.24:
            msgs.append(
                message(
                    exp.next_id(),
                    t,
                    sender,
                    "",
                    file=NOT_INCLUDED,
                    media_type="voice_message",
                    mime_type="audio/ogg",
                    duration_seconds=R.randint(3, 60),
                )
            )
        elif r < 0.29:
            msgs.append(
                message(
                    exp.next_id(),
                    t,
                    sender,
                    R.choice(
                        [
                            "this is wild",
                            "это правда?",
                            "Scientists found water on the Moon again",
                            "читай до конца",
                        ]
                    ),
                    forwarded_from=R.choice(CHANNELS),
                )
            )
            t += timedelta(seconds=R.randint(10, 120))
            msgs.append(
                message(
                    exp.next_id(),
                    t,
                    them if sender == me else me,
                    my_style("ахах", "ru", style)
                    if lang_s == "ru" and sender == them
                    else (my_style("haha wow", "en", style) if sender == them else "😂"),
                )
            )
        elif r < 0.32:
            msgs.append(
                {
                    "id": exp.next_id(),
                    "type": "service",
                    **stamp(t),
                    "actor": sender[0],
                    "actor_id": f"user{sender[1]}",
                    "action": "phone_call",
                    "duration_seconds": R.randint(20, 900),
                    "text": "",
                    "text_entities": [],
                }
            )
        elif r < 0.35:
            url = R.choice(
                [
                    "https://youtu.be/dQw4w9WgXcQ",
                    "https://github.com/huggingface/peft",
                    "https://habr.com/ru/articles/712345/",
                    "https://maps.app.goo.gl/xyz",
                ]
            )
            msgs.append(
                message(
                    exp.next_id(),
                    t,
                    sender,
                    f"{url} глянь" if lang_s == "ru" else f"check this {url}",
                    ("link", url),
                )
            )
        # a planted PII value, in about one session out of 12 until all are placed
        if planted_here and R.random() < 0.15:
            kind, val, tmpl = planted_here.pop(0)
            sender = R.choice([me, them])
            t += timedelta(seconds=R.randint(20, 300))
            ent = {"EMAIL": "email", "PHONE": "phone", "URL": "link"}.get(kind)
            m = message(exp.next_id(), t, sender, tmpl.format(v=val), (ent, val) if ent else None)
            msgs.append(m)
            pii_log.append({"type": kind, "value": val, "chat": name, "message_id": m["id"]})
            t += timedelta(seconds=R.randint(20, 300))
            other = them if sender == me else me
            reply = "ок, спасибо" if lang_s == "ru" else "got it, thanks"
            msgs.append(
                message(exp.next_id(), t, other, my_style(reply, lang_s, style) if other == me else reply)
            )
        t += timedelta(hours=R.expovariate(1 / mean_gap_h)) + timedelta(hours=R.choice([0, 2, 26, 30]))
    assert not planted_here, f"{name}: not every planted value was placed"
    return {"name": name, "type": "personal_chat", "id": uid, "messages": msgs}


pii_log: list[dict] = []


def build_group(me: tuple) -> dict:
    members = [
        ("Дима Соколов", 200000104),
        ("Серёга", 200000107),
        ("Лена Ким", 200000109),
        ("Паша", 200000301),
    ]
    gid = 4000000001
    msgs = [
        {
            "id": 1,
            "type": "service",
            **stamp(START + timedelta(days=2)),
            "actor": OWNER_NAME,
            "actor_id": f"user{me[1]}",
            "action": "create_group",
            "title": "Друзья 🍻",
            "members": [OWNER_NAME] + [m[0] for m in members],
            "text": "",
            "text_entities": [],
        }
    ]
    t = START + timedelta(days=2, minutes=5)
    mid = 1
    while t < END:
        for _ in range(R.randint(3, 10)):
            mid += 1
            sender = R.choice([*members, me])
            text = fill(
                R.choice(
                    [
                        "кто {day}?",
                        "я за",
                        "го {food}",
                        "{time} {place}",
                        "ахах",
                        "не могу",
                        "скинь фотки",
                        "кто смотрел {movie}?",
                        "ну такое",
                        "давай",
                    ]
                ),
                RU,
            )
            t += timedelta(seconds=R.randint(10, 900))
            msgs.append(message(mid, t, sender, text))
        t += timedelta(hours=R.uniform(20, 120))
    mid += 1
    msgs.append(
        {
            "id": mid,
            "type": "service",
            **stamp(t),
            "actor": "Лена Ким",
            "actor_id": "user200000109",
            "action": "invite_members",
            "members": ["Оля"],
            "text": "",
            "text_entities": [],
        }
    )
    return {"name": "Друзья 🍻", "type": "private_group", "id": gid, "messages": msgs}


def build_bot(exp: Export, me: tuple) -> dict:
    bot = ("BotFather", 93372553)
    msgs = []
    t = START + timedelta(days=40)
    token = "7041829365:AA" + rand_str(ALNUM + "_-", 33)
    pii_log.append({"type": "SECRET", "value": token, "chat": "BotFather", "message_id": None})
    script = [
        (me, "/newbot"),
        (bot, "Alright, a new bot. How are we going to call it? Please choose a name for your bot."),
        (me, "weather helper"),
        (bot, "Good. Now let's choose a username for your bot. It must end in `bot`."),
        (me, "alex_weather_helper_bot"),
        (
            bot,
            f"Done! Congratulations on your new bot. Use this token to access the HTTP API:\n{token}\n"
            "Keep your token secure and store it safely.",
        ),
        (me, "/mybots"),
        (bot, "Choose a bot from the list below:"),
    ]
    for sender, text in script:
        t += timedelta(seconds=R.randint(5, 60))
        m = message(exp.next_id(), t, sender, text, ("code", token) if token in text else None)
        if token in text:
            pii_log[-1]["message_id"] = m["id"]
        msgs.append(m)
    return {"name": "BotFather", "type": "bot_chat", "id": bot[1], "messages": msgs}


def build_saved(exp: Export, me: tuple) -> dict:
    msgs = []
    t = START + timedelta(days=5)
    notes = [
        "купить: молоко, хлеб, яйца",
        "idea: bot that summarizes chats",
        "паспорт продлить до 15.09",
        "dentist on the 12th at 15:00",
        "книги: Мастер и Маргарита, Sapiens",
        "flight SU 2134, gate 12",
    ]
    for i in range(40):
        t += timedelta(days=R.uniform(1, 5))
        msgs.append(message(exp.next_id(), t, me, notes[i % len(notes)]))
    t += timedelta(days=1)
    m = message(exp.next_id(), t, me, "роутер: логин admin, пароль — Rtr!pass9931")
    pii_log.append(
        {"type": "PASSWORD", "value": "Rtr!pass9931", "chat": "Saved Messages", "message_id": m["id"]}
    )
    msgs.append(m)
    return {"type": "saved_messages", "id": OWNER["user_id"], "messages": msgs}


def build_deleted(exp: Export, me: tuple) -> dict:
    gone = (None, 200000999)
    msgs = []
    t = START + timedelta(days=60)
    lines = [
        (gone, "hi, is the bike still for sale?"),
        (me, "yep"),
        (gone, "how much?"),
        (me, "$150, kinda firm"),
        (gone, "can you do $120?"),
        (me, "$140 and it's yours"),
        (gone, "deal, tomorrow at 6?"),
        (me, "sounds good 👍"),
    ]
    for _ in range(4):
        for sender, text in lines:
            t += timedelta(seconds=R.randint(30, 400))
            msgs.append(message(exp.next_id(), t, sender, text))
        t += timedelta(days=R.uniform(2, 9))
    return {"name": "Deleted Account", "type": "personal_chat", "id": gone[1], "messages": msgs}


def generate() -> tuple[dict, list[dict]]:
    exp = Export()
    me = (OWNER_NAME, OWNER["user_id"])
    planted = planted_values()
    # spread planted values over the one-to-one chats
    per_chat: dict[str, list] = {c[0]: [] for c in CONTACTS}
    names = [c[0] for c in CONTACTS]
    for i, p in enumerate(planted):
        ru = any("а" <= ch <= "я" for ch in p[2])
        pool = [c[0] for c in CONTACTS if ((c[2] == "ru") == ru or c[2] == "mix") and c[4] >= 1.5]
        per_chat[pool[i % len(pool)] if pool else names[i % len(names)]].append(p)
    chats = [build_saved(exp, me)]
    for name, uid, lang, style, per_week in CONTACTS:
        chats.append(build_personal(exp, name, uid, lang, style, per_week, per_chat[name]))
    chats.append(build_bot(exp, me))
    chats.append(build_deleted(exp, me))
    chats.append(build_group(me))
    export = {
        "about": "Here is the data you requested. Remember: Telegram is ad free, it doesn't sell your data.",
        "personal_information": {**OWNER, "phone_number": "+7 999 000 00 00", "bio": "coffee & code"},
        "chats": {"about": "This page lists all chats from this export.", "list": chats},
    }
    return export, list(pii_log)


def main() -> None:
    export, planted = generate()
    text = json.dumps(export, ensure_ascii=False, indent=1)
    # a planted value must occur only where it was planted, or "not in processed" proves nothing
    for p in planted:
        n = text.count(p["value"])
        assert n >= 1, p
    (HERE / "result.json").write_text(text + "\n", encoding="utf-8")
    (HERE / "planted_pii.json").write_text(
        json.dumps(planted, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    n_msgs = sum(len(c["messages"]) for c in export["chats"]["list"])
    print(
        f"wrote {HERE / 'result.json'}: {len(export['chats']['list'])} chats, {n_msgs} messages, "
        f"{len(text.encode()) / 1e6:.1f} MB; {len(planted)} planted PII values"
    )


if __name__ == "__main__":
    main()
