"""Baseline: the reference recipe's data preparation, written plainly for the benchmark.

The article twin follows prepared its Telegram data with one straightforward script: load the
Desktop export (``result.json``) whole with ``json.load``, walk every personal chat's messages in
order, group them into sessions at long pauses, glue a person's consecutive messages into one turn,
and write an instruction record — previous turns as context, their message as the instruction, my
reply as the output — for every reply of mine, then split train/validation. This module is that
script: one thread, everything in memory, no streaming, no PII scrubbing, no validation of input.

So that the comparison is of the same work, its rules are twin's (``twin.prepare``): sessions split
at gaps longer than ``gap_hours``; every message counts for the gaps; a message without words of its
sender's own (media without a caption, a forward, an inline bot's result) is a mark in its turn
(``[photo]``), never a response; the context is the newest earlier turns within a character budget;
the split is by the same hash of the session id. Output: ``train.jsonl`` and
``val.jsonl`` in twin's example format, and the counts (compared with twin's by the benchmark).

    .venv/bin/python -m bench.baselines.reference_prep result.json OUT_DIR
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path


def flatten(text) -> str:
    """Desktop ``text``: a string, or a list of strings and ``{"type", "text"}`` pieces."""
    if isinstance(text, str):
        return text
    return "".join(p if isinstance(p, str) else p.get("text", "") for p in text or [])


# twin's marks (twin/text/sessions.py), by Desktop's media_type or the key its media is written under
MARKS = {"photo": "[photo]", "sticker": "[sticker]", "voice_message": "[voice message]",
         "video_message": "[video message]", "animation": "[GIF]", "video_file": "[video]",
         "audio_file": "[audio]", "file": "[file]", "location_information": "[location]",
         "place_name": "[location]", "contact_information": "[contact]", "poll": "[poll]",
         "game_title": "[game]", "invoice_information": "[invoice]", "giveaway_information": "[giveaway]",
         "giveaway_results": "[giveaway]"}  # fmt: skip
MEDIA_KEYS = ("photo", "file", "location_information", "place_name", "contact_information", "poll", "game_title",
              "invoice_information", "giveaway_information", "giveaway_results", "todo_list", "paid_stars_amount")  # fmt: skip


def mark(msg: dict) -> str | None:
    """The mark a message without words of its sender's own shows in its turn, else None."""
    if "forwarded_from" in msg:
        return "[forwarded message]"
    media = msg.get("media_type") or next((k for k in MEDIA_KEYS if k in msg), None)
    if media == "sticker" and msg.get("sticker_emoji"):
        return f"[sticker {msg['sticker_emoji'][:8]}]"
    if media:
        return MARKS.get(media, "[media]")
    return "[bot message]" if "via_bot" in msg else None


def timestamp(msg: dict) -> float:
    if "date_unixtime" in msg:
        return float(msg["date_unixtime"])
    return datetime.fromisoformat(msg["date"]).replace(tzinfo=UTC).timestamp()


def in_val(session_id: str, val_fraction: float, seed: int = 0) -> bool:
    h = hashlib.blake2b(f"{seed}:{session_id}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64 < val_fraction


def examples(chat: dict, session_idx: int, turns: list[dict], context_chars: int) -> list[dict]:
    """A record for every reply of mine to their turn, with the earlier turns that fit as context."""
    out = []
    for i in range(1, len(turns)):
        if turns[i]["role"] == "me" and turns[i - 1]["role"] == "them" and turns[i]["words"]:
            context, used = [], 0
            for t in reversed(turns[: i - 1]):  # newest first, within the budget
                if used + len(t["text"]) + 1 > context_chars:
                    break
                context.insert(0, {"role": t["role"], "text": t["text"]})
                used += len(t["text"]) + 1
            out.append(
                {
                    "dialog_id": chat["id"],
                    "session": f"{chat['id']}-{session_idx}",
                    "contact": chat.get("name"),
                    "context": context,
                    "instruction": turns[i - 1]["text"],
                    "response": "\n".join(turns[i]["words"]),  # a mark is never learnt
                }
            )
    return out


def prepare(export: Path, out: Path, *, gap_hours: float = 24.0, context_chars: int = 1024,
            val_fraction: float = 0.05, seed: int = 0) -> dict:  # fmt: skip
    with export.open(encoding="utf-8") as f:
        data = json.load(f)
    me = data.get("personal_information", {}).get("user_id")
    me_from = f"user{me}" if me is not None else None
    chats = data["chats"]["list"] if "chats" in data else [data]
    train, val = [], []
    counts = {"messages": 0, "sessions": 0, "examples": 0}
    for chat in chats:
        if chat.get("type") != "personal_chat":
            continue
        msgs = [m for m in chat.get("messages", []) if m.get("type") == "message"]
        msgs.sort(key=lambda m: (timestamp(m), m["id"]))
        counts["messages"] += len(msgs)
        sessions: list[list[dict]] = []  # each a list of turns
        prev_t = None
        for m in msgs:
            t = timestamp(m)
            if prev_t is None or t - prev_t > gap_hours * 3600:
                sessions.append([])
            prev_t = t
            text = flatten(m.get("text")).strip()
            own = bool(text) and "forwarded_from" not in m and "via_bot" not in m
            text = text if own else mark(m)
            if text is None:
                continue  # counts for the gap, shows in no turn
            role = "me" if m.get("from_id") == me_from else "them"
            turns = sessions[-1]
            if turns and turns[-1]["role"] == role:
                last = turns[-1]
                if not own and last["last"] == text:
                    continue  # an album is one [photo]
                last["text"] += "\n" + text
                last["words"] += [text] if own else []
                last["last"] = None if own else text
            else:
                turns.append(
                    {
                        "role": role,
                        "text": text,
                        "words": [text] if own else [],
                        "last": None if own else text,
                    }
                )
        counts["sessions"] += len(sessions)
        for idx, turns in enumerate(sessions):
            exs = examples(chat, idx, turns, context_chars)
            (val if in_val(f"{chat['id']}-{idx}", val_fraction, seed) else train).extend(exs)
            counts["examples"] += len(exs)
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train", train), ("val", val)):
        with (out / f"{name}.jsonl").open("w", encoding="utf-8") as f:
            for ex in rows:
                f.write(json.dumps(ex, ensure_ascii=False) + "\n")
    counts.update(train=len(train), val=len(val))
    return counts


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="bench.baselines.reference_prep", description=__doc__.splitlines()[0])
    ap.add_argument("export", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--gap-hours", type=float, default=24.0)
    ap.add_argument("--context-chars", type=int, default=1024)
    ap.add_argument("--val-fraction", type=float, default=0.05)
    a = ap.parse_args(argv)
    counts = prepare(a.export, a.out, gap_hours=a.gap_hours, context_chars=a.context_chars,
                     val_fraction=a.val_fraction)  # fmt: skip
    print(json.dumps(counts))
    return counts


if __name__ == "__main__":
    main(sys.argv[1:])
