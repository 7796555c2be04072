"""Synthetic chats where the owner and the contacts write in clearly different styles (test helper)."""

from __future__ import annotations

import random

_OWNER_WORDS = ["sounds good", "no worries", "tbh", "haha", "ok", "see u", "lol", "yep", "sure thing"]
_CONTACT_WORDS = ["Certainly", "Regarding", "Please", "Thank you", "Kind regards", "Indeed", "However"]


def owner_text(rng: random.Random) -> str:
    return " ".join(rng.sample(_OWNER_WORDS, 3)) + rng.choice([" 👍", " 😅", ")", ""])


def contact_text(rng: random.Random) -> str:
    return ", ".join(rng.sample(_CONTACT_WORDS, 3)) + rng.choice([".", "!", "?"]) + f" #{rng.randrange(999)}"


def styled_examples(n: int, seed: int, *, session_prefix: str = "s") -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        out.append(
            {
                "session": f"{session_prefix}{i // 3}",
                "contact": "Bob",
                "context": [
                    {"role": "them", "text": contact_text(rng)},
                    {"role": "me", "text": owner_text(rng)},
                ],
                "instruction": contact_text(rng),
                "response": owner_text(rng),
            }
        )
    return out
