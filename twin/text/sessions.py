"""Sessions and turns: pure functions over raw records (no I/O).

* A **session** is a run of messages in one dialog with no gap longer than ``gap_hours`` between
  consecutive messages, so context never leaks from one conversation into the next. A gap exactly
  equal to the threshold does not split.
* A **turn** is a run of consecutive messages from the same side within a session, joined with
  newlines (people send several short messages in a row). In a group (records with a ``sender``)
  their turn is several people's messages: each person's run opens with ``Name: ``
  (:func:`twin.prompt.group_turn_text`), the name scrubbed like the message texts.

Every message counts for the gaps (a photo at 3 am continues a conversation). A message without
words of its sender's own (media without a caption, a forward, an inline bot's result) shows in
prepare's turns as a bracketed mark, ``[photo]``, ``[sticker]``, ``[forwarded message]``
(:func:`mark`), so what a reply answers stays in view and the other side's messages on either side
of it are not run together; a mark is never a response (:attr:`Turn.reply` is what an example may
learn), so the twin never learns to write ``[sticker]``.

Every text is cleaned first (:mod:`twin.text.normalize`: line breaks as ``\n``, no control
characters), as the server cleans a request's, so a served prompt matches the trained ones.

The PII scrub runs here, on a session's messages in order, so that an answer is scrubbed with the
question before it in view (:func:`twin.text.scrub.scrub_messages`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby

from twin.prompt import group_turn_text, member_label
from twin.records import sort_key
from twin.text.normalize import clean_message
from twin.text.scrub import Scrubber, scrub_messages

_EPOCH = datetime(1970, 1, 1)


def epoch(date: str) -> float:
    """Seconds since the epoch of a raw ``date`` (UTC ISO-8601, ``Z`` or an offset)."""
    if len(date) == 20 and date[-1] == "Z":  # the canonical form: naive arithmetic is exact and ~3x faster
        return (datetime.fromisoformat(date[:-1]) - _EPOCH).total_seconds()
    return datetime.fromisoformat(date.replace("Z", "+00:00")).astimezone(UTC).timestamp()


@dataclass
class Turn:
    role: str  # "me" | "them"
    text: str
    message_ids: list[int] = field(default_factory=list)
    members: list[str] = field(default_factory=list)  # in a group: the labels of their turn, first-seen order
    words: str | None = None  # the sender's own words, without marks; None: all of ``text`` is

    @property
    def reply(self) -> str:
        """What an example may learn from this turn: its words, never a mark ('' when it has none)."""
        return self.text if self.words is None else self.words


# The mark of a message without words of its sender's own, by the raw record's ``media`` (Telegram
# Desktop's names). Lower case in brackets: the scrubber's placeholders are upper case ([PHONE]).
_MEDIA_MARKS = {
    "photo": "[photo]",
    "sticker": "[sticker]",
    "voice_message": "[voice message]",
    "video_message": "[video message]",
    "animation": "[GIF]",
    "video_file": "[video]",
    "audio_file": "[audio]",
    "file": "[file]",
    "location": "[location]",
    "contact": "[contact]",
    "poll": "[poll]",
    "dice": "[dice]",
    "game": "[game]",
    "invoice": "[invoice]",
    "giveaway": "[giveaway]",
}


def own_words(rec: dict) -> bool:
    """Whether a record's text is its sender's own: not a forward, not an inline bot's result."""
    return not rec.get("forwarded") and not rec.get("via_bot")


def mark(rec: dict) -> str | None:
    """The bracketed mark a message without words of its sender's own shows in a turn; None for one
    that has them, or has nothing at all (a text of only invisible characters)."""
    if rec.get("forwarded"):
        return "[forwarded message]"
    emoji = rec.get("sticker_emoji")
    if rec.get("media") == "sticker" and isinstance(emoji, str) and (emoji := clean_message(emoji)[:8]):
        return f"[sticker {emoji}]"  # what the sticker stands for: a reply to "[sticker 😂]" reads right
    if rec.get("media"):
        return _MEDIA_MARKS.get(rec["media"], "[media]")
    if rec.get("via_bot"):  # its text, if any, was cleared as not the sender's own (drafts' records)
        return "[bot message]"
    return None


@dataclass
class Session:
    dialog_id: int
    index: int
    messages: list[dict]
    turns: list[Turn] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.dialog_id}-{self.index}"


def split_sessions(records: Sequence[dict], gap_hours: float = 24.0) -> list[list[dict]]:
    """Group one dialog's records into sessions; records are sorted by (date, id) first."""
    rows = sorted(records, key=sort_key)
    gap = gap_hours * 3600.0
    sessions: list[list[dict]] = []
    prev: float | None = None
    for rec in rows:
        t = epoch(rec["date"])
        if prev is None or t - prev > gap:
            sessions.append([])
        sessions[-1].append(rec)
        prev = t
    return sessions


