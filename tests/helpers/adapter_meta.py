"""A twin.json record for tests that need only the serving part of one (template, prepare, budget, memory)."""

from __future__ import annotations

from typing import Any

from twin.adapter_meta import AdapterMeta


def meta_with(template: str = "plain-v1", prepare: dict | None = None, **fields: Any) -> AdapterMeta:
    """A valid :class:`AdapterMeta` (through the same validation as a file) with the given fields; the
    base record names no real base, so it is for prompt building, not for loading."""
    data = {"format": 1, "base_model": {"fingerprint": "v2:sha256:0000000000000000"}, "template": template,
            "prepare": prepare or {}, "train": {}, **fields}  # fmt: skip
    return AdapterMeta.from_dict(data, "test twin.json")
