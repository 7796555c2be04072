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

:func:`import_modeling` loads peft and transformers' modeling code with scipy hidden: transformers'
loss registry imports ``scipy.optimize`` (~300 modules, ~0.2 s) for the Hungarian matching of its
object-detection losses, which a causal LM never calls.

:func:`cache_transformers_index`: transformers' list of what each of its ~1,700 model files
exports, which every process that loads a tokenizer or model builds by reading them all (twice),
kept in the user's cache while those files are unchanged.

:func:`gc_paused`: Python's cyclic garbage collector stays off while the stack imports and the
model loads (~400k module, class, function and tensor objects that a collection walks again and
again and never frees): the first optimizer step ~14% earlier (bench/RESULTS.md, issue 21). After
that step they are frozen (``gc.freeze``) for the rest of the run instead of walked by every full
collection: ~1 s less wall for a tiny run.
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


def import_modeling() -> None:
    """peft and ``transformers.modeling_utils`` (which peft imports), without scipy."""
    with hidden("scipy"):
        _forget_scipy_probe()  # a probe answered before the block would send the losses to a hidden scipy
        import peft  # noqa: F401
    _forget_scipy_probe()  # scipy is importable again: later probes say so


def _forget_scipy_probe() -> None:
    probe = getattr(sys.modules.get("transformers.utils.import_utils"), "is_scipy_available", None)
    if hasattr(probe, "cache_clear"):
        probe.cache_clear()


_paused = False  # whether gc_paused turned the collector off (and resume_gc should turn it back on)
_frozen = False  # whether resume_gc froze the heap (and gc_paused's end should unfreeze it)


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic GC off inside the block, or until :func:`resume_gc` (a caller's own ``gc.disable()`` is left).

    What :func:`resume_gc` froze is unfrozen when the block ends, so a process that goes on (a test,
    the demo) collects it again as usual.
    """
    global _paused
    if not gc.isenabled():
        yield
        return
    gc.disable()
    _paused = True
    try:
        yield
    finally:
        _thaw()


def resume_gc() -> None:
    """The collector back on, if :func:`gc_paused` turned it off (the loop calls it after its first step).

    What the imports and the model load left is frozen first (``gc.freeze``): it lives as long as the
    run, and otherwise the next full collections walk all of it again (~1 s of a tiny run's wall).
    """
    global _paused, _frozen
    if _paused:
        _paused = False
        gc.freeze()
        _frozen = True
        gc.enable()


def _thaw() -> None:
    """The collector on (if still paused) and what :func:`resume_gc` froze back in its generations."""
    global _frozen
    resume_gc()
    if _frozen:
        _frozen = False
        gc.unfreeze()


# --------------------------------------------------------------------------------------------
# transformers' index of its model files, kept between runs

_INDEX_MODULE = "transformers.utils.import_utils"
_INDEX_VERSION = 2  # of the cache file's layout


def cache_transformers_index() -> None:
    """Before transformers is imported: its index of ``models/`` comes from a cache while the files are unchanged.

    ``import transformers`` reads all ~1,700 of its model files to list what each exports (its
    ``define_import_structure``), and ``transformers.models`` (imported by any tokenizer or model
    class) reads them again: ~0.6 CPU s. The answers depend only on those files, so they are stored in
    ``$XDG_CACHE_HOME/twin/transformers-index.json`` under a digest of their paths, sizes and mtimes
    (a 15 ms stat walk) and read back instead. Anything unexpected falls back to transformers' own scan.
    """
    if _INDEX_MODULE in sys.modules or any(isinstance(f, _IndexFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _IndexFinder())


class _IndexFinder:
    """Finds ``transformers.utils.import_utils`` as usual, and wraps its scan once the module has run."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != _INDEX_MODULE:
            return None
        sys.meta_path.remove(self)  # one module, once
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(name, path)
        if spec is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module: Any) -> None:
            run(module)
            scan = getattr(module, "define_import_structure", None)
            if callable(scan):
                module.define_import_structure = _cached_index(scan)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _cached_index(scan: Any) -> Any:
    """``scan`` of transformers' whole ``models`` directory answered from the cache when the files match.

    transformers scans it twice: from its ``__init__`` (``prefix="models"``) and from
    ``transformers/models/__init__.py`` (given that file: no prefix). Each answer is kept under its
    prefix; a single model's package (a few files) is left to transformers.
    """
    import functools
    import os

    digests: dict[str, str] = {}  # one stat walk per process

    @functools.wraps(scan)
    def define_import_structure(*args: Any, **kwargs: Any) -> Any:
        try:  # any surprise (another signature, a damaged cache) is transformers' own scan
            return _answered(args, kwargs)
        except Exception:  # noqa: BLE001
            return scan(*args, **kwargs)

    def _answered(args: tuple, kwargs: dict) -> Any:
        module_path = (
            args[0] if args else kwargs["module_path"]
        )  # transformers 5.x: (module_path, prefix=None)
        prefix = args[1] if len(args) > 1 else kwargs.get("prefix")
        root = str(module_path)
        root = os.path.dirname(root) if os.path.isfile(root) else root
        if os.path.basename(root) != "models" or os.path.basename(os.path.dirname(root)) != "transformers":
            return scan(*args, **kwargs)
        key = digests.get(root) or digests.setdefault(root, _files_digest(root))
        stored = _read_index(key)
        hit = _decoded(stored.get(str(prefix)))
        if hit is not None:
            return hit
        structure = scan(*args, **kwargs)
        _write_index(key, stored | {str(prefix): structure})
        return structure

    return define_import_structure


def index_file() -> Any:
    import os
    from pathlib import Path

    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "twin" / "transformers-index.json"


def _files_digest(root: str) -> str:
    """What transformers' scan reads: every file's path, size and mtime under ``root``."""
    import hashlib
    import os

    h = hashlib.sha256(f"{_INDEX_VERSION}\0{root}\0".encode())
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for e in sorted(entries, key=lambda e: e.name):
                if e.name == "__pycache__":
                    continue
                if e.is_dir():
                    stack.append(e.path)
                else:
                    st = e.stat()
                    h.update(f"{e.path}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()


def _read_index(key: str) -> dict:
    """The stored answers (prefix -> JSON form) if they were made from files with this digest, else {}."""
    import json

    try:
        data = json.loads(index_file().read_text(encoding="utf-8"))
        return dict(data["index"]) if data.get("key") == key else {}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):  # missing or damaged: scan again
        return {}


def _decoded(stored: Any) -> dict | None:
    """A stored answer back in transformers' form (frozenset -> module -> set), or None."""
    try:
        return {frozenset(b): {m: set(names) for m, names in mods.items()} for b, mods in stored}
    except (TypeError, ValueError, AttributeError):
        return None


def _write_index(key: str, answers: dict) -> None:
    from twin.fileio import atomic_write_json

    def encoded(structure: Any) -> Any:
        if not isinstance(structure, dict):  # already in the stored form
            return structure
        return [[sorted(b), {m: sorted(n) for m, n in mods.items()}] for b, mods in structure.items()]

    try:
        index = {prefix: encoded(structure) for prefix, structure in answers.items()}
        atomic_write_json(index_file(), {"key": key, "index": index}, indent=None)
    except (OSError, TypeError, AttributeError):  # a read-only home or an unexpected shape: no cache
        pass