def message_texts(messages: Sequence[dict], scrubber: Scrubber | None = None) -> tuple[list[dict], list[str]]:
    """The messages with text of the sender's own (not forwarded, not blank once clean), and their
    texts as prompts show them: cleaned by :func:`~twin.text.normalize.clean_message` (line breaks,
    control characters), then scrubbed in order when ``scrubber`` is given (each message with the one
    before it in view). Prepare's turns and ``twin drafts``' requests both take their texts from here.
    """
    own = [r for r in messages if r.get("text") and own_words(r)]
    raw = [r["text"] for r in own]
    if scrubber is not None:
        # the spans Telegram tagged as a phone or an e-mail (raw ``pii``) go first: their offsets
        # count in the text as exported, so before cleaning
        raw = [scrubber.mark(t, r["pii"]) if r.get("pii") else t for r, t in zip(own, raw, strict=True)]
    kept = [(r, text) for r, text in zip(own, map(clean_message, raw), strict=True) if text]
    usable, texts = [r for r, _ in kept], [text for _, text in kept]
    return usable, scrub_messages(texts, scrubber) if scrubber is not None else texts


def merge_turns(
    messages: Sequence[dict],
    clean: Callable[[str], str] | None = None,
    *,
    scrubber: Scrubber | None = None,
    marks: bool = False,
) -> list[Turn]:
    """Consecutive messages with text of one side -> one turn, texts joined with ``\\n``.

    ``scrubber`` scrubs the texts with :func:`~twin.text.scrub.scrub_messages` (each message with
    the one before it in view) before anything else sees them; ``clean`` is a per-message alternative.
    ``marks``: messages without words of their sender's own take part as their :func:`mark`
    (added after the scrub: a mark is not an answer to "what's the code?").
    """
    usable, texts = message_texts(messages, scrubber)
    if scrubber is None and clean is not None:
        texts = [clean(t) for t in texts]
    entries = (
        _with_marks(messages, usable, texts)
        if marks
        else [(r, t, True) for r, t in zip(usable, texts, strict=True)]
    )
    names: dict[str, str] = {}  # each member's name scrubbed once
    turns = []
    for role, run in groupby(entries, key=lambda entry: "me" if entry[0]["out"] else "them"):
        recs, txts, own = zip(*run, strict=True)
        turn = _turn(role, recs, txts, scrubber, names)
        if not all(own):
            turn.words = "\n".join(t for t, o in zip(txts, own, strict=True) if o)
        turns.append(turn)
    return turns


def _with_marks(
    messages: Sequence[dict], usable: Sequence[dict], texts: Sequence[str]
) -> list[tuple[dict, str, bool]]:
    """``(record, text, own words?)`` of every message a turn shows, in order: the usable ones with their
    texts, the others with their mark; a mark repeating the one just before, from the same sender, is
    left out (an album of ten photos is one ``[photo]``, not ten lines of the context budget)."""
    by_record = {id(r): t for r, t in zip(usable, texts, strict=True)}
    entries: list[tuple[dict, str, bool]] = []
    for r in messages:
        text = by_record.get(id(r))
        if text is not None:
            entries.append((r, text, True))
        elif (m := mark(r)) is not None and not (entries and _same_mark(entries[-1], r, m)):
            entries.append((r, m, False))
    return entries


def _same_mark(prev: tuple[dict, str, bool], rec: dict, text: str) -> bool:
    p, p_text, p_own = prev
    return not p_own and p_text == text and p["out"] == rec["out"] and p.get("sender") == rec.get("sender")


def _turn(
    role: str, recs: Sequence[dict], texts: Sequence[str], scrubber: Scrubber | None, names: dict[str, str]
) -> Turn:
    """A turn's messages joined with newlines; in a group, theirs labelled with who wrote each run."""
    ids = [r["id"] for r in recs]
    if role == "me" or not any("sender" in r for r in recs):
        return Turn(role, "\n".join(texts), ids)
    senders = [_member_name(r.get("sender"), scrubber, names) for r in recs]
    members = list(dict.fromkeys(member_label(s) for s in senders))
    return Turn(role, group_turn_text(zip(senders, texts, strict=True)), ids, members)


def _member_name(name: str | None, scrubber: Scrubber | None, names: dict[str, str]) -> str | None:
    """A member's display name is text like any other ("Oleg +7 916 ..."): scrubbed as the contact's is."""
    if scrubber is None or not name:
        return name
    if name not in names:
        names[name] = scrubber.scrub(name)
    return names[name]


def build_sessions(
    records: Sequence[dict],
    gap_hours: float = 24.0,
    clean: Callable[[str], str] | None = None,
    *,
    scrubber: Scrubber | None = None,
    marks: bool = True,
) -> list[Session]:
    """Sessions of one dialog, numbered from 0 in time order, with their merged turns (with marks)."""
    if not records:
        return []
    dialog_id = records[0]["dialog_id"]
    out = []
    for i, msgs in enumerate(split_sessions(records, gap_hours)):
        out.append(Session(dialog_id, i, msgs, merge_turns(msgs, clean, scrubber=scrubber, marks=marks)))
    return out
