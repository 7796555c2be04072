"""Training batches: length-grouped micro-batches in a replayable order, and what they cost.

Reading and tokenizing examples is shared with the evaluation and lives in :mod:`twin.examples`.
Everything here runs before the model is loaded.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Sequence
from pathlib import Path

from twin.errors import TwinError

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


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


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
