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
The helper writes nothing to the terminal: it reports each chunk it has tokenized on a pipe, which
:func:`wait` shows as the trainer's own progress bar (a 90,000-message account waited ~11 s on a
silent terminal before). Its failure costs nothing: the trainer then encodes (and reports any error)
as before.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING

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
        stdout=subprocess.PIPE,  # its progress, one line per chunk: see _report and _follow
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
        if _pending.poll() is None:  # a large data set: say why nothing moves, and how far it is
            log.info("waiting for the tokenizing helper to finish")
            _follow(_pending.stdout)
        if _pending.stdout is not None:
            _pending.stdout.close()
        if _pending.wait():
            log.debug("the tokenizing helper exited with %s: tokenizing here", _pending.returncode)
        _pending = None


def _follow(pipe: IO[bytes] | None) -> None:
    """Show the helper's progress lines (:func:`_report`) as a bar per file until it closes the pipe."""
    from tqdm.auto import tqdm

    bars: dict[str, tqdm] = {}
    try:
        for line in pipe or ():
            parts = line.decode("utf-8", "replace").rstrip("\n").split("\t", 2)
            if len(parts) != 3 or not (parts[0].isdigit() and parts[1].isdigit()):
                continue  # not a progress line: nothing else is meant for the terminal
            done, total, desc = int(parts[0]), int(parts[1]), parts[2]
            if desc not in bars:
                bars[desc] = tqdm(total=total, desc=desc, unit="ex", leave=False, dynamic_ncols=True)
            bars[desc].update(done - bars[desc].n)
            if done >= total:  # closed now, or the next file's bar opens below it as a nested one
                bars[desc].close()
    finally:
        for bar in bars.values():
            bar.close()


def _report(desc: str, done: int, total: int) -> None:
    """The helper's side of :func:`_follow`: one line per tokenized chunk on its stdout."""
    print(f"{done}\t{total}\t{desc}", flush=True)


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
    from twin.train import data
    from twin.train.config import TrainConfig
    from twin.train.loop import load_data

    data.chunk_listener = _report
    cache_transformers_index()
    load_data(TrainConfig.model_validate_json(sys.stdin.read()))


if __name__ == "__main__":
    main()
