"""The batch scheduler's policy, apart from the model: which waiting replies join, which rows leave.

A pure function of the two lists, as vLLM keeps its scheduler apart from its model runner: the
scheduler thread (:class:`twin.inference.batch.Scheduler`) asks :func:`schedule` at every turn and then
runs the model on the answer, so the policy is tested without a model (``tests/test_schedule.py``).

Policy: first come, first served. Running rows that ended (EOS, stop string, length) or whose client
left retire; waiting requests whose client left are dropped; then waiting requests join in arrival
order while the batch has fewer than ``max_batch`` rows and the KV cache positions in flight
(prompt + ``max_new_tokens`` of every row) stay within ``max_tokens``. A request that does not fit
blocks the ones behind it (no overtaking, so a long prompt is never starved by short ones).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar


class Row(Protocol):
    """What the policy reads of a request."""

    @property
    def tokens(self) -> int: ...  # KV cache positions it may take: prompt + max_new_tokens

    @property
    def cancelled(self) -> bool: ...  # its client left

    @property
    def finished(self) -> bool: ...  # its reply ended


R = TypeVar("R", bound=Row)


@dataclass(frozen=True)
class Plan:
    admit: list  # waiting requests that join the batch now, in arrival order
    drop: list  # waiting requests whose client left: answered "cancelled", never run
    retire: list  # running rows that leave the batch (ended or cancelled)


def schedule(waiting: Sequence[R], running: Sequence[R], *, max_batch: int, max_tokens: int) -> Plan:
    """This turn's :class:`Plan` for ``waiting`` (arrival order) and ``running``."""
    retire = [r for r in running if r.finished or r.cancelled]
    staying = [r for r in running if not (r.finished or r.cancelled)]
    drop = [r for r in waiting if r.cancelled]
    used = sum(r.tokens for r in staying)
    admit: list = []
    for req in (r for r in waiting if not r.cancelled):
        if len(staying) + len(admit) >= max_batch or used + req.tokens > max_tokens:
            break
        used += req.tokens
        admit.append(req)
    return Plan(admit=admit, drop=drop, retire=retire)
