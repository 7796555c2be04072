"""Per-person writing habits for ``bench.gen_export --voices``: every person sounds like themselves.

Without voices the generator draws every message, the owner's and the contacts', from the same
phrase pools, so an owner-vs-contacts verifier is at chance on its exports and they cannot say
whether a twin sounds like the owner. Here each person (the owner and each contact) gets a
:class:`Voice` drawn from the seed and their id: the languages they write in and how often they
switch, their own favourite phrases (a personal, Zipf-weighted share of the pools), favourite
filler words, how long their messages run, lower case or capitalised, how they end a message
(nothing, ".", "!!!", "...", ")"), their emoji and how often, how they spell laughter, and typos.

The owner is drawn like anyone else: no habit is in every message (a filler word in at most ~35%
of them, a laugh in at most ~15%), so the owner is told apart by a blend of habits, as a real
person is, and a generic model does not sound like them by accident.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

LANGS = ("en", "ru", "uk", "si")

POOLS = {
    "en": [
        "hey, free tomorrow?", "sounds good", "what time?", "at 7:30 near the park", "ok", "no worries",
        "did you see the game yesterday? crazy second half", "i'll be there in 10 minutes",
        "can you review the PR today? the client asked about it", "tickets are $45 each", "same",
        "running late, sorry", "updated to v2.3.1 and it works now", "i forgot", "how was your trip?",
        "let's do lunch on friday at 12:30", "it was amazing, photos later", "call me when you're free",
        "happy birthday", "where are you?", "almost home", "just woke up", "omw", "wanna come?",
        "not sure yet", "works for me", "send me the link", "see you there", "my phone died",
        "i'm so tired", "love it", "fair enough", "makes sense", "deal", "no way", "that's wild",
        "gonna grab coffee first", "good luck with the exam", "traffic is insane today",
        "can't tonight, maybe sunday", "did you eat?", "the meeting moved to 3", "got it, thanks",
        "who's coming?", "i'll bring snacks", "on the train now", "that movie was so good",
        "what do you think?", "let me check and get back to you", "yes please", "nope",
    ],
    "ru": [
        "привет, как дела?", "норм, ты как?", "давай в 19:30 у метро", "ну такое", "я опоздаю",
        "ок, понял", "скинь фотки", "вышло 1500 ₽ на двоих", "завтра созвон в 11:00, не забудь",
        "обновись до 1.14.0, там починили", "давай", "спасибо", "я уже дома", "с днём рождения",
        "перезвоню через час", "как доехал?", "отлично, фотки позже", "ты где?", "уже выхожу",
        "щас буду", "не знаю пока", "мне норм", "кто идёт?", "я возьму еду", "еду в метро",
        "фильм огонь", "что думаешь?", "посмотрю и отпишусь", "да, давай", "неа", "поел?",
        "встречу перенесли на 3", "понял, спасибо", "пробки жуткие", "сегодня не могу, может в воскресенье",
        "удачи на экзамене", "телефон сел", "устал как собака", "согласен", "логично", "договорились",
        "да ладно", "сначала за кофе", "скинь ссылку", "увидимся там",
    ],
    "uk": [
        "привіт, як справи?", "все добре, а ти?", "давай о 19:30 біля метро", "я вже вдома",
        "скинь фотки", "дякую", "зателефоную через годину", "як доїхав?", "чудово, фото потім",
        "завтра о 11:00 дзвінок, не забудь", "я трохи запізнюсь", "шо робиш?", "нічого собі", "та ну",
        "з днем народження", "може завтра?", "вийшло 400 грн на двох", "побачимось у п'ятницю",
        "я на роботі", "йду додому", "не знаю ще", "гарна ідея", "домовились", "де ти?",
        "вже виходжу", "хто йде?", "їду в метро", "що думаєш?", "подивлюсь і напишу", "так, давай",
        "ні", "поїв?", "зустріч перенесли на 3", "зрозумів, дякую", "телефон сів", "втомився",
        "згоден", "сьогодні не можу", "скинь посилання", "удачі на іспиті",
    ],
    "si": [
        "කොහොමද?", "හොඳයි, ඔයාට කොහොමද?", "හෙට හම්බවෙමු", "මම ගෙදර ආවා", "පොඩ්ඩක් පරක්කු වෙයි",
        "ෆොටෝ එවන්න", "ස්තූතියි", "පැයකින් කෝල් කරන්නම්", "කෑවද?", "හරි හරි", "මට බැහැ අද",
        "උපන්දිනයට සුභ පැතුම්", "කොහෙද ඉන්නේ?", "එන්නම්", "ගමන කොහොමද?", "machan enawada?",
        "ok ok poddak inna", "mata baha ada", "kohomada?", "api heta yamu", "kawda enne?",
        "mama gedara", "hari hari", "kaeweda?", "bus eke inne", "heta kathakaramu",
    ],
}  # fmt: skip

FILLERS = {
    "en": ["literally", "basically", "honestly", "kinda", "tbh", "ngl", "actually", "anyway", "mate",
           "dude", "i mean", "oh well", "yep", "welp", "totally", "legit", "low key", "ah"],
    "ru": ["короче", "типа", "ну", "слушай", "кстати", "вообще", "блин", "ладно", "капец", "прикинь",
           "в общем", "чё", "походу", "реально", "жесть"],
    "uk": ["ну", "слухай", "до речі", "взагалі", "короче", "капець", "шо", "ого", "отже", "блін", "реально"],
    "si": ["අනේ", "ඉතින්", "මචං", "අඩෝ", "නේද", "machan", "ane", "aiyo", "ela"],
}  # fmt: skip

LAUGHS = {
    "en": ["lol", "haha", "hahaha", "lmao", "😂", "🤣", "hehe", "LOL"],
    "ru": ["хаха", "ахах", "ахахах", "хД", "😂", "ржу", "хех", "))"],
    "uk": ["хаха", "ахах", "😂", "гг", "хех", "ахахаха"],
    "si": ["😂", "haha", "hehe", "අපෝ 😂", "🤣"],
}
EMOJI = ["👍", "😅", "🙏", "❤️", "🔥", "😊", "🙈", "👌", "😎", "🤔", "😭", "✨", "🥲", "😁", "🙃"]
ENDINGS = ("", ".", "!", "!!!", "...", ")")


@dataclass
class Voice:
    """How one person writes; :meth:`say` draws one message's plain text."""

    langs: list[str]  # the languages they write in, their own first
    switch: float  # chance a fragment is in one of their other languages
    phrases: dict[str, list[str]]  # their own share of each language's pool, favourites first
    fillers: list[str]
    filler_rate: float
    more_fragments: float  # chance of one more fragment (message length)
    lower: float  # chance a message is all lower case (else first letter capitalised)
    endings: list[float]  # weights over ENDINGS
    emoji: list[str]
    emoji_rate: float
    laughs: list[str]
    laugh_rate: float
    typo_rate: float

    def say(self, r: random.Random, chat_lang: str) -> str:
        n = 1
        while n < 5 and r.random() < self.more_fragments:
            n += 1
        parts = [self._phrase(r, chat_lang) for _ in range(n)]
        if r.random() < self.filler_rate:
            filler = r.choice(self.fillers)
            parts.insert(0 if r.random() < 0.6 else len(parts), filler)
        text = ", ".join(parts) if r.random() < 0.5 else " ".join(parts)
        if r.random() < self.laugh_rate:
            laugh = r.choice(self.laughs)
            text = laugh if r.random() < 0.3 else f"{text} {laugh}"
        text = self._case(r, self._typo(r, text))
        if text[-1:].isalnum():  # a question mark or a laugh already ends it
            text += r.choices(ENDINGS, self.endings)[0]
        if r.random() < self.emoji_rate:
            text += " " + r.choice(self.emoji) * (1 + (r.random() < 0.2))
        return text

    def _phrase(self, r: random.Random, chat_lang: str) -> str:
        lang = chat_lang if chat_lang in self.langs else self.langs[0]
        if len(self.langs) > 1 and r.random() < self.switch:
            lang = r.choice([x for x in self.langs if x != lang])
        pool = self.phrases[lang]
        weights = [1 / (i + 1) ** 0.8 for i in range(len(pool))]  # favourites recur, Zipf-like
        return r.choices(pool, weights)[0]

    def _case(self, r: random.Random, text: str) -> str:
        return text.lower() if r.random() < self.lower else text[:1].upper() + text[1:]

    def _typo(self, r: random.Random, text: str) -> str:
        """Two neighbouring letters swapped or one dropped, as fast thumbs do."""
        if r.random() >= self.typo_rate or len(text) < 4:
            return text
        i = r.randrange(1, len(text) - 1)
        if not (text[i].isalpha() and text[i + 1].isalpha()):
            return text
        return (
            text[:i] + text[i + 1] + text[i] + text[i + 2 :] if r.random() < 0.6 else text[:i] + text[i + 1 :]
        )


