"""Files every stage shares: atomic writes, directory swaps, and the one JSONL reader.

Every file another stage reads is written to a temp file in the same directory, flushed,
fsynced and renamed over the target, so an interrupted run leaves either the old file or the
new one, never a mix. Directories (a model, an adapter, an index) are built beside their target
and swapped in whole (:func:`atomic_dir`, over :func:`replace_path`).

Everything twin writes is private: chats, examples, memory, adapters, checkpoints, merged models,
GGUF files and reports are derived from the owner's messages. Files are 0600 and directories 0700,
on purpose: :func:`atomic_open` and :func:`replace_path` set the modes themselves, and the ``twin``
command calls :func:`keep_private` first (umask 077), so files written by the libraries (torch
checkpoints, safetensors, tokenizers, bm25s, GGUF) are created the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from twin.errors import TwinError

PRIVATE_FILE = 0o600  # owner read/write only
PRIVATE_DIR = 0o700
PRIVATE_UMASK = 0o077  # what every file and directory the process creates is masked with


def keep_private() -> None:
    """From now on every file this process creates is 0600 and every directory 0700, whoever writes it."""
    os.umask(PRIVATE_UMASK)


def private_dir(path: str | os.PathLike) -> Path:
    """``mkdir -p`` whose new directories are 0700 (existing ones are left as they are)."""
    path = Path(path)
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for p in missing:
        with contextlib.suppress(OSError):
            os.chmod(p, PRIVATE_DIR)
    return path


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temp file beside ``path``; on clean exit rename it over ``path``, else delete it."""
    path = Path(path)
    private_dir(path.parent)
    binary = "b" in mode
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, PRIVATE_FILE)  # chat-derived data: owner only (said here, not left to mkstemp)
        with os.fdopen(
            fd, mode, encoding=None if binary else encoding, newline=None if binary else "\n"
        ) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 2) -> None:
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=indent) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Write one compact JSON object per line; returns the number of rows."""
    n = 0
    with atomic_open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
            f.write("\n")
            n += 1
    return n


def replace_path(tmp: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Swap a finished file or directory ``tmp`` in for ``dst``: readers see the old or the new one.

    ``os.replace`` cannot rename a directory over a non-empty one, so an existing directory is first
    renamed aside to ``.<name>.old`` and removed once the new one is in place.
    """
    tmp, dst = Path(tmp), Path(dst)
    _make_private(tmp)
    if not (dst.is_dir() and not dst.is_symlink()):
        os.replace(tmp, dst)
        return
    old = dst.with_name(f".{dst.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(dst, old)
    os.replace(tmp, dst)
    shutil.rmtree(old, ignore_errors=True)


def _make_private(path: Path) -> None:
    """0600 files / 0700 directories for ``path`` and everything below it (a model or adapter dir)."""
    if path.is_symlink():
        return
    if path.is_dir():
        os.chmod(path, PRIVATE_DIR)
        for root, dirs, files in os.walk(path):
            for d in dirs:
                if not os.path.islink(os.path.join(root, d)):
                    os.chmod(os.path.join(root, d), PRIVATE_DIR)
            for f in files:
                if not os.path.islink(os.path.join(root, f)):
                    os.chmod(os.path.join(root, f), PRIVATE_FILE)
    elif path.exists():
        os.chmod(path, PRIVATE_FILE)


@contextlib.contextmanager
def atomic_dir(out: str | os.PathLike) -> Iterator[Path]:
    """Build a directory beside ``out`` (the block writes into the yielded path), then swap it in whole.

    If the block raises, the half-built copy is removed and ``out`` is left as it was.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
        replace_path(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def iter_jsonl(path: str | os.PathLike, *, hint: str = "") -> Iterator[tuple[int, Any]]:
    """``(line number, object)`` for each non-blank line of a JSONL file, in order.

    Any problem is a :class:`TwinError` naming the file (and line and column); a bad line's message
    ends with ``hint`` (what to do about it). orjson parses (several times faster than the stdlib on a million
    lines); a line it refuses but the stdlib reads (``NaN``, ``Infinity``) still loads.
    """
    import orjson

    path = Path(path)
    suffix = f"; {hint}" if hint else ""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise TwinError(f"{path}: file not found") from None
    except OSError as e:
        raise TwinError(f"{path}: cannot read ({e.strerror})") from None
    with f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                obj = _stdlib_loads(line, f"{path}:{lineno}", suffix)
            yield lineno, obj


def _stdlib_loads(line: bytes, where: str, suffix: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise TwinError(f"{where}: not valid JSON ({e.msg} at column {e.colno}){suffix}") from None
    except UnicodeDecodeError:
        raise TwinError(f"{where}: not UTF-8 text{suffix}") from None
