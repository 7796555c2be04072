"""The model behind the server: one base, many adapters, one generation at a time.

The base is loaded once and every adapter is registered on it by name (peft multi-adapter:
``PeftModel.from_pretrained`` + ``load_adapter``); a request picks one with ``set_adapter`` or
runs the bare base under ``disable_adapter``. Which adapter is active and the sampling state are
properties of the one shared model, so generation is serialized: a single worker thread takes jobs
from a bounded queue (:class:`Gate`), and the engine's lock makes that hold even if two apps share
an engine. A full queue is refused at once (the app turns it into 503 + ``Retry-After``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from twin.errors import TwinError
from twin.model.generate import Generation, GenParams, build_reply_prompt, speaker_stops, stream_with_stats
from twin.prompt import resolve_template
from twin.serve.schemas import NAME_PATTERN

log = logging.getLogger(__name__)

BASE_NAME = "base"  # the bare base model, adapters disabled
QUANTIZE_CHOICES = ("int8", "nf4")


@dataclass
class Adapter:
    name: str
    path: Path | None
    meta: dict
    template: str

    @property
    def created(self) -> str | None:
        return self.meta.get("created")


def parse_adapter_specs(specs: list[str]) -> list[tuple[str, Path]]:
    """``--adapter DIR`` or ``--adapter NAME=DIR`` -> ``[(name, dir)]``; the name defaults to the dir name."""
    out: list[tuple[str, Path]] = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or os.sep in name or not name:
            name, path = Path(spec).name, spec
        if not re.match(NAME_PATTERN, name):
            raise TwinError(
                f"--adapter {spec}: name {name!r} must be letters, digits, '.', '_' or '-' (max 64); "
                "give one with --adapter NAME=DIR"
            )
        if name == BASE_NAME:
            raise TwinError(
                f"--adapter {spec}: the name 'base' is reserved for the bare base model; use NAME=DIR"
            )
        if any(n == name for n, _ in out):
            raise TwinError(
                f"--adapter {spec}: name {name!r} is used twice; give distinct names with NAME=DIR"
            )
        out.append((name, Path(path)))
    return out


def check_adapters(base: Path, adapters: list[tuple[str, Path]]) -> dict[str, dict]:
    """Every adapter's twin.json, refusing any trained on another base (before anything is loaded)."""
    from twin.model.load import base_fingerprint, fingerprint_matches, read_adapter_meta

    fp = base_fingerprint(base)
    metas: dict[str, dict] = {}
    for name, path in adapters:
        meta = read_adapter_meta(path)
        want = meta["base_model"].get("fingerprint")
        if want != fp and not fingerprint_matches(want, base, str(path / "twin.json")):
            trained_on = meta["base_model"].get("path") or "another base"
            raise TwinError(
                f"{path / 'twin.json'}: adapter '{name}' was trained on a different base model "
                f"({trained_on}, fingerprint {want}) than --base {base} (fingerprint {fp}); "
                "serve it with the base it was trained on, or retrain it on this one"
            )
        if not (path / "adapter_config.json").is_file():
            raise TwinError(
                f"{path}: no adapter_config.json, so these are not PEFT adapter files; retrain it"
            )
        metas[name] = meta
    return metas


def check_quantize(quantize: str | None, device: str) -> None:
    if quantize in (None, "", "none"):
        return
    if quantize not in QUANTIZE_CHOICES:
        raise TwinError(f"--quantize {quantize}: unknown; use int8 or nf4 (or leave it out)")
    import torch

    if device == "cpu" or not torch.cuda.is_available():
        raise TwinError(
            f"--quantize {quantize} needs a CUDA GPU (bitsandbytes kernels) and none is available here; "
            "leave out --quantize to serve in full precision on this machine"
        )


