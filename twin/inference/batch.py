"""Continuous batching: one thread owns the model and decodes every running reply in one forward pass.

The picture is vLLM's: explicit ``waiting`` and ``running`` lists, a policy that decides
(:func:`twin.inference.schedule.schedule`, pure) and a runner that calls the model. Each loop turn

1. asks the policy: finished or abandoned rows retire, waiting requests whose client left are
   dropped, and waiting ones join (first come, first served) while the batch has fewer than
   ``max_batch`` rows and the tokens in flight stay within ``max_tokens``;
2. prefills all joining prompts in one forward pass (left-padded to the longest; one prompt alone
   is exactly the forward pass a lone request gets), takes each one's first token, and writes their
   KV cache into free slots of the batch's cache (:mod:`twin.inference.batch_cache`), the running rows
   untouched; requests that arrived during that prefill are prefilled next, before any decode step
   (8 requests sent at once join as 1 + 7 and then decode in step, not one row a step ahead);
3. runs one decode step for all running rows together; greedy rows pick their tokens with one
   ``argmax`` over the batch (one transfer to the host), sampled rows with their own generators.

KV cache: :class:`~twin.inference.batch_cache.BatchCache`, preallocated buffers written in place, every
row right-aligned at the same column; an attention mask hides each row's left padding and explicit
``position_ids`` give each row its own positions.

Adapters: a batch whose rows all use one adapter runs with that adapter active (``set_adapter``); an
all-base batch switches the LoRA layers off by their flag (not peft's ``disable_adapter()``, which
walks the model and flips ``requires_grad`` at every step); a mixed batch gives each row its own
adapter in the same forward pass through :class:`~twin.inference.multi_lora.MultiLora` (every adapter's
A and B stacked per layer, a row mask picks each row's), or peft's per-row ``adapter_names``
(``"__base__"`` = adapters off) for LoRA layers the stack cannot express.

Each row keeps its own :class:`~twin.inference.decoding.Decoding` (sampling parameters, random
generator, stop rules), so a reply is the same token for token as when it is decoded alone.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from twin.errors import TwinError
from twin.inference.decoding import Decoding, greedy_tokens
from twin.inference.multi_lora import MultiLora
from twin.inference.params import Generation, GenParams
from twin.inference.schedule import schedule
from twin.model.kv_cache import cache_kwarg, last_logits_only, output_cache

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
    def cancelled(self) -> bool:
        return self.cancel.is_set()

    @property
    def finished(self) -> bool:
        return self.dec is not None and self.dec.done

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


AUTO_MAX_BATCH = 32  # the most rows `auto` picks (bench/RESULTS.md, generation round 5: 32 clients)
KV_SHARE = 4  # `auto` lets the batch's KV cache take at most 1/KV_SHARE of the memory left after loading


def auto_max_batch(free_bytes: int | None, per_token: int, row_tokens: int) -> int:
    """Rows to decode together when not told: as many as fit in a quarter of ``free_bytes``, 1..32.

    A row is counted at twice ``row_tokens`` (its prompt and longest reply) because the batch's
    buffer keeps headroom columns on both sides (:mod:`twin.inference.batch_cache`). A tiny base or
    Falcon-7B (8 KiB a token) gets 32; Llama-3-8B (128 KiB a token) beside its 16 GB of weights on a
    24 GiB machine gets a handful. Unknown free memory: 8.
    """
    if not free_bytes:
        return 8
    rows = free_bytes // KV_SHARE // max(1, 2 * row_tokens * per_token)
    return int(max(1, min(AUTO_MAX_BATCH, rows)))


class Scheduler:
    """Owns ``model`` on one thread; :meth:`submit` queues a request and returns its future."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_batch: int = 8,
        max_tokens: int | None = None,
        share_adapters: bool = False,
    ):
        if max_batch < 1:
            raise TwinError(f"max_batch {max_batch}: must be >= 1")
        limit = getattr(model.config, "max_position_embeddings", None) or 2048
        self.model, self.tokenizer = model, tokenizer
        self.max_batch = max_batch
        self.max_tokens = max_tokens or max_batch * limit
        self.lock = threading.Lock()  # held while the model runs (tests may borrow the model with it)
        self._cv = threading.Condition()
        self._waiting: deque[Request] = deque()
        from twin.inference.batch_cache import BatchCache  # imports transformers: not at module import

        self.cache = BatchCache(model.config.num_hidden_layers, max_batch)
        self._thread: threading.Thread | None = None
        self.peak_batch = 0  # most rows seen in one decode step (for tests and the log)
        self.prefills = 0  # prefill forward passes (joining prompts share one)
        self.multi_lora: MultiLora | None = None  # built at the first mixed-adapter batch
        self.kv = cache_kwarg(model)  # "cache" or "past_key_values" (twin/model/kv_cache.py)
        self.share_adapters = share_adapters  # a server's: peft's LoRA weights become views of the stack
        self.idle_trim_s = 1.0  # idle this long after a batch: freed memory goes back to the system
        self.trims = 0  # times it did (for tests)

    @property
    def running(self) -> list[Request]:
        return self.cache.items

    @property
    def pending(self) -> int:
        with self._cv:
            return len(self._waiting) + len(self.running)

    def submit(self, req: Request) -> Future:
        """Queue ``req``; a request that could never fit the token cap is refused here."""
        req.dec = Decoding(self.model, self.tokenizer, req.ids, req.params)
        if req.tokens > self.max_tokens:
            log.warning(
                "refused a request needing %d tokens of KV cache (prompt %d + max_new_tokens %d): "
                "over the cap of %d tokens in flight (the max_batch_tokens setting)",
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
        trimmed = True  # nothing freed yet
        while True:
            with self._cv:
                while not self._waiting and not self.running:
                    if not self._cv.wait(timeout=60 if trimmed else self.idle_trim_s):
                        if not trimmed:  # idle for a moment: give the batch's freed memory back
                            trimmed = True
                            self.trims += trim_heap()
                            continue
                        self._thread = None  # idle: the thread ends, the next submit starts one
                        return
                trimmed = False
                plan = schedule(
                    self._waiting, self.running, max_batch=self.max_batch, max_tokens=self.max_tokens
                )
                for req in plan.drop + plan.admit:
                    self._waiting.remove(req)
                if plan.retire:
                    self.cache.drop(plan.retire)
            for req in plan.drop:
                self._finish(req, "cancelled")
            for req in plan.retire:
                self._finish(req, None if req.dec.done else "cancelled")
            if plan.admit:
                self._prefill(plan.admit)
                if self._arrived():  # came in during the prefill: they join before the next step
                    continue
            if self.running:
                self._step()

    def _arrived(self) -> bool:
        """Requests are waiting and the batch has a free row (the policy decides which join)."""
        with self._cv:
            return bool(self._waiting) and len(self.running) < self.max_batch

    def _prefill(self, reqs: list[Request]) -> None:
        """Run the joining prompts in one forward pass, take each one's first token, add them to the batch."""
        import torch

        now = time.perf_counter()
        for req in reqs:
            req.started = req.dec.stats.started = now
        try:
            ids, mask = _left_padded([req.dec.seq[0] for req in reqs])
            extra_in = {} if len(reqs) == 1 else {"attention_mask": mask, "position_ids": _positions(mask)}
            with self.lock, self._adapters([r.adapter for r in reqs]) as extra, torch.inference_mode():
                out = self.model(input_ids=ids, use_cache=True, logits_to_keep=last_logits_only(ids.shape[1]),
                                 **extra_in, **extra)  # fmt: skip
                self.prefills += 1
                log.debug("prefill: %d joining, %d running", len(reqs), len(self.running))
                self._take(reqs, out.logits[:, -1, :])
        except Exception as e:  # noqa: BLE001 (the requests fail, the server goes on)
            log.error("generation failed: %s", type(e).__name__)
            for req in reqs:
                req.future.set_exception(e)
            return
        joining = [i for i, r in enumerate(reqs) if not (r.dec.done or r.cancel.is_set())]
        for req in (r for i, r in enumerate(reqs) if i not in joining):
            self._finish(req, "cancelled" if not req.dec.done else None)
        if not joining:
            return
        cache = output_cache(out)
        if len(joining) < len(reqs):
            cache.batch_select_indices(torch.tensor(joining))
        rows = [reqs[i] for i in joining]
        room = max(r.params.max_new_tokens - r.dec.stats.completion_tokens for r in rows)
        with self._cv:
            self.cache.join(rows, cache, mask[joining], room)

    def _step(self) -> None:
        """One decode step for every running row (rows that ended retire at the next turn)."""
        import torch

        rows = list(self.running)
        try:
            ids = torch.tensor([[r.dec.last] for r in rows])
            mask, positions = self.cache.step_inputs()
            with self.lock, self._adapters([r.adapter for r in rows]) as extra, torch.inference_mode():
                out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                                 **{self.kv: self.cache.cache}, use_cache=True, logits_to_keep=1, **extra)  # fmt: skip
                self.cache.advance()
                self.peak_batch = max(self.peak_batch, len(rows))
                self._take(rows, out.logits[:, -1, :])
        except Exception as e:  # noqa: BLE001
            log.error("generation failed: %s", type(e).__name__)
            with self._cv:
                self.cache.drop(rows)
            for req in rows:
                req.future.set_exception(e)

    def _take(self, reqs: list[Request], logits: Any) -> None:
        """Each row's next token from its row of ``logits``: greedy rows with one argmax and one host sync."""
        greedy = [i for i, r in enumerate(reqs) if r.dec.greedy and not r.cancel.is_set()]
        if greedy:
            rows = logits if len(greedy) == len(reqs) else logits[greedy]
            tokens = greedy_tokens([reqs[i].dec for i in greedy], rows)
            for i, token in zip(greedy, tokens, strict=True):
                self._emit(reqs[i], reqs[i].dec.accept(token))
        for i, req in enumerate(reqs):
            if not req.dec.greedy and not req.cancel.is_set():
                self._emit(req, req.dec.step(logits[i : i + 1]))

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
            if self.multi_lora is not None:
                self.multi_lora.close()
            self.multi_lora = multi = MultiLora(self.model, share=self.share_adapters)
            log.debug(  # how rows of different adapters share a step: for `twin -v`, not for the owner
                "mixed-adapter batches: %s", f"peft's adapter_names ({multi.reason})"
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
        multi = self._multi_lora()
        if len(unique) > 1:
            if multi is None:
                yield {"adapter_names": [n or PEFT_BASE for n in names]}
                return
            with multi.rows(names):
                yield {}
            return
        (name,) = unique
        if name is None:
            with multi.adapters_off() if multi is not None else model.disable_adapter():
                yield {}
            return
        if model.active_adapter != name:
            model.set_adapter(name)
        yield {}


def trim_heap() -> int:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim``); 1 if it ran.

    A prefill's activations are freed into glibc's heap, which keeps them (~50 MiB after 8 prompts on
    a 0.5B model): the server's memory would stay at its busiest moment's. Not glibc: nothing to do.
    """
    libc = _glibc()
    if libc is None:
        return 0
    libc.malloc_trim(0)
    return 1


@functools.cache
def _glibc() -> Any:
    """The C library when it is glibc (it has ``malloc_trim``), else None."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018 (an AttributeError here: not glibc)
    except (OSError, AttributeError):
        return None
    return libc


def _left_padded(seqs: list[Any]) -> tuple[Any, Any]:
    """``(ids [n, longest], mask [n, longest])``: the sequences right-aligned, padding (id 0) on the left."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.zeros((len(seqs), width), dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s) :] = s
        mask[i, width - len(s) :] = 1
    return ids, mask


def _positions(mask: Any) -> Any:
    """Each row's positions under left padding: 0 at its first real token (padding clamped to 0)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def generate_many(
    scheduler: Scheduler, requests: list[Request], on_done: Callable[[], None] | None = None
) -> list[Generation]:
    """Submit all ``requests`` and wait for them; results in the same order."""
    futures = [scheduler.submit(r) for r in requests]
    if on_done is not None:
        for f in futures:
            f.add_done_callback(lambda _f: on_done())
    return [f.result() for f in futures]
