"""Per-row LoRA for a mixed batch: every row gets its own adapter (or none) in one pass per layer.

peft's own answer to a mixed batch (``adapter_names``) walks the whole model to register a pre-forward
hook on every LoRA layer for each call, and in every layer runs each adapter on its indexed sub-batch
and writes the result back: the more adapters in the batch, the more small operations per layer.
Here, in the spirit of Punica / S-LoRA, each LoRA layer's adapters are stacked once into two matrices

    A = [A_1; A_2; ...]            (sum of ranks x in)
    B = [B_1, B_2, ...]            (out x sum of ranks)

and a mixed batch adds, after the layer's base output, ``((x @ A.T) * M) @ B.T`` where the row mask
``M`` keeps row i's block of ranks times its adapter's scaling ``s_k`` (alpha/r or rsLoRA's; all
zeros for a base row); in a server (``share``), peft's own A and B weights are views of the stack's
blocks, so each adapter is held once. That is the four operations of one
adapter (A, mask, B, add) whatever the mix of rows. The price is multiplying every loaded adapter's
ranks for every row, small next to the base layer for the handful of adapters a server holds; a
per-row gather + ``bmm`` would instead copy each row's A and B at every layer and step.

Adapters whose layers are more than ``B A`` (DoRA's magnitude vector, a LoRA bias, other peft
variants) stay out of the stack: their rows are computed by peft's own per-adapter code on their
sub-batch, as peft's mixed path would. A model with LoRA layers of another kind (embeddings,
convolutions) or ``modules_to_save`` is not handled here (:attr:`MultiLora.supported` is False) and
the scheduler passes peft's ``adapter_names`` instead, as it does when the load-time check
(:meth:`MultiLora.agrees_with_peft`) finds the stack's rows differ from peft's own (a peft release that
changed the internals read here).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

log = logging.getLogger(__name__)


def _peft() -> str:
    import peft

    return peft.__version__


@dataclass
class StackedLayer:
    """One LoRA layer's stacked adapters: ``a`` [sum of ranks, in], ``b`` [out, sum of ranks]."""

    module: Any
    a: Any
    b: Any
    per_adapter: list[str]  # adapters of this layer computed on their own sub-batch


# peft's LoRA layers whose forward is ``base(x) + B(A(dropout(x))) * scaling`` per adapter: the plain
# Linear (also wrapping transformers' Conv1D) and the bitsandbytes-quantized ones (``--quantize``).
LINEAR_KINDS = ("Linear", "Linear8bitLt", "Linear4bit")


def lora_layers(model: Any) -> list[Any]:
    """Every peft LoRA layer in ``model``."""
    from peft.tuners.lora import LoraLayer

    return [m for m in model.modules() if isinstance(m, LoraLayer)]


def adapters_key(model: Any) -> tuple:
    """Identifies the registered adapters: changes when one is loaded, deleted or replaced."""
    return tuple((name, id(cfg)) for name, cfg in getattr(model, "peft_config", {}).items())


def unsupported(model: Any, layers: list[Any]) -> str | None:
    """Why the stack cannot serve ``model``'s adapters (None: every LoRA layer is a Linear one, see
    ``LINEAR_KINDS``, and nothing else is adapted)."""
    import torch.nn as nn
    from peft.utils.other import AuxiliaryTrainingWrapper

    if not layers:
        return "no LoRA layers"
    if any(isinstance(m, AuxiliaryTrainingWrapper) for m in model.modules()):
        return "an adapter trains embedding rows or whole modules (modules_to_save)"
    for layer in layers:
        kind = type(layer)
        if kind.__name__ not in LINEAR_KINDS or not kind.__module__.startswith("peft.tuners.lora"):
            return f"LoRA layers other than Linear ({kind.__name__})"
        if not all(isinstance(layer.lora_A[n], nn.Linear) for n in layer.lora_A):
            return "LoRA layers other than Linear"
    return None


def stackable(layers: list[Any], name: str) -> bool:
    """Whether adapter ``name`` is plain ``B A`` in every layer (no DoRA, no LoRA bias, no variant)."""
    return all(
        name not in getattr(layer, "lora_variant", {}) and layer.lora_B[name].bias is None
        for layer in layers
        if name in layer.lora_A
    )


def block_widths(layers: list[Any], names: list[str]) -> dict[str, int]:
    """Each stacked adapter's block of ranks: its largest rank over the layers (smaller ones pad)."""
    return {n: max((m.lora_A[n].out_features for m in layers if n in m.lora_A), default=0) for n in names}


def block_scales(layers: list[Any], names: list[str]) -> dict[str, float]:
    """Each stacked adapter's scaling (alpha/r or rsLoRA's) as its first layer has it: what the row
    mask carries for its block (a layer whose scaling differs gets its B block scaled by the ratio)."""
    return {n: next(float(m.scaling[n]) for m in layers if n in m.lora_A) for n in names}


