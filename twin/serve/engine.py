"""The model behind the server: one base, many adapters, many replies decoded together.

The base is loaded once and every adapter is registered on it by name (peft multi-adapter:
``PeftModel.from_pretrained`` + ``load_adapter``). The model belongs to one scheduler thread
(:class:`twin.inference.batch.Scheduler`, continuous batching): requests join the running batch at the
next decode step, each with its own adapter (or the bare base), sampling parameters and seed.
The HTTP layer's admission (:class:`twin.serve.gate.Gate`, the 503s) sits in front of it, not in it.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twin.errors import TwinError
from twin.inference.batch import Request, Scheduler, auto_max_batch, kv_bytes_per_token
from twin.inference.generate import Conversation, Generation, GenParams, reply_prompt_ids, speaker_stops
from twin.inference.prompting import room_for
from twin.prompt import resolve_template

if TYPE_CHECKING:
    from twin.adapter_meta import AdapterMeta

log = logging.getLogger(__name__)

BASE_NAME = "base"  # the bare base model, adapters disabled
# A served adapter name (also a request's "adapter"/"model" field): what --adapter NAME=DIR accepts.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


@dataclass
class Adapter:
    name: str
    path: Path | None
    meta: AdapterMeta
    template: str
    memory: Any = None  # twin.memory.Memory for adapters trained with --memory

    @property
    def created(self) -> str | None:
        return self.meta.created


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


def check_adapters(base: Path, adapters: list[tuple[str, Path]]) -> dict[str, AdapterMeta]:
    """Every adapter's twin.json, refusing any trained on another base (before anything is loaded)."""
    from twin.adapter_meta import read_meta
    from twin.model.load import base_fingerprint, fingerprint_matches

    fp = base_fingerprint(base)
    metas: dict[str, AdapterMeta] = {}
    for name, path in adapters:
        meta = read_meta(path)
        want = meta.base_model.fingerprint
        if want != fp and not fingerprint_matches(want, base, str(path / "twin.json")):
            trained_on = meta.base_model.path or "another base"
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


def register_adapters(model: Any, pairs: list[tuple[str, Path]]) -> Any:
    """``model`` wrapped by peft with every adapter registered under its name (unchanged if none)."""
    if not pairs:
        return model
    from peft import PeftModel

    (first, first_path), rest = pairs[0], pairs[1:]
    model = PeftModel.from_pretrained(model, str(first_path), adapter_name=first, is_trainable=False)
    for name, path in rest:
        model.load_adapter(str(path), adapter_name=name, is_trainable=False)
    return model


def resolve_device(device: str, quantize: str | None) -> str:
    """``auto`` -> cuda when there is one, else cpu; a quantization this device cannot run is refused."""
    import torch

    from twin.model.load import check_quantize

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    check_quantize(quantize, device, name="--quantize", instead="leave it out to serve on this machine")
    return device


def check_default(default: str | None, pairs: list[tuple[str, Path]]) -> None:
    """``--default-adapter`` names a registered adapter or ``base`` (checked before the slow model load)."""
    names = [n for n, _ in pairs] + [BASE_NAME]
    if default is not None and default not in names:
        raise TwinError(f"--default-adapter {default}: not registered; registered: {', '.join(names)}")


def adapter_table(
    pairs: list[tuple[str, Path]], metas: dict[str, AdapterMeta], memories: dict[str, Any], tokenizer: Any
) -> dict[str, Adapter]:
    """Every served name -> its :class:`Adapter`, the bare base last.

    The bare base renders prompts like the first adapter (so base-vs-twin compare like for like).
    """
    from twin.adapter_meta import AdapterMeta

    table = {
        name: Adapter(name, path, metas[name], metas[name].template, memories[name]) for name, path in pairs
    }
    ref = next(iter(table.values()), None)
    meta = ref.meta if ref else AdapterMeta.untrained(resolve_template("auto", tokenizer))
    table[BASE_NAME] = Adapter(BASE_NAME, None, meta, meta.template, ref.memory if ref else None)
    return table


@dataclass
class AdapterPlan:
    """The adapters to serve, checked against the base before anything slow is loaded."""

    base: Path
    pairs: list[tuple[str, Path]]
    metas: dict[str, AdapterMeta]
    memories: dict[str, Any]
    default: str


def plan_adapters(
    base: str | os.PathLike,
    adapters: list[str | os.PathLike | tuple[str, str | os.PathLike]] | None,
    default: str | None,
    memory: int | None,
) -> AdapterPlan:
    """``--adapter`` specs parsed, ``--default-adapter`` and every twin.json checked, memories opened."""
    from twin.memory import adapter_memory

    specs = [f"{a[0]}={a[1]}" if isinstance(a, tuple) else str(a) for a in (adapters or [])]
    pairs = parse_adapter_specs(specs)
    check_default(default, pairs)
    metas = check_adapters(Path(base), pairs)
    memories = {name: adapter_memory(path, metas[name], memory) for name, path in pairs}
    return AdapterPlan(Path(base), pairs, metas, memories, default or (pairs[0][0] if pairs else BASE_NAME))


