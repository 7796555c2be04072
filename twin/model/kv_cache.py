"""The KV cache argument across transformers 5.x: ``past_key_values`` became ``cache``.

transformers 5.2x renamed a model's ``past_key_values`` argument (and output field) to ``cache``;
the old name warns and goes away in 5.40. twin supports the whole 5.x range (pyproject), so
generation asks the model which name its ``forward`` takes instead of passing either blindly.
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
