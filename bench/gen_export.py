"""Generate a Telegram Desktop whole-account export (``result.json``) with N messages, deterministically.

    .venv/bin/python -m bench.gen_export OUT.json --messages 1000000 [--seed 0] [--voices en,ru]

The shape is Desktop's (``export_output_json.cpp``): 1-space indented UTF-8 JSON,
``personal_information``, ``chats.list`` and ``left_chats.list``; per message ``date`` (local wall
time, no zone) and ``date_unixtime`` (a string), ``text`` as a string or a list of strings and
``{type, text}`` entities, ``text_entities`` always a list. The mix: ~80% of the messages in
personal chats (one with a deleted account, ``"from": null``), the rest in groups, supergroups,
channels (one left), a bot chat and saved messages; about 1.5% service messages (calls, pins,
group events), 8% media (photos with and without captions, stickers with ``sticker_emoji``, voice
and video messages, files), 10% entity-list texts, 5% replies, 1% forwarded, 3% edited.

``--voices LANGS`` gives the owner and every contact a voice of their own drawn from the seed
(languages and code-switching, favourite phrases and fillers, length, case, punctuation, emoji,
laughter, typos: ``bench/voices.py``), so a twin trained on the export can be judged on whether it
sounds like the owner; without it everyone shares the pools and the output is unchanged.

Used by ``bench.bench_import``, ``bench.compare_data`` and ``bench.compare_train``. Every
message counted in N is a ``"type": "message"`` or ``"type": "service"`` entry of some chat.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path

from bench.voices import Voices

OWNER_ID = 100000001
OWNER_NAME = "Alex Morozov"
LOCAL_OFFSET = 3 * 3600  # the exporting machine's zone (Desktop writes wall time without it)
START = 1_577_836_800  # 2020-01-01T00:00:00Z
NOT_INCLUDED = "(File not included. Change data exporting settings to download.)"

EN = [
    "hey, free tomorrow?", "sounds good 👍", "what time?", "at 7:30 near the park", "lol", "ok",
    "did you see the game yesterday? crazy second half", "i'll be there in 10 minutes", "no worries",
    "can you review the PR today? the client asked about it", "tickets are $45 each", "haha same",
    "running late, sorry", "updated to v2.3.1 and it works now", "tbh i forgot 😅",
    "let's do lunch on friday at 12:30", "how was your trip?", "it was amazing, photos later",
    "call me when you're free", "happy birthday!! 🎉", "where are you?", "almost home",
]  # fmt: skip
RU = [
    "привет! как дела?", "норм, ты как?", "давай в 19:30 у метро", "ну такое", "короче, я опоздаю",
    "ок, понял 👌", "скинь фотки", "вышло 1500 ₽ на двоих", "ахах", "завтра созвон в 11:00, не забудь",
    "обновись до 1.14.0, там починили", "давай)", "спасибо!", "я уже дома", "с днём рождения! 🎂",
    "перезвоню через час", "как доехал?", "отлично, фотки позже",
]  # fmt: skip
FIRST = ["Анна", "Дима", "Катя", "Олег", "Sam", "Emily", "Mark", "Jake", "Priya", "Tom", "Olivia", "Max"]
LAST = ["Smirnova", "Sokolov", "Carter", "Chen", "Thompson", "Patel", "Wilson", "Bauer", "Kim", ""]
ENTITY = [
    ("link", "https://example.com/{n}"), ("bold", "важно"), ("italic", "really"), ("mention", "@friend{n}"),
    ("email", "someone{n}@example.org"), ("phone", "+1 555 01{n:02d}"), ("code", "git pull"),
    ("text_link", "this"), ("hashtag", "#trip"), ("custom_emoji", "🔥"),
]  # fmt: skip
STICKERS = ["👍", "😂", "❤️", "😅", "🔥", "🙏"]
CALL_REASONS = ["hangup", "missed", "busy"]


def _plan_chats(n: int, r: random.Random) -> list[dict]:
    """Chats with their message budgets (sum exactly n), Zipf-like sizes as in a real account."""
    n_personal = max(3, n // 2500)
    specs: list[dict] = []
    for i in range(n_personal):
        specs.append({"type": "personal_chat", "id": 200_000_000 + i, "weight": 0.8 / (i + 3) ** 0.9})
    specs[n_personal // 2]["deleted"] = True
    groups = max(1, n_personal // 20)
    for i in range(groups):
        gtype = ("private_group", "private_supergroup", "public_supergroup")[i % 3]
        specs.append({"type": gtype, "id": 4_000_000_000 + i, "weight": 0.12 / groups})
    specs.append({"type": "public_channel", "id": 1_500_000_000, "weight": 0.02})
    specs.append({"type": "private_channel", "id": 1_500_000_001, "weight": 0.01, "left": True})
    specs.append({"type": "bot_chat", "id": 93_372_553, "weight": 0.02})
    specs.append({"type": "saved_messages", "id": OWNER_ID, "weight": 0.02})
    personal_w = sum(s["weight"] for s in specs if s["type"] == "personal_chat")
    for s in specs:  # personal chats share 80% of the messages
        if s["type"] == "personal_chat":
            s["weight"] *= 0.8 / personal_w
    total_w = sum(s["weight"] for s in specs)
    left = n
    for s in specs:
        s["n"] = min(left, max(1, int(n * s["weight"] / total_w)))
        left -= s["n"]
    specs[0]["n"] += left  # rounding remainder to the biggest chat
    for s in specs:
        s["name"] = _name(r) if s["type"] not in ("saved_messages",) else None
    return [s for s in specs if s["n"] > 0]


def _name(r: random.Random) -> str:
    return f"{r.choice(FIRST)} {r.choice(LAST)}".strip()


def _plain(r: random.Random, lang: list[str] | Callable[[random.Random], str]) -> str:
    """A phrase pool (everyone alike, the default) or one person's voice (``--voices``)."""
    if callable(lang):
        return lang(r)
    return " ".join(r.choice(lang) for _ in range(1 + (r.random() < 0.3) + (r.random() < 0.1)))


