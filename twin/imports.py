"""Importing the training stack without what a run never uses (measured: bench/RESULTS.md#compare-train).

``import lightning.fabric`` runs ``lightning/__init__.py``, which imports ``lightning.pytorch`` (the
Trainer, unused here), and Fabric's import-time version probe imports ``torchmetrics`` whole, which
imports matplotlib (building a font cache on first use), scipy and more. (peft's import of
bitsandbytes, which looks for kernels on the Hugging Face hub, is blocked for every entry point in
``twin/__init__.py``; ``check_quantize`` lets it in for QLoRA.)

:func:`import_fabric` loads Fabric with those hidden: ``lightning`` is registered as a bare package
(its subpackages import as usual, its ``__init__`` does not run) and ``torchmetrics`` fails to import
inside the block (so the probe answers "not installed"), then becomes importable again. Nothing twin
calls depends on them; ``tests/test_train_imports.py`` holds ``twin train`` to this.

:func:`gc_paused`: Python's cyclic garbage collector stays off while the stack imports and the
model loads (~400k module, class, function and tensor objects that a collection walks again and
again and never frees): the first optimizer step ~14% earlier (bench/RESULTS.md, issue 21).
"""

from __future__ import annotations

import gc
import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def hidden(*names: str) -> Iterator[None]:
    """Inside the block, ``import name`` raises ImportError for each of ``names`` not yet imported."""
    mine = [n for n in names if n not in sys.modules]
    for n in mine:
        sys.modules[n] = None  # type: ignore[assignment]  # the import system's "not importable"
    try:
        yield
    finally:
        for n in mine:
            if sys.modules.get(n, 0) is None:
                del sys.modules[n]


def _bare_package(name: str) -> None:
    """Register package ``name`` without running its ``__init__`` (its submodules import as usual)."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.submodule_search_locations is None:
        return
    sys.modules[name] = importlib.util.module_from_spec(spec)


def import_fabric() -> Any:
    """``lightning.fabric.Fabric``, without lightning's Trainer and torchmetrics."""
    with hidden("torchmetrics"):
        _bare_package("lightning")
        from lightning.fabric import Fabric
    return Fabric


_paused = False  # whether gc_paused turned the collector off (and resume_gc should turn it back on)


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic GC off inside the block, or until :func:`resume_gc` (a caller's own ``gc.disable()`` is left)."""
    global _paused
    if not gc.isenabled():
        yield
        return
    gc.disable()
    _paused = True
    try:
        yield
    finally:
        resume_gc()


def resume_gc() -> None:
    """The collector back on, if :func:`gc_paused` turned it off (the loop calls it after its first step)."""
    global _paused
    if _paused:
        _paused = False
        gc.enable()