def draw_voice(seed: int, person: str, langs: list[str], primary: str) -> Voice:
    """One person's habits, a pure function of the export's seed and the person's id."""
    r = random.Random(f"voice:{seed}:{person}")
    others = [x for x in langs if x != primary]
    spoken = [primary] + r.sample(others, k=min(len(others), r.choice((0, 1, 1, 2))))
    phrases = {}
    for lang in spoken:
        pool = POOLS[lang]
        phrases[lang] = r.sample(pool, k=max(6, int(len(pool) * r.uniform(0.35, 0.7))))
    fill_lang = [x for x in spoken if x != "si"] or spoken
    laugh_lang = spoken[0]
    endings = [r.random() ** 2 for _ in ENDINGS]  # one or two habits lead
    if primary == "en":
        endings[ENDINGS.index(")")] = 0.0  # the bracket smile is a Cyrillic-chat habit
    return Voice(
        langs=spoken,
        switch=r.uniform(0.05, 0.35) if len(spoken) > 1 else 0.0,
        phrases=phrases,
        fillers=r.sample([f for lang in fill_lang for f in FILLERS[lang]], k=3),
        filler_rate=r.uniform(0.05, 0.35),
        more_fragments=r.uniform(0.1, 0.6),
        lower=r.choice((0.05, 0.5, 0.95)),
        endings=endings,
        emoji=r.sample(EMOJI, k=r.randint(1, 3)),
        emoji_rate=r.choice((0.0, 0.05, 0.15, 0.35)),
        laughs=r.sample(LAUGHS[laugh_lang], k=r.randint(1, 2)),
        laugh_rate=r.uniform(0.02, 0.15),
        typo_rate=r.choice((0.0, 0.03, 0.1)),
    )


