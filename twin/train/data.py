"""Training batches: length-grouped micro-batches in a replayable order, and what they cost.

Reading and tokenizing examples is shared with the evaluation and lives in :mod:`twin.examples`.
Everything here runs before the model is loaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from twin.errors import TwinError
from twin.fileio import atomic_write_bytes
from twin.train.config import TrainConfig

log = logging.getLogger(__name__)


def read_with_memory(
    path: str | Path, data_dir: str | Path, k: int, train_file: str = "train.jsonl", scope: str = "contact"
) -> list[dict]:
    """``read_examples`` plus, when ``k`` > 0, each example's ``memory`` within ``scope`` (index built if missing)."""
    from twin.examples import read_examples

    examples = read_examples(path)
    if k <= 0:
        return examples
    from twin.memory import Memory, ensure_memory

    memory = Memory.open(ensure_memory(data_dir, train_file))
    memory.scope = scope
    return memory.attach(examples, k)


def read_val(path: Path, cfg: TrainConfig) -> list[dict] | None:
    """The validation rows (with memory), or None (with a warning) when prepare wrote none."""
    if not path.is_file() or path.stat().st_size == 0 or not path.read_text(encoding="utf-8").strip():
        log.warning("%s: no validation examples; validation loss will not be reported", path)
        return None
    return read_with_memory(path, cfg.data.dir, cfg.data.memory, cfg.data.train_file, cfg.data.memory_scope)


def encode_split(rows: list[dict], path: Path, tokenizer: Any, template: str, cfg: TrainConfig) -> Any:
    """Tokenized examples, every prompt fitted to the prompt budget (``data.max_seq_length`` minus
    ``data.reply_tokens``): cached beside the data unless memory makes them per-run."""
    max_len, reply = cfg.data.max_seq_length, cfg.data.reply_tokens
    if cfg.data.memory:  # retrieved exchanges depend on the memory index too: encoded each run
        return encode_in_chunks(
            rows, tokenizer, template, max_len, desc=f"tokenizing {path.name}", reply_tokens=reply
        )
    return encode_cached(rows, path, cfg.base, tokenizer, template, max_len, reply_tokens=reply)


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


# Files that define how text becomes token ids: the tokenizer's (in the base dir) and twin's own
# rendering code, so a change to either makes a new cache entry instead of reusing stale ids.
_TOKENIZER_GLOBS = ("tokenizer*", "vocab*", "merges.txt", "special_tokens_map.json", "added_tokens.json",
                    "*.model", "chat_template*")  # fmt: skip
CACHE_DIR = ".twin-cache"
CHUNK = 2048  # examples per tokenizer call: a progress bar that moves, batches that stay large
# Also told of every chunk: the tokenizing helper's pipe to the trainer (twin/train/encode_ahead.py),
# whose own bar would go nowhere (its stderr is closed) while the trainer waits on it.
chunk_listener: Callable[[str, int, int], None] | None = None


def encode_cached(
    rows: Sequence[dict],
    source: str | Path,
    base: str | Path,
    tokenizer: Any,
    template: str,
    max_len: int,
    reply_tokens: int | None = None,
) -> Any:
    """``encode_examples`` of ``rows`` (read from ``source``), reusing the ids cached beside it.

        The cache (``<data dir>/.twin-cache/encoded-<key>.npz``) is keyed by the file's bytes, the
        base's tokenizer files, twin's rendering code, the template, ``max_len`` and ``reply_tokens`` (the
    prompt budget): a second run on the
        same data starts training without tokenizing. A read-only data dir just means no cache.
    """
    import numpy as np

    path = cache_file(source, base, template, max_len, reply_tokens)
    if path.is_file():
        try:
            with np.load(path) as z:
                enc = _from_arrays(z["flat"], z["offsets"], z["prompt_lens"], json.loads(str(z["stats"])))
            if enc.stats.get("dropped_prompt_too_long"):
                log.warning("%s: %d of %d examples dropped: their prompt alone is longer than "
                            "data.max_seq_length=%d", source, enc.stats["dropped_prompt_too_long"],
                            enc.stats["examples"], max_len)  # fmt: skip
            return enc
        except (OSError, ValueError, KeyError) as e:  # a damaged cache is rebuilt, never trusted
            log.debug("%s: unreadable cache (%s), re-encoding", path, e)
    enc = encode_in_chunks(
        rows, tokenizer, template, max_len, desc=f"tokenizing {Path(source).name}", reply_tokens=reply_tokens
    )
    try:
        path.parent.mkdir(exist_ok=True)
        buf = io.BytesIO()
        offsets = np.cumsum([0, *(len(x) for x in enc.ids)], dtype=np.int64)
        flat = np.fromiter((t for x in enc.ids for t in x), dtype=np.int32, count=int(offsets[-1]))
        np.savez(buf, flat=flat, offsets=offsets, prompt_lens=np.asarray(enc.prompt_lens, dtype=np.int32),
                 stats=np.asarray(json.dumps(enc.stats)))  # fmt: skip
        atomic_write_bytes(path, buf.getvalue())
    except OSError as e:
        log.debug("%s: not cached (%s)", path, e)
    return enc