def _text(r: random.Random, lang) -> tuple[object, list[dict]]:
    """Desktop's ``text`` and ``text_entities`` for one message."""
    plain = _plain(r, lang)
    if r.random() < 0.10:
        kind, tmpl = r.choice(ENTITY)
        ent = {"type": kind, "text": tmpl.format(n=r.randrange(100))}
        if kind == "text_link":
            ent["href"] = "https://example.com/page"
        parts: list = [plain + " ", ent] if r.random() < 0.7 else [ent, " " + plain]
        entities = [{"type": "plain", "text": p} if isinstance(p, str) else p for p in parts]
        return parts, entities
    return plain, [{"type": "plain", "text": plain}]


GROUP_TYPES = ("private_group", "private_supergroup", "public_supergroup")


def _people(spec: dict, r: random.Random) -> list[tuple[str, str | None]]:
    """``(from_id, from)`` of who writes in the chat; the owner first where they write."""
    ctype = spec["type"]
    me = (f"user{OWNER_ID}", OWNER_NAME)
    if ctype in GROUP_TYPES:
        return [me] + [(f"user{300_000_000 + r.randrange(10**6)}", _name(r)) for _ in range(6)]
    if ctype.endswith("channel"):
        return [(f"channel{spec['id']}", spec["name"])]
    if ctype == "bot_chat":
        return [me, (f"user{spec['id']}", "BotFather")]
    if ctype == "saved_messages":
        return [me]
    return [me, (f"user{spec['id']}", None if spec.get("deleted") else spec["name"])]


def _service(mid: int, t: int, who: tuple, ctype: str, recent: list[int], r: random.Random) -> dict:
    """A call (personal chats) or a pin (elsewhere)."""
    m = {"id": mid, "type": "service", "date": _iso_local(t), "date_unixtime": str(t),
         "actor": who[1], "actor_id": who[0]}  # fmt: skip
    if ctype == "personal_chat":
        m |= {"action": "phone_call", "discard_reason": r.choice(CALL_REASONS)}
        if m["discard_reason"] == "hangup":
            m["duration_seconds"] = r.randrange(5, 3600)
    else:
        m |= {"action": "pin_message", "message_id": recent[-1] if recent else mid}
    return m | {"text": "", "text_entities": []}


def _attach(m: dict, r: random.Random, lang) -> tuple[object, list[dict]]:
    """Adds a media attachment to ``m`` (8% of messages); returns the message's text and entities."""
    roll = r.random()
    if roll < 0.03:
        m |= {"photo": NOT_INCLUDED, "width": 1280, "height": 960}
        return _text(r, lang) if r.random() < 0.4 else ("", [])
    if roll < 0.05:
        m |= {"file": NOT_INCLUDED, "thumbnail": NOT_INCLUDED, "media_type": "sticker",
              "sticker_emoji": r.choice(STICKERS), "width": 512, "height": 512}  # fmt: skip
        return "", []
    if roll < 0.065:
        m |= {"file": NOT_INCLUDED, "media_type": "voice_message", "mime_type": "audio/ogg",
              "duration_seconds": r.randrange(1, 120)}  # fmt: skip
        return "", []
    if roll < 0.075:
        m |= {"file": NOT_INCLUDED, "thumbnail": NOT_INCLUDED, "media_type": "video_file",
              "mime_type": "video/mp4", "duration_seconds": r.randrange(1, 90), "width": 720, "height": 1280}  # fmt: skip
        return _text(r, lang) if r.random() < 0.3 else ("", [])
    if roll < 0.08:
        m |= {"file": NOT_INCLUDED, "mime_type": "application/pdf"}
        return "", []
    return _text(r, lang)


