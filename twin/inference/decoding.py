"""One reply being decoded (:class:`Decoding`): token choice, incremental detokenisation, stop rules.

The logits processing is transformers' own (repetition penalty, temperature, top-k, top-p in the
order ``generate`` applies them), so greedy replies are token-for-token what ``generate`` produces.
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from twin.errors import TwinError
from twin.inference.params import Generation, GenParams
from twin.inference.stops import visible_text
from twin.prompt import STOP_STRINGS


@dataclass
class _Stats:
    """One reply's counts and timing, kept by its :class:`Decoding` as it runs, read by :meth:`Decoding.result`."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    stopped_by: str = "length"
    started: float = field(default_factory=time.perf_counter)


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    for src in (
        getattr(tokenizer, "eos_token_id", None),
        getattr(model.generation_config, "eos_token_id", None),
    ):
        if isinstance(src, int):
            ids.add(src)
        elif isinstance(src, list | tuple):
            ids.update(i for i in src if isinstance(i, int))
    return ids


def _processors(params: GenParams) -> Any:
    """transformers' logits processors for ``params``, in the order ``generate`` applies them."""
    from transformers.generation.logits_process import (
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    procs: list[Any] = []
    if params.repetition_penalty != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    if params.temperature != 0:
        if params.temperature != 1.0:
            procs.append(TemperatureLogitsWarper(params.temperature))
        if params.top_k > 0:
            procs.append(TopKLogitsWarper(params.top_k))
        if params.top_p < 1.0:
            procs.append(TopPLogitsWarper(params.top_p))
    return procs


def penalize_repeats(scores: Any, ids: Any, penalty: float) -> None:
    """transformers' repetition penalty, in place, on rows of ``scores`` whose sequences are ``ids``
    ``[rows, longest]`` (each row padded with one of its own tokens: penalised once, written twice
    with the same value). The same gather / ``where`` / scatter as ``RepetitionPenaltyLogitsProcessor``,
    for a batch of sequences of different lengths: it touches each row's tokens, not the vocabulary."""
    import torch

    picked = scores.gather(1, ids)
    scores.scatter_(1, ids, torch.where(picked < 0, picked * penalty, picked / penalty))


def padded_seqs(decs: list[Decoding]) -> Any:
    """``[rows, longest]``: each reply's prompt + tokens so far, padded with its own first token."""
    seqs = [d.seq[0] for d in decs]
    ids = seqs[0].new_empty((len(seqs), max(len(s) for s in seqs)))
    for row, seq in zip(ids, seqs, strict=True):
        row[: len(seq)] = seq
        row[len(seq) :] = seq[0]
    return ids


def greedy_tokens(decs: list[Decoding], logits: Any) -> list[int]:
    """The next token of each greedy reply in ``decs`` from its row of ``logits`` ``[rows, vocab]``:
    :meth:`Decoding.scores` for all rows at once (the same numbers), one ``argmax``, one host sync."""
    import torch

    scores = logits.float()
    blocked = [i for i, d in enumerate(decs) if d.blocks_eos]
    for eos in {decs[i].eos_index for i in blocked}:
        rows = torch.tensor([i for i in blocked if decs[i].eos_index == eos])
        scores[rows[:, None], torch.tensor(eos)] = -math.inf
    for penalty in {d.params.repetition_penalty for d in decs} - {1.0}:
        rows = [i for i, d in enumerate(decs) if d.params.repetition_penalty == penalty]
        ids = padded_seqs([decs[i] for i in rows])
        if len(rows) == len(decs):
            penalize_repeats(scores, ids, penalty)
        else:
            index = torch.tensor(rows)
            part = scores[index]
            penalize_repeats(part, ids, penalty)
            scores[index] = part
    return scores.argmax(-1).tolist()


def check_fits(model: Any, prompt_tokens: int, max_new_tokens: int) -> None:
    """A prompt of ``prompt_tokens`` plus the reply must fit the model's positions."""
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit and prompt_tokens + max_new_tokens > limit:
        raise TwinError(
            f"the prompt ({prompt_tokens} tokens) plus max_new_tokens {max_new_tokens} is over the model's "
            f"{limit} positions; lower max_new_tokens or send less history"
        )


class Decoding:
    """One reply being decoded: its sampling state, its own random generator, its stop rules.

    The caller runs the model and hands this the next-token logits (``step``); it picks the token,
    and returns the text that became safe to show. Shared by :func:`generate` (one sequence) and the
    batch scheduler (:mod:`twin.inference.batch`), so a reply is the same token for token either way.
    A scheduler that picks tokens itself (greedy rows, one ``argmax`` for the batch) uses the
    steps apart: :meth:`scores`, then :meth:`accept` with the token.

    Every step costs the same however long the reply is: the token ids live in a buffer sized for
    the whole reply (no re-allocation per token), and the text is decoded incrementally (only the
    last few tokens are decoded again, as vLLM's and TGI's detokenizers do), not the reply so far.
    """

    def __init__(self, model: Any, tokenizer: Any, ids: list[int], params: GenParams) -> None:
        import torch

        params.validate()
        if not ids:
            raise TwinError("the prompt is empty; nothing to reply to")
        check_fits(model, len(ids), params.max_new_tokens)
        self.tokenizer, self.params = tokenizer, params
        self.stops = tuple(dict.fromkeys((*STOP_STRINGS, *params.extra_stops)))
        self.eos = _eos_ids(model, tokenizer)
        self.eos_index = tuple(sorted(self.eos))
        self.procs = _processors(params)
        device = next(model.parameters()).device
        self.rng = None
        if params.temperature != 0:
            seed = params.seed if params.seed is not None else secrets.randbits(63)
            self.rng = torch.Generator(device=device).manual_seed(seed)
        self._ids = torch.zeros((1, len(ids) + params.max_new_tokens), dtype=torch.long, device=device)
        self._ids[0, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        self._length = len(ids)
        self.generated: list[int] = []
        self.text = ""  # the reply decoded so far, up to its last complete character
        self._prefix = self._read = 0  # tokens [_prefix, _read) decode to the tail of ``text``
        self.shown = ""
        self.done = False
        self.stats = _Stats(prompt_tokens=len(ids))

    @property
    def seq(self) -> Any:
        """Prompt + reply so far, ``[1, length]`` (a view of the buffer)."""
        return self._ids[:, : self._length]

    @property
    def greedy(self) -> bool:
        return self.rng is None

    @property
    def blocks_eos(self) -> bool:
        """EOS is still blocked (fewer than ``min_new_tokens`` generated)."""
        return len(self.generated) < self.params.min_new_tokens and bool(self.eos)

    def scores(self, logits: Any) -> Any:
        """The processed next-token scores (``[1, vocab]``) for ``logits``, as ``generate`` computes them."""
        logits = logits.float()
        if self.blocks_eos:
            logits[:, list(self.eos_index)] = -math.inf  # as transformers' MinNewTokensLengthLogitsProcessor
        scores = logits
        seq = self.seq
        for proc in self.procs:  # LogitsProcessorList's loop without its per-call signature inspection
            scores = proc(seq, scores)
        return scores

    def _choose(self, logits: Any) -> int:
        import torch

        scores = self.scores(logits)
        if self.rng is None:
            return int(scores.argmax(-1))
        return int(torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=self.rng))

    def _advance_text(self) -> None:
        """Extend ``text`` by the newest token: decode only the window since the last complete text.

        The window starts a few tokens back (at ``_prefix``) so a tokenizer that treats a sequence's
        first token specially (a leading space dropped) decodes the new token as it would in the
        whole reply. A window that ends in an incomplete UTF-8 character waits for the next token.
        """
        toks = self.generated
        decode = self.tokenizer.decode
        before = decode(toks[self._prefix : self._read], skip_special_tokens=True)
        after = decode(toks[self._prefix :], skip_special_tokens=True)
        if len(after) > len(before) and (not after.endswith("\ufffd") or len(toks) - self._read > 8):
            self.text += after[len(before) :]
            self._prefix, self._read = self._read, len(toks)

    def _delta(self, final: bool) -> str:
        if final:  # one full decode at the end: the reply is exactly the decoded tokens
            text = self.tokenizer.decode(self.generated, skip_special_tokens=True)
        else:
            self._advance_text()
            text = self.text
        visible, stopped = visible_text(text, self.stops, final=final)
        if stopped:
            self.stats.stopped_by, self.done = "stop", True
        if visible.startswith(self.shown) and len(visible) > len(self.shown):
            delta, self.shown = visible[len(self.shown) :], visible
            return delta
        return ""

    def step(self, logits: Any) -> str:
        """Take the next token from ``logits`` (shape ``[1, vocab]``); the newly visible text."""
        import torch

        with torch.inference_mode():
            nxt = self._choose(logits)
        return self.accept(nxt)

    def accept(self, nxt: int) -> str:
        """Append token ``nxt`` (chosen from :meth:`scores`); the newly visible text."""
        if nxt in self.eos:
            self.stats.stopped_by = "eos"
            return self.finish()
        self.generated.append(nxt)
        self.stats.completion_tokens = len(self.generated)
        self._ids[0, self._length] = nxt
        self._length += 1
        delta = self._delta(final=False)
        if not self.done and len(self.generated) >= self.params.max_new_tokens:
            delta += self.finish()  # stopped_by stays "length"
        return delta

    def finish(self) -> str:
        """End the reply (EOS or length): what was held back and is now final."""
        self.done = True
        delta = self._delta(final=True) if self.stats.stopped_by != "stop" else ""
        self.stats.seconds = time.perf_counter() - self.stats.started
        return delta

    @property
    def last(self) -> int:
        return self.generated[-1]

    def result(self, text: str) -> Generation:
        s = self.stats
        return Generation(text, s.prompt_tokens, s.completion_tokens, s.seconds, s.stopped_by)
