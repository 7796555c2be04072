"""How generation calls a model's forward: the KV cache's name across transformers 5.x, the logits kept.

transformers 5.2x renamed a model's ``past_key_values`` argument (and output field) to ``cache``;
the old name warns and goes away in 5.40. twin supports the whole 5.x range (pyproject), so
generation asks the model which name its ``forward`` takes instead of passing either blindly.

:func:`last_logits_only`: only the last position goes through the LM head, in a copy of its own.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any


def cache_kwarg(model: Any) -> str:
    """``"cache"`` or ``"past_key_values"``: the name ``model``'s forward takes (through peft too)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return _name_for(type(inner))


@functools.cache
def _name_for(cls: type) -> str:
    forward = getattr(cls, "forward", None)
    if forward is None:
        return "past_key_values"  # not a module: a wrapper that passes keywords on, understood by every 5.x
    return "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"


def output_cache(out: Any) -> Any:
    """The cache a forward pass returned, under either name."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def last_logits_only(seq_len: int) -> Any:
    """``logits_to_keep`` for a forward pass over ``seq_len`` positions: the last one's logits only.

    For a prompt, the position is given as an index tensor rather than transformers' ``1`` (a slice):
    the slice ``[:, -1:, :]`` keeps the whole sequence's batch stride, and torch cannot fold
    ``F.linear`` of such a 3-D input into one matmul when the weight needs no grad (peft freezes the
    head): it runs ``bmm`` on an expanded copy of the whole head instead, 1.6 s a one-row prefill and
    12.8 s an eight-row one for Qwen2.5-0.5B's 152k x 896 head at bf16 (torch 2.13; bench/RESULTS.md).
    Indexing copies the kept rows (microseconds) and gives the same logits bit for bit.
    """
    if seq_len <= 1:
        return 1
    import torch

    return torch.tensor([seq_len - 1])
