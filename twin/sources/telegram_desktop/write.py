"""Writing: merge with the dialog files on disk, then replace them all or none."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections import Counter
from pathlib import Path

from twin.errors import TwinError
from twin.fileio import PRIVATE_FILE, private_dir
from twin.records import canonical, decode_rows, encode_rows, merge_records, read_dialog


def plan_writes(out_dir: Path, dialogs: dict[int, bytes], counts: Counter[str]) -> list[tuple[Path, bytes]]:
    """``(file, new content)`` per dialog file to write, after merging with what is on disk.

    Every existing file is read and merged here, before any write, so a bad one fails the import
    with nothing changed. Files whose content would not change are left out (and untouched).
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise TwinError(f"{out_dir}: exists and is not a folder; pass another --out")
    plan = []
    for dialog_id, blob in sorted(dialogs.items()):
        target = out_dir / f"{dialog_id}.jsonl"
        if target.exists():
            if target.read_bytes() == blob:
                continue  # a re-import of the same chat: nothing to merge, nothing to write
            # Canonical field order, as encode_rows needs.
            existing = [canonical(r) for r in read_dialog(target)]
            known = {r["id"] for r in existing}
            new = decode_rows(blob)
            counts["new"] += sum(r["id"] not in known for r in new)
            merged = merge_records(existing, new)
            if merged == existing:
                continue  # the same content: leave the file (and its mtime) alone
            plan.append((target, encode_rows(merged)))
        else:
            counts["new"] += blob.count(b"\n")
            plan.append((target, blob))
    return plan


def commit(plan: list[tuple[Path, bytes]]) -> None:
    """Write every planned dialog file, all or nothing as far as a file system allows.

    Each file is written in full to a temp file beside its target and fsynced; only when all of
    them are written are they renamed over their targets (a rename is atomic). A failure while
    writing (disk full, permissions) removes the temp files and leaves every target as it was.
    """
    temps: list[tuple[str, Path]] = []
    try:
        for target, content in plan:
            private_dir(target.parent)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            temps.append((tmp, target))
            os.fchmod(fd, PRIVATE_FILE)  # your chats: owner only
            with os.fdopen(fd, "wb") as f:
                f.write(content)
                f.flush()
                os.fsync(f.fileno())
    except BaseException:
        for tmp, _ in temps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
    for tmp, target in temps:
        os.replace(tmp, target)
