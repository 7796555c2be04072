"""The raw record: one message, one JSON object per line in ``data/raw/<source>/<dialog_id>.jsonl``.

This is the contract between the export stage and everything after it (see the README's
"Formats"). Every exporter encodes through :func:`encode_rows` (directly, or via :func:`write_dialog`)
so output is byte-identical for identical input, sorted by (date, id), and merged without duplicates.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

from twin.errors import TwinError
from twin.fileio import atomic_write_bytes, iter_jsonl

# Field order is part of the format: it makes re-exports byte-identical.
FIELDS = ("source", "dialog_id", "dialog_name", "id", "date", "out", "text", "reply_to", "forwarded", "media")
REQUIRED = ("dialog_id", "id", "date", "out")
# Optional, written only when present (older files and readers are unaffected):
# pii: [[offset, length, "PHONE" | "EMAIL"], ...] spans of the text that Telegram itself tagged as a
# phone number or an e-mail (Desktop's text_entities); prepare's scrubber replaces them first.
# sender: the display name of who wrote a message of someone else in a group chat, so prepare can
# say who said what (a personal chat has one other person: its dialog_name).
# via_bot: true for a message sent through an inline bot (@wiki, @youtube, @gif...): the bot wrote its
# text, so, like a forward's, it is not the sender's own words.
# sticker_emoji: the emoji a sticker stands for (Desktop's sticker_emoji, the sticker's alt), which
# prepare's mark of it shows: [sticker 😂].
OPTIONAL = ("pii", "sender", "via_bot", "sticker_emoji")
# The name of a deleted account, as Telegram shows it: a personal chat's dialog_name, a group sender.
# Desktop writes no name for one (null) and telethon an empty one; both exporters write this instead,
# so a chat imported both ways is one dialog under one name.
DELETED_ACCOUNT = "Deleted Account"


class RawRecord(TypedDict):
    source: str
    dialog_id: int
    dialog_name: str | None
    id: int
    date: str  # UTC, ISO 8601 with "Z", e.g. 2024-03-01T09:00:00Z
    out: bool  # True when the owner sent it
    text: str  # entities flattened to plain text; "" for media-only messages
    reply_to: int | None
    forwarded: bool
    media: str | None  # Telegram Desktop's media_type names: "photo", "sticker", "voice_message", ... or None
    # optional (see OPTIONAL): pii: list[[offset, length, kind]]; sender: str (groups, not mine);
    # via_bot: bool (only when true); sticker_emoji: str (stickers)


def iso_utc(value: datetime | int | float) -> str:
    """UTC ISO-8601 with a trailing Z, second precision: the one date form in raw files."""
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, tz=UTC)
    elif value.tzinfo is None:
        raise ValueError("naive datetime: convert to UTC first")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso_utc(value: str) -> datetime:
    """Parse a raw record's ``date`` (accepts ``Z`` or an explicit offset)."""
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        raise ValueError(f"date {value!r} has no time zone; raw dates must be UTC with 'Z'")
    return dt.astimezone(UTC)


def make_record(
    *,
    source: str,
    dialog_id: int,
    dialog_name: str | None,
    id: int,
    date: str,
    out: bool,
    text: str,
    reply_to: int | None = None,
    forwarded: bool = False,
    media: str | None = None,
) -> RawRecord:
    return {
        "source": source,
        "dialog_id": dialog_id,
        "dialog_name": dialog_name,
        "id": id,
        "date": date,
        "out": out,
        "text": text,
        "reply_to": reply_to,
        "forwarded": forwarded,
        "media": media,
    }


def canonical(rec: dict[str, Any]) -> dict[str, Any]:
    """The record's fields in the canonical order; an optional field only when it has a value."""
    row = {k: rec.get(k) for k in FIELDS}
    for k in OPTIONAL:
        if rec.get(k):
            row[k] = rec[k]
    return row


def dumps_record(rec: dict[str, Any]) -> str:
    """One raw record as a compact JSON line in the canonical field order."""
    return json.dumps(canonical(rec), ensure_ascii=False, separators=(",", ":"))


