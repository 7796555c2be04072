"""A raw dialog file (``data/raw``'s format) from a few rows, for prepare's tests."""

from __future__ import annotations

from pathlib import Path

from twin.records import iso_utc, make_record, write_dialog

T0 = 1_700_000_000


def write_chat(path: Path, dialog_id: int, name: str, rows: list[tuple[bool, str, str | None]]) -> Path:
    """``rows`` of ``(out, text, sender)`` a minute apart (ids from 1); ``sender`` only for group members."""
    recs = []
    for i, (out, text, sender) in enumerate(rows, start=1):
        r = make_record(source="telegram", dialog_id=dialog_id, dialog_name=name, id=i,
                        date=iso_utc(T0 + 60 * i), out=out, text=text)  # fmt: skip
        if sender:
            r["sender"] = sender
        recs.append(r)
    write_dialog(path, recs)
    return path