def stack_layer(layer: Any, widths: dict[str, int], scales: dict[str, float]) -> tuple[Any, Any]:
    """``layer``'s A blocks stacked on rows and its B blocks on columns, zeros where absent.

    Each adapter's B block is as peft holds it (its scaling is in the row mask, :meth:`MultiLora.plan`),
    or times the ratio of this layer's scaling to ``scales`` where a ``rank_pattern`` made them differ.
    """
    import torch

    ref = next(iter(layer.lora_A.values())).weight
    a_parts, b_parts = [], []
    for name, width in widths.items():
        a = torch.zeros(width, layer.in_features, dtype=ref.dtype, device=ref.device)
        b = torch.zeros(layer.out_features, width, dtype=ref.dtype, device=ref.device)
        if name in layer.lora_A:
            rank = layer.lora_A[name].out_features
            a[:rank] = layer.lora_A[name].weight
            ratio = float(layer.scaling[name]) / scales[name]
            b[:, :rank] = layer.lora_B[name].weight if ratio == 1 else layer.lora_B[name].weight * ratio
        a_parts.append(a)
        b_parts.append(b)
    return torch.cat(a_parts), torch.cat(b_parts, dim=1)


def share_blocks(
    stacked: StackedLayer, offsets: dict[str, tuple[int, int]], scales: dict[str, float]
) -> None:
    """peft's own A and B weights of the layer become views of the stack's blocks (the same values):
    one copy of every adapter, not two (33 MiB for 8 adapters on a 0.5B model in bf16). A B block
    scaled by a layer's own ratio (see :func:`stack_layer`) stays peft's own."""
    layer = stacked.module
    for name, (start, _) in offsets.items():
        if name not in layer.lora_A:
            continue
        rank = layer.lora_A[name].out_features
        layer.lora_A[name].weight.data = stacked.a[start : start + rank]
        if float(layer.scaling[name]) == scales[name]:
            layer.lora_B[name].weight.data = stacked.b[:, start : start + rank]


def add_rows_delta(multi: MultiLora, stacked: StackedLayer, module, args, output) -> Any:
    """Forward hook: within :meth:`MultiLora.rows`, the layer's base output plus each row's own
    adapter; outside it, nothing (the output stays as the layer computed it)."""
    if multi.active is None:
        return None
    import torch.nn.functional as F

    mask, groups = multi.active
    x = args[0]
    if x.shape[0] != mask.shape[0]:
        raise ValueError(f"a batch of {x.shape[0]} rows reached a LoRA layer planned for {mask.shape[0]}")
    out = output
    if stacked.a.shape[0]:
        h = F.linear(x.to(stacked.a.dtype), stacked.a)
        out = out + F.linear(h * (mask if h.dim() == 3 else mask[:, 0]), stacked.b).to(out.dtype)
    for name in stacked.per_adapter:
        if name in groups:
            idx = groups[name]
            out[idx] = one_adapter(module, name, x[idx], out[idx]).to(out.dtype)
    return out


def one_adapter(module: Any, name: str, x: Any, result: Any) -> Any:
    """``result`` (the base output of rows ``x``) with adapter ``name`` applied as peft applies it."""
    variant = getattr(module, "lora_variant", {}).get(name)
    if variant is not None:
        return variant.forward(module, active_adapter=name, x=x, result=result)
    x = x.to(module.lora_A[name].weight.dtype)
    return result + module.lora_B[name](module.lora_A[name](x)) * module.scaling[name]