def validate_record(obj: Any, where: str) -> RawRecord:
    """Check the fields later stages rely on; ``where`` is ``file:line`` for the error message."""
    if not isinstance(obj, dict):
        raise TwinError(
            f"{where}: expected a JSON object (one raw record per line), got {type(obj).__name__}"
        )
    for key in REQUIRED:
        if key not in obj or obj[key] is None:
            raise TwinError(f"{where}: record is missing '{key}'; re-export the dialog with `twin export`")
    if not isinstance(obj["out"], bool):
        raise TwinError(f"{where}: field 'out' must be true or false, got {obj['out']!r}")
    if not isinstance(obj["date"], str):
        raise TwinError(f"{where}: field 'date' must be an ISO-8601 UTC string, got {obj['date']!r}")
    try:
        parse_iso_utc(obj["date"])
    except ValueError as e:
        raise TwinError(f"{where}: field 'date' is not an ISO-8601 UTC date ({e})") from None
    text = obj.get("text")
    if text is None:
        obj["text"] = ""
    elif not isinstance(text, str):
        raise TwinError(f"{where}: field 'text' must be a string, got {type(text).__name__}")
    if obj.get("sender") is not None and not isinstance(obj["sender"], str):
        raise TwinError(
            f"{where}: field 'sender' must be a name (a string), got {type(obj['sender']).__name__}"
        )
    for key in FIELDS:
        obj.setdefault(key, None if key not in ("forwarded",) else False)
    return obj  # type: ignore[return-value]


def read_dialog(path: str | os.PathLike, *, validate: bool = True) -> list[RawRecord]:
    """All records of one dialog file, validated, in file order; bad JSON names file and line."""
    return [validate_record(obj, f"{path}:{n}") if validate else obj for n, obj in iter_jsonl(path)]


def sort_key(rec: dict) -> tuple[str, int]:
    # ISO-8601 UTC strings of one fixed width sort chronologically as strings.
    return (rec["date"], rec["id"])


def merge_records(existing: Iterable[dict], new: Iterable[dict]) -> list[dict]:
    """Union by message id, sorted by (date, id): every new record is kept and replaces the existing
    ones with its id (a newer copy of a message wins, e.g. after an edit). Records of ``new`` that
    share an id are distinct messages (the Desktop importer keeps those whose dates differ)."""
    new = list(new)
    ids = {rec["id"] for rec in new}
    return sorted([rec for rec in existing if rec["id"] not in ids] + new, key=sort_key)


def encode_rows(rows: list[dict]) -> bytes:
    """JSONL bytes of records already sorted and in canonical field order (:data:`FIELDS`).

    The same bytes as :func:`dumps_record` per line, via orjson: ``dumps_record`` (stdlib json)
    costs ~7 µs a record, more than half of a million-message import; orjson writes the identical
    compact UTF-8 form (the tests compare them byte for byte) several times faster. The list is
    encoded in one call and cut into lines at ``},{"source":``, which can only be a record
    boundary: records hold no nested objects, and inside a JSON string every ``"`` is escaped.
    """
    import orjson

    if not rows:
        return b""
    try:
        blob = orjson.dumps(rows)
    except (orjson.JSONEncodeError, TypeError):  # e.g. an id beyond 64 bits: the slow exact path
        return "".join(dumps_record(r) + "\n" for r in rows).encode("utf-8")
    return blob[1:-1].replace(b'},{"source":', b'}\n{"source":') + b"\n"


def decode_rows(blob: bytes) -> list[dict]:
    """The records of :func:`encode_rows` bytes."""
    import orjson

    return [orjson.loads(line) for line in blob.split(b"\n") if line]


def write_dialog(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Atomically write a dialog file, sorted by (date, id). Returns the record count."""
    rows = [canonical(rec) for rec in sorted(records, key=sort_key)]
    atomic_write_bytes(path, encode_rows(rows))
    return len(rows)


def dialog_files(raw_root: str | os.PathLike) -> list[Path]:
    """Every dialog file under a raw root (``<root>/<source>/<dialog_id>.jsonl``), sorted."""
    root = Path(raw_root)
    if root.is_file():  # the Desktop export itself, passed where its import goes
        raise TwinError(
            f"{root}: is a file, and --raw takes the directory `twin export` writes; import it first: "
            f'`make export-desktop FILE="{root}"` (twin export desktop FILE --out data/raw), then prepare'
        )
    if not root.is_dir():
        raise TwinError(
            f"{root}: raw data directory not found; run `make export-desktop FILE=...` or `make export-telegram` first"
        )
    return sorted(p for p in root.rglob("*.jsonl") if not p.name.startswith("."))
