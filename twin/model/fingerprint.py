"""A cheap digest of a base model's weights, for the base fingerprint (``model/load.base_fingerprint``).

Hashing every byte of 14 GB would take a minute on each server start. Instead, per weight file:
its name and size, the safetensors header (every tensor's name, dtype, shape and offsets) and the
first and last 4 KiB of every tensor's data — a few MB read even for a 7B model. Two checkpoints of
one architecture (another fine-tune, another seed, a merge) differ in those bytes; a change confined
to the middle of a tensor is not seen. Files that are not safetensors (``pytorch_model*.bin``)
contribute their size and 64 KiB at 16 evenly spaced offsets.

Digests are cached by (path, size, mtime, inode) in ``$XDG_CACHE_HOME/twin/weight-digests.json``
(default ``~/.cache/twin/``), never in the model directory, which may be read-only or shared. A
cache that cannot be read or written is skipped: the digest is then computed each time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
from pathlib import Path
from typing import Any, BinaryIO

from twin.fileio import atomic_write_json

log = logging.getLogger(__name__)

SAMPLE = 4096  # bytes read at each end of every tensor
_MAX_CACHED = 500


def cache_file() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "twin" / "weight-digests.json"


def weights_digest(path: Path) -> str:
    """Hex sha256 of one weight file's identity (see the module docstring), cached by size+mtime."""
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"
    cache = _read_cache()
    if key in cache:
        return cache[key]
    digest = compute_digest(path, st.st_size)
    cache[key] = digest
    _write_cache(dict(list(cache.items())[-_MAX_CACHED:]))
    return digest


def compute_digest(path: Path, size: int) -> str:
    h = hashlib.sha256(f"{path.name}\0{size}\0".encode())
    with path.open("rb") as f:
        if path.suffix == ".safetensors":
            _safetensors_samples(f, size, h)
        else:
            for i in range(16):
                f.seek(max(0, (size - 65536) * i // 15))
                h.update(f.read(65536))
    return h.hexdigest()


def _safetensors_samples(f: BinaryIO, size: int, h: Any) -> None:
    raw = f.read(8)
    n = struct.unpack("<Q", raw)[0] if len(raw) == 8 else 0
    if n <= 0 or 8 + n > size:  # not a valid header: the loader will say so; hash what is there
        f.seek(0)
        h.update(f.read(SAMPLE))
        return
    header_bytes = f.read(n)
    h.update(header_bytes)
    try:
        header = json.loads(header_bytes)
    except ValueError:
        return
    spans = sorted(v["data_offsets"] for k, v in header.items() if k != "__metadata__")
    for begin, end in spans:
        for start in sorted({begin, max(begin, end - SAMPLE)}):
            f.seek(8 + n + start)
            h.update(f.read(min(SAMPLE, end - start)))


def _read_cache() -> dict[str, str]:
    try:
        data = json.loads(cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(cache: dict[str, str]) -> None:
    try:
        atomic_write_json(cache_file(), cache, indent=None)
    except OSError as e:  # read-only home, full disk: the digest is still right, just not cached
        log.debug("weight digest cache not written (%s)", e)