class Engine:
    """The loaded base + adapters; ``run`` generates one reply with the lock held."""

    def __init__(
        self,
        base: str | os.PathLike,
        adapters: list[str | os.PathLike | tuple[str, str | os.PathLike]] | None = None,
        *,
        default: str | None = None,
        dtype: str = "auto",
        quantize: str | None = None,
        device: str = "auto",
    ) -> None:
        import torch

        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        check_quantize(quantize, device)
        specs = [f"{a[0]}={a[1]}" if isinstance(a, tuple) else str(a) for a in (adapters or [])]
        pairs = parse_adapter_specs(specs)
        self.base_path = Path(base)
        names = [n for n, _ in pairs] + [BASE_NAME]
        if default is not None and default not in names:  # checked before the slow model load
            raise TwinError(f"--default-adapter {default}: not registered; registered: {', '.join(names)}")
        metas = check_adapters(self.base_path, pairs)

        from twin.model.load import load_base, model_type

        t0 = time.perf_counter()
        model, tokenizer = load_base(self.base_path, dtype=dtype, quantize=quantize, device=device)
        self.tokenizer = tokenizer
        self.base_model_type = model_type(self.base_path)
        self.adapters: dict[str, Adapter] = {}
        if pairs:
            from peft import PeftModel

            (first, first_path), rest = pairs[0], pairs[1:]
            model = PeftModel.from_pretrained(model, str(first_path), adapter_name=first, is_trainable=False)
            for name, path in rest:
                model.load_adapter(str(path), adapter_name=name, is_trainable=False)
            for name, path in pairs:
                meta = metas[name]
                self.adapters[name] = Adapter(name, path, meta, meta.get("template") or "plain-v1")
        self.model = model.eval()
        # The bare base renders prompts like the first adapter (so base-vs-twin compare like for like).
        ref = next(iter(self.adapters.values()), None)
        base_meta = (
            dict(ref.meta) if ref else {"template": resolve_template("auto", tokenizer), "prepare": {}}
        )
        self.adapters[BASE_NAME] = Adapter(BASE_NAME, None, base_meta, base_meta["template"])
        self.default = default or (pairs[0][0] if pairs else BASE_NAME)
        self.lock = threading.Lock()
        log.info(
            "loaded %s base in %.1fs with adapters: %s (default %s)",
            self.base_model_type,
            time.perf_counter() - t0,
            ", ".join(self.adapters),
            self.default,
        )

    @property
    def names(self) -> list[str]:
        return list(self.adapters)

    def resolve(self, name: str | None) -> Adapter | None:
        return self.adapters.get(name or self.default)

    @contextlib.contextmanager
    def _use(self, adapter: Adapter) -> Iterator[None]:
        if adapter.name == BASE_NAME:
            if hasattr(self.model, "disable_adapter"):
                with self.model.disable_adapter():
                    yield
            else:
                yield
            return
        self.model.set_adapter(adapter.name)
        yield

    def run(
        self,
        adapter: Adapter,
        history: list[dict],
        message: str,
        contact: str | None,
        params: GenParams,
        on_delta: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> Generation:
        """My reply with ``adapter``; ``on_delta`` gets each text delta (for streaming)."""
        if cancel is not None and cancel.is_set():  # its client left while it was queued
            return Generation("", 0, 0, 0.0, "cancelled")
        with self.lock, self._use(adapter):
            prompt = build_reply_prompt(adapter.meta, self.tokenizer, history, message, contact)
            params = replace(
                params, extra_stops=(*params.extra_stops, *speaker_stops(contact, adapter.template))
            )
            deltas, stats = stream_with_stats(self.model, self.tokenizer, prompt, params)
            parts: list[str] = []
            for d in deltas:
                parts.append(d)
                if on_delta is not None:
                    on_delta(d)
                if cancel is not None and cancel.is_set():
                    deltas.close()
                    stats.stopped_by = "cancelled"
                    log.info("generation cancelled after %d tokens: the client left", stats.completion_tokens)
                    break
            # The iterator sets seconds when it ends; a cancelled one did not.
            seconds = stats.seconds or (time.perf_counter() - stats.started)
            return Generation(
                "".join(parts), stats.prompt_tokens, stats.completion_tokens, seconds, stats.stopped_by
            )


class Overloaded(Exception):
    def __init__(self, retry_after: int):
        super().__init__("the server is busy")
        self.retry_after = retry_after


@dataclass
class Gate:
    """A single worker thread and a bounded queue in front of it.

    ``queue_size`` requests may wait while one runs; one more is refused with :class:`Overloaded`,
    whose ``retry_after`` estimates (from recent latencies) when a slot frees up.
    """

    queue_size: int = 32
    _pending: int = 0
    _latency: float = 1.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _pool: ThreadPoolExecutor | None = None

    @property
    def pending(self) -> int:
        return self._pending

    def reserve(self) -> None:
        """Claim a place (running or waiting) or raise :class:`Overloaded`."""
        with self._lock:
            if self._pending >= self.queue_size + 1:
                raise Overloaded(max(1, math.ceil(self._pending * self._latency)))
            self._pending += 1

    def release(self) -> None:
        with self._lock:
            self._pending = max(0, self._pending - 1)

    def submit(self, fn: Callable[[], Any]) -> Future:
        """Run ``fn`` on the worker for a place already taken with :meth:`reserve`."""

        def job() -> Any:
            t0 = time.perf_counter()
            try:
                return fn()
            finally:
                # Smoothed service time: what Retry-After is estimated from.
                self._latency = 0.8 * self._latency + 0.2 * (time.perf_counter() - t0)
                self.release()

        try:
            with self._lock:
                if self._pool is None:  # first use, or the app was restarted after a shutdown
                    self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="twin-generate")
                return self._pool.submit(job)
        except BaseException:
            self.release()
            raise

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            self._pending = 0  # queued jobs are cancelled below and never release their place
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
