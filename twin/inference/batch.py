"""Continuous batching: one thread owns the model and decodes every running reply in one forward pass.

The picture is vLLM's scheduler: explicit ``waiting`` and ``running`` lists. Each loop turn

1. drops waiting requests whose client left, and admits waiting ones (first come, first served)
   while the batch has fewer than ``max_batch`` rows and the tokens in flight (prompt +
   ``max_new_tokens`` of every running reply) stay within ``max_tokens``;
2. runs each newly admitted prompt alone (prefill: exactly the forward pass a lone request gets),
   takes its first token, and merges its KV cache into the batch;
3. runs one decode step for all running rows together and hands each row its logits; a reply that
   ended (EOS, stop string, length, client gone) leaves the batch at once.

KV cache: one ``DynamicCache`` for the batch, every row left-padded to the longest; an attention
mask hides the padding and explicit ``position_ids`` give each row its own positions (transformers
5 computes positions from the cache length otherwise, which would shift every padded row). The
cache is re-stacked only when a row joins or leaves, and its all-padding left columns are trimmed.

Adapters: a batch whose rows all use one adapter runs with that adapter active (``set_adapter``, or
``disable_adapter`` for the bare base); a mixed batch gives each row its own adapter in the same
forward pass through :class:`~twin.inference.multi_lora.MultiLora` (every adapter's A and B stacked per
layer, a row mask picks each row's), or peft's per-row ``adapter_names`` (``"__base__"`` = adapters
off) for LoRA layers the stack cannot express.

Each row keeps its own :class:`~twin.inference.generate.Decoding` (sampling parameters, random
generator, stop rules), so a reply is the same token for token as when it is decoded alone.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from twin.errors import TwinError
from twin.inference.generate import Decoding, Generation, GenParams
from twin.inference.multi_lora import MultiLora

log = logging.getLogger(__name__)

PEFT_BASE = "__base__"  # peft's name for "no adapter" in a mixed batch


@dataclass(eq=False)
class Request:
    """One reply to generate; ``adapter`` None is the bare base (adapters off)."""

    ids: list[int]
    params: GenParams
    adapter: str | None = None
    on_delta: Callable[[str], None] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    future: Future = field(default_factory=Future)
    submitted: float = field(default_factory=time.perf_counter)
    started: float = 0.0
    dec: Decoding | None = None
    parts: list[str] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        """KV cache positions this reply may take: its prompt plus its longest reply."""
        return len(self.ids) + self.params.max_new_tokens


def kv_bytes_per_token(model: Any) -> int:
    """Bytes of KV cache one token takes (all layers, keys + values) in the model's dtype."""
    cfg = model.config
    layers = cfg.num_hidden_layers
    heads = cfg.num_attention_heads
    kv = getattr(cfg, "num_key_value_heads", None) or (1 if getattr(cfg, "multi_query", False) else heads)
    if getattr(cfg, "new_decoder_architecture", False):
        kv = getattr(cfg, "num_kv_heads", kv) or kv
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    size = next(model.parameters()).element_size()
    return 2 * layers * kv * head_dim * size


class _Batch:
    """The running rows, their shared left-padded KV cache and padding mask."""

    def __init__(self) -> None:
        self.rows: list[Request] = []
        self.cache: Any = None
        self.mask: Any = None  # [rows, cache length], 1 = a real token

    def add(self, req: Request, cache: Any) -> None:
        import torch

        n = cache.get_seq_length()
        mask = torch.ones((1, n), dtype=torch.long, device=req.dec.seq.device)
        if not self.rows:
            self.rows, self.cache, self.mask = [req], cache, mask
            return
        length = max(self.mask.shape[1], n)
        for mine, theirs in zip(self.cache.layers, cache.layers, strict=True):
            mine.keys = torch.cat([_left_pad(mine.keys, length), _left_pad(theirs.keys, length)])
            mine.values = torch.cat([_left_pad(mine.values, length), _left_pad(theirs.values, length)])
        self.mask = torch.cat([_left_pad(self.mask, length, dim=1), _left_pad(mask, length, dim=1)])
        self.rows.append(req)

    def keep(self, keep: list[int]) -> None:
        """Keep only the rows at ``keep``; drop the left columns that are padding in every row."""
        import torch

        self.rows = [self.rows[i] for i in keep]
        if not self.rows:
            self.cache = self.mask = None
            return
        idx = torch.tensor(keep, device=self.mask.device)
        self.mask = self.mask[idx]
        first = int((self.mask.sum(0) > 0).nonzero()[0])
        self.mask = self.mask[:, first:]
        for layer in self.cache.layers:
            layer.keys = layer.keys[idx, :, first:]
            layer.values = layer.values[idx, :, first:]