class Voices:
    """Every person's voice in one export; the owner's first language is ``langs[0]``."""

    def __init__(self, seed: int, langs: list[str], owner: str):
        bad = [x for x in langs if x not in LANGS]
        if bad or not langs:
            raise SystemExit(f"--langs: unknown {bad or 'empty'}; pick from {','.join(LANGS)}")
        self.seed, self.langs, self.owner = seed, langs, owner
        self._cache: dict[str, Voice] = {}

    def of(self, person: str) -> Voice:
        if person not in self._cache:
            r = random.Random(f"primary:{self.seed}:{person}")
            # The owner writes in every account language, theirs first; a contact mostly shares the
            # owner's first language, as most of one's contacts do.
            primary = self.langs[0] if person == self.owner or r.random() < 0.5 else r.choice(self.langs)
            langs = self.langs if person == self.owner else [primary, *self.langs]
            voice = draw_voice(self.seed, person, list(dict.fromkeys(langs)), primary)
            if person == self.owner:
                voice.langs = self.langs
                for lang in self.langs:
                    voice.phrases.setdefault(
                        lang, draw_voice(self.seed, person + lang, [lang], lang).phrases[lang]
                    )
            self._cache[person] = voice
        return self._cache[person]

    def chat_lang(self, people: list[tuple[str, str | None]]) -> str:
        """A personal chat is in the contact's first language; a group in the owner's."""
        others = [p for p, _ in people if p != self.owner]
        return self.of(others[0]).langs[0] if len(others) == 1 else self.langs[0]

    def speaker(self, person: str, chat_lang: str):
        voice = self.of(person)
        return lambda r: voice.say(r, chat_lang)
