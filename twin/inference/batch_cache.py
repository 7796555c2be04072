"""The running batch's KV cache: one buffer per layer, a slot per row, every step written in place.

transformers' ``DynamicCache`` grows by ``torch.cat`` at every step (the whole cache copied per
token), and a batch built from it must be re-stacked whenever a row joins. Here each layer keeps
keys and values in a preallocated buffer ``[slots, kv heads, columns, head dim]``:

- all rows write their next token at the same column ``end``; the model sees the view
  ``[:rows, :, start:end + 1]`` and a padding mask over the same columns (each row's tokens are
  right-aligned at ``end``, left of them is padding), with each row's own ``position_ids``;
- rows that join were prefilled together, left-padded to their longest prompt ``P``: their keys and
  values are written into free slots at columns ``[end - P, end)``; the running rows are not touched;
- a row that leaves frees its slot by moving the last row into it (one row copied, not the batch);
- a joining row reserves the columns its reply may take (``max_new_tokens``), so a reply never runs
  out of room mid-way; only a join that does not fit (a prompt longer than the columns left of
  ``end``, a reply longer than the columns right of it) copies the live part into a bigger buffer,
  with headroom on both sides (``relocations`` counts these copies).

Columns are not positions: positions come from the mask, so a row's padding costs attention over
masked columns but never changes its numbers (masked keys get weight exactly 0; padding is zeros).
"""

from __future__ import annotations

from typing import Any

from transformers.cache_utils import DynamicCache, DynamicLayer

MIN_ROOM = 128  # columns of headroom added on each side when the buffer is (re)allocated


class WindowLayer(DynamicLayer):
    """One decoder layer's slice of :class:`BatchCache`: writes at the batch's ``end``, returns the view."""

    def __init__(self, batch: BatchCache) -> None:
        super().__init__()
        self.batch = batch
        self.kbuf: Any = None
        self.vbuf: Any = None
        self.is_initialized = True

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        b = self.batch
        stop = b.end + key_states.shape[-2]
        self.kbuf[: b.rows, :, b.end : stop] = key_states
        self.vbuf[: b.rows, :, b.end : stop] = value_states
        self.keys = self.kbuf[: b.rows, :, b.start : stop]
        self.values = self.vbuf[: b.rows, :, b.start : stop]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.batch.end - self.batch.start


class BatchCache:
    """KV buffers + padding mask of the running rows (see the module docstring)."""

    def __init__(self, num_layers: int, max_slots: int) -> None:
        self.max_slots = max_slots
        self.layers = [WindowLayer(self) for _ in range(num_layers)]
        self.cache = DynamicCache()  # what the model is handed: its layers are this batch's
        self.cache.layers = list(self.layers)
        self.mask: Any = None  # [slots, columns], 1 = a real token
        self.items: list = []  # what each row is (the scheduler's requests), in slot order
        self.start = self.end = 0
        self.widest = 0  # the longest prompt joined so far: the left headroom kept for joiners
        self.relocations = 0  # times the running rows' cache was copied into a new buffer

    @property
    def rows(self) -> int:
        return len(self.items)

    @property
    def slots(self) -> int:
        return 0 if self.mask is None else self.mask.shape[0]

    @property
    def columns(self) -> int:
        return 0 if self.mask is None else self.mask.shape[1]

    def join(self, items: list, prefill: Any, pad_mask: Any, room: int = 1) -> None:
        """Add ``items``, the rows of ``prefill`` (a ``DynamicCache`` of ``k`` rows, left-padded as
        ``pad_mask`` ``[k, P]``), after the running ones; ``room``: columns they may still append."""
        k, width = pad_mask.shape
        self.widest = max(self.widest, width)
        if self.rows == 0:  # an empty batch starts over, with room on the left for the widest prompt yet
            self.start = self.end = max(self.widest, MIN_ROOM)
        self._reserve(self.rows + k, left=width, right=room, like=prefill.layers[0].keys)
        lo, hi, cols = self.rows, self.rows + k, slice(self.end - width, self.end)
        keep = pad_mask[:, None, :, None].to(prefill.layers[0].keys.dtype)
        for mine, theirs in zip(self.layers, prefill.layers, strict=True):
            # Padding columns hold what the model computed for pad tokens: zeroed, so a masked key's
            # weight of 0 can never meet a NaN there.
            mine.kbuf[lo:hi, :, cols] = theirs.keys * keep
            mine.vbuf[lo:hi, :, cols] = theirs.values * keep
        self.mask[lo:hi] = 0
        self.mask[lo:hi, cols] = pad_mask
        self.items += items
        self.start = min(self.start, self.end - width)

    def step_inputs(self) -> tuple[Any, Any]:
        """``(attention_mask, position_ids)`` for one decode step of every row (column ``end`` added)."""
        self._reserve(self.rows, left=0, right=1)
        positions = self.mask[: self.rows, self.start : self.end].sum(1, keepdim=True)
        self.mask[: self.rows, self.end] = 1
        return self.mask[: self.rows, self.start : self.end + 1], positions

    def advance(self) -> None:
        """The step's keys and values are written: column ``end`` is now part of every row."""
        self.end += 1

    def drop(self, gone: list) -> None:
        """Free the slots of the rows ``gone`` (items): the last row moves into each hole."""
        for i in sorted((self.items.index(g) for g in gone), reverse=True):
            last = self.rows - 1
            if i != last:
                cols = slice(self.start, self.end)
                for layer in self.layers:
                    layer.kbuf[i, :, cols] = layer.kbuf[last, :, cols]
                    layer.vbuf[i, :, cols] = layer.vbuf[last, :, cols]
                self.mask[i] = self.mask[last]
                self.items[i] = self.items[last]
            self.items.pop()
        self._trim()

    def _trim(self) -> None:
        """Move ``start`` past the left columns that are padding in every remaining row (no copy)."""
        if self.rows == 0:
            return
        live = self.mask[: self.rows, self.start : self.end].sum(0).nonzero()
        if len(live):
            self.start += int(live[0])

    def _reserve(self, rows: int, left: int, right: int, like: Any = None) -> None:
        """Make room for ``rows`` slots, ``left`` columns before ``end`` and ``right`` from ``end`` on."""
        if rows <= self.slots and self.end - left >= 0 and self.end + right <= self.columns:
            return
        import torch

        ref = like if self.layers[0].kbuf is None else self.layers[0].kbuf
        span = self.end - self.start
        head = max(left, span, self.widest, MIN_ROOM)  # where the live columns start in the new buffer
        cols = head + span + max(span, MIN_ROOM, right)
        slots = max(rows, self.max_slots)  # every slot at once: a row joining never moves the others
        new_end = head + span
        for layer in self.layers:
            src = ref if layer.kbuf is None else layer.kbuf
            shape = (slots, src.shape[1], cols, src.shape[3])
            kbuf = torch.zeros(shape, dtype=src.dtype, device=src.device)
            vbuf = torch.zeros(shape, dtype=src.dtype, device=src.device)
            if layer.kbuf is not None and self.rows:
                kbuf[: self.rows, :, head:new_end] = layer.kbuf[: self.rows, :, self.start : self.end]
                vbuf[: self.rows, :, head:new_end] = layer.vbuf[: self.rows, :, self.start : self.end]
            layer.kbuf, layer.vbuf = kbuf, vbuf
        old = self.mask
        self.mask = torch.zeros((slots, cols), dtype=torch.long, device=ref.device)
        if old is not None and self.rows:
            self.mask[: self.rows, head:new_end] = old[: self.rows, self.start : self.end]
            self.relocations += 1
        self.start, self.end = head, new_end