def _left_pad(t: Any, length: int, dim: int = 2) -> Any:
    import torch

    missing = length - t.shape[dim]
    if missing == 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)


class Scheduler:
    """Owns ``model`` on one thread; :meth:`submit` queues a request and returns its future."""

    def __init__(self, model: Any, tokenizer: Any, *, max_batch: int = 8, max_tokens: int | None = None):
        if max_batch < 1:
            raise TwinError(f"--max-batch {max_batch}: must be >= 1")
        limit = getattr(model.config, "max_position_embeddings", None) or 2048
        self.model, self.tokenizer = model, tokenizer
        self.max_batch = max_batch
        self.max_tokens = max_tokens or max_batch * limit
        self.lock = threading.Lock()  # held while the model runs (tests may borrow the model with it)
        self._cv = threading.Condition()
        self._waiting: deque[Request] = deque()
        self._batch = _Batch()
        self._thread: threading.Thread | None = None
        self.peak_batch = 0  # most rows seen in one decode step (for tests and the log)
        self.multi_lora: MultiLora | None = None  # built at the first mixed-adapter batch

    @property
    def pending(self) -> int:
        with self._cv:
            return len(self._waiting) + len(self._batch.rows)

    def submit(self, req: Request) -> Future:
        """Queue ``req``; a request that could never fit the token cap is refused here."""
        req.dec = Decoding(self.model, self.tokenizer, req.ids, req.params)
        if req.tokens > self.max_tokens:
            log.warning(
                "refused a request needing %d tokens of KV cache (prompt %d + max_new_tokens %d): "
                "over the cap of %d tokens in flight (--max-batch-tokens)",
                req.tokens, len(req.ids), req.params.max_new_tokens, self.max_tokens,
            )  # fmt: skip
            raise TwinError(
                f"the prompt ({len(req.ids)} tokens) plus max_new_tokens {req.params.max_new_tokens} is "
                f"over the server's cap of {self.max_tokens} tokens in flight; lower max_new_tokens"
            )
        with self._cv:
            self._waiting.append(req)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="twin-scheduler", daemon=True)
                self._thread.start()
            self._cv.notify()
        return req.future

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._waiting and not self._batch.rows:
                    if not self._cv.wait(timeout=60):
                        self._thread = None  # idle: the thread ends, the next submit starts one
                        return
                admitted = self._admit()
            for req in admitted:
                self._prefill(req)
            if self._batch.rows:
                self._step()

    def _admit(self) -> list[Request]:
        """Waiting requests that fit now, in arrival order (called with the condition held)."""
        for req in [r for r in self._waiting if r.cancel.is_set()]:
            self._waiting.remove(req)
            self._finish(req, "cancelled")
        used = sum(r.tokens for r in self._batch.rows)
        admitted: list[Request] = []
        while self._waiting and len(self._batch.rows) + len(admitted) < self.max_batch:
            req = self._waiting[0]
            if used + req.tokens > self.max_tokens:
                break
            self._waiting.popleft()
            used += req.tokens
            admitted.append(req)
        return admitted

    def _prefill(self, req: Request) -> None:
        """Run ``req``'s prompt alone, take its first token, and add it to the batch."""
        import torch

        req.started = time.perf_counter()
        req.dec.stats.started = req.started
        try:
            with self.lock, self._adapters([req.adapter]) as extra, torch.inference_mode():
                out = self.model(input_ids=req.dec.seq, use_cache=True, logits_to_keep=1, **extra)
            self._emit(req, req.dec.step(out.logits[:, -1, :]))
        except Exception as e:  # noqa: BLE001 (the request fails, the server goes on)
            log.error("generation failed: %s", type(e).__name__)
            req.future.set_exception(e)
            return
        if req.dec.done or req.cancel.is_set():
            self._finish(req, "cancelled" if not req.dec.done else None)
            return
        with self._cv:
            self._batch.add(req, out.past_key_values)

    def _step(self) -> None:
        """One decode step for every running row; rows that ended leave the batch."""
        import torch

        self._retire()  # rows whose client left while the others decoded
        b = self._batch
        if not b.rows:
            return
        try:
            ids = torch.tensor([[r.dec.last] for r in b.rows], device=b.mask.device)
            positions = b.mask.sum(1, keepdim=True)
            mask = torch.cat([b.mask, torch.ones_like(positions)], dim=1)
            with self.lock, self._adapters([r.adapter for r in b.rows]) as extra, torch.inference_mode():
                out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                                 past_key_values=b.cache, use_cache=True, logits_to_keep=1, **extra)  # fmt: skip
            b.mask, b.cache = mask, out.past_key_values
            self.peak_batch = max(self.peak_batch, len(b.rows))
            for i, req in enumerate(b.rows):
                if not req.cancel.is_set():
                    self._emit(req, req.dec.step(out.logits[i : i + 1, -1, :]))
        except Exception as e:  # noqa: BLE001
            log.error("generation failed: %s", type(e).__name__)
            with self._cv:
                for req in b.rows:
                    req.future.set_exception(e)
                b.keep([])
            return
        self._retire()

    def _retire(self) -> None:
        ended = [(i, r) for i, r in enumerate(self._batch.rows) if r.dec.done or r.cancel.is_set()]
        if not ended:
            return
        gone = {i for i, _ in ended}
        with self._cv:
            self._batch.keep([i for i in range(len(self._batch.rows)) if i not in gone])
        for _, req in ended:
            self._finish(req, None if req.dec.done else "cancelled")

    def _emit(self, req: Request, delta: str) -> None:
        if delta:
            req.parts.append(delta)
            if req.on_delta is not None:
                req.on_delta(delta)

    def _finish(self, req: Request, reason: str | None) -> None:
        """Resolve ``req``'s future; ``reason`` "cancelled" when its client left before it ended."""
        stats = req.dec.stats
        if reason == "cancelled":
            stats.stopped_by = "cancelled"
            stats.seconds = time.perf_counter() - stats.started if req.started else 0.0
            if req.started:
                log.info("generation cancelled after %d tokens: the client left", stats.completion_tokens)
        gen = req.dec.result("".join(req.parts))
        gen.queue_seconds = (req.started or time.perf_counter()) - req.submitted
        req.future.set_result(gen)

    def _multi_lora(self) -> MultiLora | None:
        """The stacked adapters for a mixed batch (rebuilt when the registered adapters change);
        None when the model has LoRA layers they cannot express (peft's ``adapter_names`` then)."""
        if self.multi_lora is None or self.multi_lora.stale():
            self.multi_lora = multi = MultiLora(self.model)
            log.info(
                "mixed-adapter batches: %s", "peft's adapter_names (LoRA layers other than Linear)"
                if not multi.supported else f"{len(multi.stacked)} adapters stacked over {len(multi.layers)} "
                f"LoRA layers ({multi.width} ranks), {len(multi.per_adapter)} run on their own rows (DoRA)",
            )  # fmt: skip
        return self.multi_lora if self.multi_lora.supported else None

    @contextlib.contextmanager
    def _adapters(self, names: list[str | None]) -> Iterator[dict]:
        """The forward-pass setting for rows using ``names``: one adapter made active, or per-row names."""
        model = self.model
        if not hasattr(model, "disable_adapter"):  # a plain model: no adapters at all
            yield {}
            return
        unique = set(names)
        if len(unique) > 1:
            multi = self._multi_lora()
            if multi is None:
                yield {"adapter_names": [n or PEFT_BASE for n in names]}
                return
            with multi.rows(names):
                yield {}
            return
        (name,) = unique
        if name is None:
            with model.disable_adapter():
                yield {}
            return
        if model.active_adapter != name:
            model.set_adapter(name)
        yield {}


def generate_many(
    scheduler: Scheduler, requests: list[Request], on_done: Callable[[], None] | None = None
) -> list[Generation]:
    """Submit all ``requests`` and wait for them; results in the same order."""
    futures = [scheduler.submit(r) for r in requests]
    if on_done is not None:
        for f in futures:
            f.add_done_callback(lambda _f: on_done())
    return [f.result() for f in futures]