class ReplyEngine:
    """What the server needs of an engine: the served adapters by name, and :meth:`submit` one reply.

    The routes, the queue gate and the SSE bridge use only this. :class:`Engine` decodes in this
    process; :class:`twin.serve.backend.RemoteEngine` on an OpenAI-compatible backend. Both render and
    cut the prompt here with the base's tokenizer (:meth:`prompt_ids`), so a reply answers the same
    prompt whichever decodes it.
    """

    max_batch: int  # replies decoded at once (the gate's running slots)

    def __init__(self, plan: AdapterPlan, tokenizer: Any, positions: int | None) -> None:
        from twin.model.load import model_type

        self.base_path, self.tokenizer, self.positions = plan.base, tokenizer, positions
        self.base_model_type = model_type(plan.base)
        self.adapters = adapter_table(plan.pairs, plan.metas, plan.memories, tokenizer)
        self.default = plan.default

    @property
    def names(self) -> list[str]:
        return list(self.adapters)

    def resolve(self, name: str | None) -> Adapter | None:
        return self.adapters.get(name or self.default)

    def prompt_ids(
        self, adapter: Adapter, conv: Conversation, params: GenParams
    ) -> tuple[GenParams, list[int]]:
        """``params`` with the speaker stops added (the contact's, a group's members'), and the prompt's
        ids cut as training cuts it (:func:`reply_prompt_ids`) to leave room for the reply;
        :class:`TwinError` if it cannot fit."""
        stops = speaker_stops(conv.contact, adapter.template, conv.members)
        params = replace(params, extra_stops=(*params.extra_stops, *stops))
        room = room_for(self.positions, params.validate().max_new_tokens)
        return params, reply_prompt_ids(adapter.meta, self.tokenizer, conv, room, adapter.memory)

    def submit(
        self,
        adapter: Adapter,
        conv: Conversation,
        params: GenParams,
        on_delta: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> Future:
        """Queue my reply in ``conv`` with ``adapter``; ``on_delta`` gets each text delta; the future's
        result is the :class:`Generation`. A request that cannot fit raises :class:`TwinError` here."""
        raise NotImplementedError

    def run(self, *args: Any, **kwargs: Any) -> Generation:
        """:meth:`submit` and wait for the reply."""
        return self.submit(*args, **kwargs).result()


class Engine(ReplyEngine):
    """The loaded base + adapters and the scheduler that owns them; ``submit`` queues one reply."""

    def __init__(
        self,
        base: str | os.PathLike,
        adapters: list[str | os.PathLike | tuple[str, str | os.PathLike]] | None = None,
        *,
        default: str | None = None,
        dtype: str = "auto",
        quantize: str | None = None,
        device: str = "auto",
        max_batch: int | None = None,  # None: from the memory left after loading (auto_max_batch)
        max_batch_tokens: int | None = None,
        memory: int | None = None,  # past exchanges per prompt; None: as each adapter was trained
        longest_reply: int = 512,  # the server's cap on max_new_tokens (for the automatic max_batch)
    ) -> None:
        from twin.model.load import load_base

        device = resolve_device(device, quantize)
        plan = plan_adapters(base, adapters, default, memory)
        t0 = time.perf_counter()
        model, tokenizer = load_base(plan.base, dtype=dtype, quantize=quantize, device=device)
        self.model = register_adapters(model, plan.pairs).eval()
        super().__init__(plan, tokenizer, getattr(self.model.config, "max_position_embeddings", None))
        self.auto_batch = not max_batch
        max_batch = max_batch or self._auto_max_batch(plan, longest_reply)
        self.scheduler = Scheduler(
            self.model, self.tokenizer, max_batch=max_batch, max_tokens=max_batch_tokens, share_adapters=True
        )  # the server never trains or saves its adapters: each is held once (twin.inference.multi_lora)
        self.lock = self.scheduler.lock
        self._log_loaded(time.perf_counter() - t0)

    def _auto_max_batch(self, plan: AdapterPlan, longest_reply: int) -> int:
        """``auto_max_batch`` for this base: rows as long as the longest adapter's sequence plus the
        longest reply allowed, against the memory left now that the model is loaded."""
        from twin.model.precision import available_memory

        seqs = [m.budget.seq_tokens for m in plan.metas.values() if m.budget is not None]
        row = (max(seqs) if seqs else self.positions or 2048) + longest_reply
        return auto_max_batch(available_memory(), kv_bytes_per_token(self.model), row)

    def _log_loaded(self, seconds: float) -> None:
        log.info(
            "loaded %s base in %.1fs with adapters: %s (default %s)",
            self.base_model_type, seconds, ", ".join(self.adapters), self.default,
        )  # fmt: skip
        per_token = kv_bytes_per_token(self.model)
        sched = self.scheduler
        log.info(
            "batching: up to %d replies at once%s, %d tokens in flight (%.0f MiB of KV cache at %d B/token)",
            sched.max_batch, " (auto: the KV cache they may take fits in a quarter of the free memory)"
            if self.auto_batch else "", sched.max_tokens, sched.max_tokens * per_token / 2**20, per_token,
        )  # fmt: skip

    @property
    def max_batch(self) -> int:  # type: ignore[override]
        return self.scheduler.max_batch

    def submit(
        self,
        adapter: Adapter,
        conv: Conversation,
        params: GenParams,
        on_delta: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> Future:
        """:meth:`ReplyEngine.submit` on the scheduler (``on_delta`` is called on its thread)."""
        params, ids = self.prompt_ids(adapter, conv, params)
        req = Request(ids, params, None if adapter.name == BASE_NAME else adapter.name, on_delta)
        if cancel is not None:
            req.cancel = cancel
        return self.scheduler.submit(req)
