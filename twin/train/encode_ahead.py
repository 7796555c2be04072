"""Tokenizing a run's data in a second process while the trainer imports torch (a first run on the data).

The encoded examples are cached beside the data (``twin/train/data.py``), so only a run on new data
tokenizes; that run used to do it after ~3 s of imports that hold the interpreter's lock, on one core.
Here :func:`start` launches ``python -m twin.train.encode_ahead`` first: it loads only the tokenizer
(transformers without torch: ~1 s less to import) and runs the trainer's own :func:`load_data`, which
writes the same cache; the trainer, at its own ``load_data``, waits for it (:func:`wait`) and reads
the cache. A thread cannot do this: the tokenizer's Python half waits for the interpreter's lock on
each call (measured: encoding 3x slower beside a thread that holds it, bench/RESULTS.md, start-up
round 4).

Only when it can pay: one process (``devices: 1``), at least two cores, no per-run memory (those
examples are never cached), a data dir it can write the cache to, and no cache for this data yet.
The helper prints nothing, and its failure costs nothing: the trainer then encodes (and reports any
error) as before.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from twin.train.config import TrainConfig

log = logging.getLogger(__name__)

_pending: subprocess.Popen | None = None


def start(cfg: TrainConfig) -> subprocess.Popen | None:
    """The helper process for ``cfg``'s data, or None when it would not pay (see the module docstring)."""
    global _pending
    if cfg.data.memory or cfg.devices != 1 or (os.cpu_count() or 1) < 2:
        return None
    if not os.access(cfg.data.dir, os.W_OK) or _cached(cfg):  # nowhere to cache, or nothing to do
        return None
    env = os.environ | {"TRANSFORMERS_NO_ADVISORY_WARNINGS": "1", "TOKENIZERS_PARALLELISM": "false"}
    _pending = subprocess.Popen(
        [sys.executable, "-m", "twin.train.encode_ahead"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert _pending.stdin is not None
    _pending.stdin.write(cfg.model_dump_json().encode())
    _pending.stdin.close()
    log.info("new data: a helper process tokenizes it while torch loads (cached for the next run)")
    return _pending


def running() -> bool:
    """Whether a helper is still tokenizing (the trainer can do other work before :func:`wait`)."""
    return _pending is not None and _pending.poll() is None


def wait() -> None:
    """Block until the helper (if one runs) has finished: its cache is then there to read."""
    global _pending
    if _pending is not None:
        if _pending.poll() is None:  # a large data set: say why nothing moves
            log.info("waiting for the tokenizing helper to finish")
        if _pending.wait():
            log.debug("the tokenizing helper exited with %s: tokenizing here", _pending.returncode)
        _pending = None


def stop() -> None:
    """End a helper still running (the run failed or was interrupted before it needed the data)."""
    global _pending
    if _pending is not None and _pending.poll() is None:
        _pending.kill()
        _pending.wait()
    _pending = None


def _cached(cfg: TrainConfig) -> bool:
    """Whether the cache already holds both splits under a template ``cfg`` can resolve to."""
    from twin.prompt import CHAT, PLAIN
    from twin.train.data import cache_file

    data = Path(cfg.data.dir)
    splits = [data / cfg.data.train_file]
    val = data / cfg.data.val_file
    if val.is_file() and val.stat().st_size:
        splits.append(val)
    templates = (CHAT, PLAIN) if cfg.data.template == "auto" else (cfg.data.template,)
    max_len, reply = cfg.data.max_seq_length, cfg.data.reply_tokens
    return any(all(cache_file(f, cfg.base, t, max_len, reply).is_file() for f in splits) for t in templates)


def main() -> None:
    """The helper: the trainer's ``load_data`` (which writes the cache), without torch."""
    sys.modules["torch"] = None  # type: ignore[assignment]  # tokenizing needs none of it
    from twin.imports import cache_transformers_index
    from twin.train.config import TrainConfig
    from twin.train.loop import load_data

    cache_transformers_index()
    load_data(TrainConfig.model_validate_json(sys.stdin.read()))


if __name__ == "__main__":
    main()