def cache_file(
    source: str | Path, base: str | Path, template: str, max_len: int, reply_tokens: int | None = None
) -> Path:
    """Where :func:`encode_cached` keeps ``source``'s encoding for these settings."""
    key = _cache_key(source, base, template, max_len, reply_tokens)
    return Path(source).parent / CACHE_DIR / f"encoded-{key}.npz"


def encode_in_chunks(
    rows: Sequence[dict],
    tokenizer: Any,
    template: str,
    max_len: int,
    desc: str,
    reply_tokens: int | None = None,
) -> Any:
    """``encode_examples`` in chunks of ``CHUNK``, with a progress bar when there is more than one."""
    from tqdm.auto import tqdm

    from twin.examples import Encoded, encode_examples

    out = Encoded([], [], {})
    with tqdm(total=len(rows), desc=desc, unit="ex", disable=len(rows) <= CHUNK or None, leave=False) as bar:
        for start in range(0, len(rows), CHUNK):
            part = encode_examples(
                rows[start : start + CHUNK], tokenizer, template, max_len, reply_tokens=reply_tokens
            )
            out.ids += part.ids
            out.prompt_lens += part.prompt_lens
            for k, v in part.stats.items():
                out.stats[k] = out.stats.get(k, 0) + v
            done = min(start + CHUNK, len(rows))
            bar.update(done - start)
            if chunk_listener is not None:
                chunk_listener(desc, done, len(rows))
    return out


def _cache_key(
    source: str | Path, base: str | Path, template: str, max_len: int, reply_tokens: int | None = None
) -> str:
    import twin.examples
    import twin.prompt

    h = hashlib.sha256(f"{template}\0{max_len}\0{reply_tokens}\0".encode())
    files = [Path(source), Path(twin.examples.__file__), Path(twin.prompt.__file__)]
    files += sorted({f for g in _TOKENIZER_GLOBS for f in Path(base).glob(g) if f.is_file()})
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:24]


def _from_arrays(flat: Any, offsets: Any, prompt_lens: Any, stats: dict) -> Any:
    from twin.examples import Encoded

    ids = [flat[a:b].tolist() for a, b in zip(offsets[:-1], offsets[1:], strict=True)]
    return Encoded(ids, prompt_lens.tolist(), stats)


def make_batches(
    lengths: Sequence[int],
    micro_batch_size: int,
    *,
    seed: int,
    epoch: int,
    group_by_length: bool = True,
    pool: int = 64,
    world_size: int = 1,
) -> list[list[int]]:
    """The micro-batches (lists of example indices) of one epoch, in training order.

    Deterministic in (seed, epoch), which is what makes ``--resume`` replay the exact data order.
    With ``group_by_length``, shuffled indices are cut into pools of ``pool`` micro-batches, each
    pool sorted by length and cut into batches, and the batch order shuffled: similar lengths
    share a batch (little padding) while the order stays random. The batch count is trimmed to
    a multiple of ``world_size`` so every process runs the same number of steps.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    batches: list[list[int]] = []
    if group_by_length:
        size = micro_batch_size * pool
        for start in range(0, len(idx), size):
            chunk = sorted(idx[start : start + size], key=lambda i: lengths[i], reverse=True)
            batches.extend(chunk[j : j + micro_batch_size] for j in range(0, len(chunk), micro_batch_size))
        rng.shuffle(batches)
    else:
        batches = [idx[j : j + micro_batch_size] for j in range(0, len(idx), micro_batch_size)]
    if world_size > 1:
        keep = len(batches) - len(batches) % world_size
        if keep == 0:
            raise TwinError(
                f"only {len(batches)} micro-batch(es) for {world_size} devices; use fewer devices "
                "or a smaller micro_batch_size"
            )
        batches = batches[:keep]
    return batches


def padding_fraction(batches: Sequence[Sequence[int]], lengths: Sequence[int]) -> float:
    """Share of the tokens in padded batches that are padding."""
    real = padded = 0
    for b in batches:
        lens = [lengths[i] for i in b]
        real += sum(lens)
        padded += max(lens) * len(lens)
    return 1.0 - real / padded if padded else 0.0