def _message(mid: int, t: int, who: tuple, recent: list[int], r: random.Random, lang) -> dict:
    m = {"id": mid, "type": "message", "date": _iso_local(t), "date_unixtime": str(t)}
    if r.random() < 0.03:
        m |= {"edited": _iso_local(t + 120), "edited_unixtime": str(t + 120)}
    m |= {"from": who[1], "from_id": who[0]}
    if recent and r.random() < 0.05:
        m["reply_to_message_id"] = r.choice(recent[-20:])
    if r.random() < 0.01:
        m["forwarded_from"] = _name(r)
    text, ents = _attach(m, r, lang)
    return m | {"text": text, "text_entities": ents}


def _chat(spec: dict, r: random.Random, next_id: list[int], voices: Voices | None = None) -> dict:
    ctype, n = spec["type"], spec["n"]
    lang = RU if r.random() < 0.5 else EN
    people = _people(spec, r)
    chat_lang = voices.chat_lang(people) if voices else None
    per_channel = ctype.endswith("supergroup") or ctype.endswith("channel")
    t = START + r.randrange(86400 * 30)
    msgs: list[dict] = []
    recent: list[int] = []
    for _ in range(n):
        # Bursts within a conversation, then hours or days of silence.
        t += r.randrange(5, 300) if r.random() < 0.85 else r.randrange(3600, 86400 * 3)
        if per_channel:
            mid = len(msgs) + 1
        else:
            next_id[0] += 1
            mid = next_id[0]
        who = people[0] if len(people) == 1 else r.choice(people)
        if r.random() < 0.015 and ctype != "saved_messages":
            msgs.append(_service(mid, t, who, ctype, recent, r))
            continue
        say = voices.speaker(who[0], chat_lang) if voices else lang
        msgs.append(_message(mid, t, who, recent, r, say))
        recent.append(mid)
        if len(recent) > 40:
            del recent[:20]
    chat: dict = {}
    if spec["name"] is not None:
        chat["name"] = spec["name"] if not spec.get("deleted") else "Deleted Account"
    chat |= {"type": ctype, "id": spec["id"], "messages": msgs}
    return chat


def _iso_local(t: int) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t + LOCAL_OFFSET))


_INDENT = re.compile(rb"\n( *)")


def _dumps_desktop(obj: object, depth: int) -> bytes:
    """Desktop's layout: 1-space indent (orjson writes 2; halve it), nested ``depth`` levels deep."""
    import orjson

    blob = orjson.dumps(obj, option=orjson.OPT_INDENT_2)
    pad = b" " * depth
    return pad + _INDENT.sub(lambda m: b"\n" + pad + b" " * (len(m.group(1)) // 2), blob)


def generate_export(
    path: str | os.PathLike, n_messages: int, seed: int = 0, voices: list[str] | None = None
) -> Path:
    """Write a whole-account export with exactly ``n_messages`` chat entries to ``path`` (atomically).

    ``voices`` (languages, the owner's first, from ``en ru uk si``) gives every person their own
    way of writing (``bench/voices.py``); without it everyone draws from the same phrase pools and
    the output is byte-identical to what it always was.
    """
    from twin.fileio import atomic_open

    r = random.Random(seed)
    people_voices = Voices(seed, voices, f"user{OWNER_ID}") if voices else None
    path = Path(path)
    specs = _plan_chats(n_messages, r)
    head = {
        "about": "Here is the data you requested. Remember: Telegram is ad free, it doesn't sell your data.",
        "personal_information": {
            "user_id": OWNER_ID, "first_name": "Alex", "last_name": "Morozov",
            "phone_number": "+7 999 000 00 00", "username": "@alexmoroz", "bio": "coffee & code",
        },
    }  # fmt: skip
    next_id = [1000]
    with atomic_open(path, "wb") as f:
        f.write(_dumps_desktop(head, 0)[:-2] + b",\n")  # drop the closing "\n}"
        for section, left in (("chats", False), ("left_chats", True)):
            about = "This page lists all chats from this export." if not left else "Chats you have left."
            f.write(f' "{section}": {{\n  "about": "{about}",\n  "list": [\n'.encode())
            chosen = [s for s in specs if bool(s.get("left")) == left]
            for i, spec in enumerate(chosen):
                f.write(_dumps_desktop(_chat(spec, r, next_id, people_voices), 3))
                f.write(b",\n" if i < len(chosen) - 1 else b"\n")
            f.write(b"  ]\n }" + (b",\n" if not left else b"\n"))
        f.write(b"}\n")
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="bench.gen_export", description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--voices",
        metavar="LANGS",
        help="every person writes in their own way; LANGS = the account's languages, the owner's first (en,ru,uk,si)",
    )
    a = ap.parse_args(argv)
    generate_export(a.out, a.messages, a.seed, a.voices.split(",") if a.voices else None)
    print(f"{a.out}: {a.messages:,} messages, {a.out.stat().st_size / 2**20:.0f} MiB")


if __name__ == "__main__":
    main(sys.argv[1:])