class MultiLora:
    """The stacked adapters of a peft ``model``; :meth:`rows` runs one forward pass with per-row adapters.

    Built once per set of registered adapters (:meth:`stale` says when ``model``'s changed; :meth:`close`
    then removes its hooks). Its forward hooks stay on the LoRA layers and act only within :meth:`rows`:
    registering and removing one per layer at every decode step cost more than the per-row delta.
    """

    def __init__(self, model: Any, *, share: bool = False) -> None:
        """``share``: peft's A and B weights become views of the stack (:func:`share_blocks`), for a
        model that only serves: a view of B is not contiguous, which training and saving may refuse."""
        self.model = model
        self.key = adapters_key(model)
        layers = lora_layers(model)
        # why peft's own mixed path serves instead of the stack (None: the stack serves)
        self.reason = unsupported(model, layers)
        names = list(getattr(model, "peft_config", {}))
        self.stacked = [n for n in names if self.supported and stackable(layers, n)]
        self.per_adapter = [n for n in names if n not in self.stacked]
        widths = block_widths(layers, self.stacked) if self.supported else {}
        self.scales = block_scales(layers, self.stacked) if self.supported else {}
        self.offsets = _offsets(widths)
        self.width = sum(widths.values())
        self.layers = [
            StackedLayer(
                layer,
                *stack_layer(layer, widths, self.scales),
                [n for n in self.per_adapter if n in layer.lora_A],
            )
            for layer in (layers if self.supported else [])
        ]
        self._plan: tuple[tuple, Any, dict] | None = None
        self.passes = 0  # forward passes run with per-row adapters (for tests and the log)
        self.active: tuple[Any, dict] | None = None  # (row mask, row groups) of the pass under way
        self._handles = [
            s.module.register_forward_hook(partial(add_rows_delta, self, s)) for s in self.layers
        ]
        if self.supported and not self.agrees_with_peft():
            # The stack reads peft internals (lora_A/B, scaling, the disable flag): if a peft release
            # changed them, its own mixed-batch path (``adapter_names``) still gives the right rows.
            log.warning(
                "peft %s: stacked LoRA rows differ from peft's own; using peft's mixed batches", _peft()
            )
            self.reason = f"stacked rows differ from peft {_peft()}'s own"
            self.close()
        for stacked in self.layers if self.supported and share else []:
            share_blocks(stacked, self.offsets, self.scales)
        self.passes = 0  # the check's probes are not the server's passes

    @property
    def supported(self) -> bool:
        """Whether mixed batches go through the stack (else peft's ``adapter_names``, see :attr:`reason`)."""
        return self.reason is None

    def close(self) -> None:
        """Remove the hooks (the stack is being replaced)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def agrees_with_peft(self) -> bool:
        """Whether one row per stacked adapter and a bare-base row equal peft's own mixed-batch output.

        Checked per LoRA layer on a random input, so it costs about one token's pass through the
        adapted linears, not a model forward.
        """
        import torch

        names: list[str | None] = [*self.stacked, None]  # peft's mixed path refuses DoRA and the like
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for stacked in self.layers:
                layer = stacked.module
                ref = layer.get_base_layer().weight
                dtype = ref.dtype if ref.is_floating_point() else torch.float16  # quantized: activations
                tol = 1e-4 if dtype == torch.float32 else 3e-2  # bf16/fp16 round the two orders apart
                x = torch.randn(len(names), 1, layer.in_features, generator=gen).to(ref.device, dtype)
                own = [n if n in layer.lora_A else "__base__" for n in names]
                theirs = layer(x, adapter_names=own)
                with self.rows(names):
                    ours = layer(x)
                scale = theirs.abs().max().clamp(min=1.0)
                if not torch.allclose(ours.float(), theirs.float(), atol=tol * float(scale), rtol=tol):
                    return False
        return True

    def stale(self) -> bool:
        return adapters_key(self.model) != self.key

    def plan(self, names: list[str | None]) -> tuple[Any, dict[str, Any]]:
        """Row mask [rows, 1, sum of ranks] for the stacked adapters, row indices per other adapter."""
        import torch

        key = tuple(names)
        if self._plan is not None and self._plan[0] == key:
            return self._plan[1], self._plan[2]
        ref = self.layers[0].a
        mask = torch.zeros(len(names), 1, self.width, dtype=ref.dtype, device=ref.device)
        groups: dict[str, list[int]] = {}
        for i, name in enumerate(names):
            if name in self.offsets:
                start, stop = self.offsets[name]
                mask[i, 0, start:stop] = self.scales[name]
            elif name is not None:
                groups.setdefault(name, []).append(i)
        index = {n: torch.tensor(rows, device=ref.device) for n, rows in groups.items()}
        self._plan = (key, mask, index)
        return mask, index

    @contextlib.contextmanager
    def adapters_off(self) -> Iterator[None]:
        """Within: every LoRA layer gives its base output (a batch of bare-base rows).

        What peft's ``disable_adapter()`` does for these layers, by their flag alone: peft's also
        walks the whole model and flips ``requires_grad`` on every adapter weight, twice per call.
        """
        switched = [s.module for s in self.layers if not s.module.disable_adapters]
        for module in switched:
            module._disable_adapters = True
        try:
            yield
        finally:
            for module in switched:
                module._disable_adapters = False

    @contextlib.contextmanager
    def rows(self, names: list[str | None]) -> Iterator[None]:
        """Within: ``model``'s forward pass gives row i adapter ``names[i]`` (None: the bare base)."""
        unknown = {n for n in names if n is not None} - set(self.stacked) - set(self.per_adapter)
        if unknown:
            raise ValueError(f"no adapter named {', '.join(sorted(unknown))} is registered")
        self.active = self.plan(names)
        self.passes += 1
        switched = []
        try:
            for stacked in self.layers:
                if not stacked.module.disable_adapters:
                    # The layer then gives its base output and the hook adds every row's adapter. The
                    # flag is set directly: peft's enable_adapters() also flips requires_grad on every
                    # adapter's weights, which costs more than the whole per-row delta at each step.
                    stacked.module._disable_adapters = True
                    switched.append(stacked.module)
            yield
        finally:
            self.active = None
            for module in switched:
                module._disable_adapters = False


def _offsets(widths: dict[str, int]) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    start = 0
    for name, width in widths.items():
        out[name] = (start, start + width)
        start += width
    return out
