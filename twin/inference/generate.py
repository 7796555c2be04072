"""Reply generation shared by the server and the evaluation: one prompt in, my reply out.

A small decoding loop over the model's KV cache rather than ``model.generate``, because serving
needs three things ``generate`` does not give directly: text deltas as they are decoded (no
streamer thread), a private random generator per request (a seed makes a reply reproducible without
touching the process-wide RNG another request may rely on), and stopping on *decoded text* —
the template's stop strings — with nothing past the stop ever shown, even mid-stream. The logits
processing is transformers' own (repetition penalty, temperature, top-k, top-p in the order
``generate`` applies them), so greedy replies are token-for-token what ``generate`` produces.

The reply ends at EOS or at the first stop string (the start of the next template section or a
speaker line such as ``\\nAlice: ``), so the twin never writes the other side's next message.
"""

from __future__ import annotations

import math
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twin.errors import TwinError
from twin.prompt import ME_LABEL, PLAIN, STOP_STRINGS, build_prompt, fit_context

if TYPE_CHECKING:
    from twin.adapter_meta import AdapterMeta
    from twin.examples import ContextSettings


@dataclass
class GenParams:
    """Sampling settings of one request. ``temperature == 0`` is greedy decoding."""

    max_new_tokens: int = 64
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 50
    repetition_penalty: float = 1.1
    seed: int | None = None
    # EOS is blocked for the first tokens: a reply is never empty (no training reply is).
    min_new_tokens: int = 1
    # Extra stop strings on top of the template's (e.g. speaker lines from ``speaker_stops``).
    extra_stops: tuple[str, ...] = ()

    def validate(self) -> GenParams:
        checks = (
            ("max_new_tokens", self.max_new_tokens >= 1, "an integer >= 1"),
            (
                "min_new_tokens",
                0 <= self.min_new_tokens <= self.max_new_tokens,
                "between 0 and max_new_tokens",
            ),
            ("temperature", self.temperature >= 0 and math.isfinite(self.temperature), "a number >= 0"),
            ("top_p", 0 < self.top_p <= 1, "a number in (0, 1]"),
            ("top_k", self.top_k >= 0, "an integer >= 0 (0 = off)"),
            ("repetition_penalty", self.repetition_penalty > 0, "a number > 0 (1 = off)"),
        )
        for name, ok, what in checks:
            if not ok:
                raise TwinError(f"generation parameter {name}={getattr(self, name)!r}: must be {what}")
        return self


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    stopped_by: str = "length"  # "eos", "stop" (a stop string) or "length" (max_new_tokens)
    queue_seconds: float = 0.0  # set by the server: time the request waited before generation began

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Stats:
    """Filled in by :func:`_decode` as it runs, read by the caller after the iterator ends."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    stopped_by: str = "length"
    started: float = field(default_factory=time.perf_counter)


def context_counter(context: ContextSettings, tokenizer: Any):
    """How prepare measured context (``twin.json`` "prepare", as :class:`ContextSettings`), as a ``count(text)``.

    ``tokens`` with a tokenizer counts real tokens of the served tokenizer (the adapter's base);
    without a tokenizer it is prepare's estimate ``ceil(chars / chars_per_token)``; ``chars`` is
    plain length. Serving uses the same measure so a conversation is pre-cut where prepare cut it
    (``context.context_budget``); the prompt is then fitted to the adapter's token budget
    (``twin.json`` "budget") as in training.
    """
    if context.context_unit == "chars":
        return len
    if tokenizer is not None:
        return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])
    return lambda text: math.ceil(len(text) / context.chars_per_token)


def build_reply_prompt(
    meta: AdapterMeta,
    tokenizer: Any,
    history: list[dict],
    message: str,
    contact: str | None = None,
    memory: Any | None = None,
) -> str:
    """The prompt for my reply to ``message`` after ``history`` (oldest first), exactly as in training.

    History is cut with :func:`twin.prompt.fit_context` using the adapter's own prepare budget and
    unit, and rendered with the template version the adapter was trained with; ``memory`` (a
    ``twin.memory.Memory``, for adapters trained with ``--memory``) adds its ``k`` past exchanges.
    """
    context, template, past = _reply_parts(meta, tokenizer, history, message, contact, memory)
    return build_prompt(
        context, message, template=template, contact=contact, tokenizer=tokenizer, memory=past
    )


def _reply_parts(
    meta: AdapterMeta,
    tokenizer: Any,
    history: list[dict],
    message: str,
    contact: str | None,
    memory: Any | None,
) -> tuple[list[dict], str, list[dict] | None]:
    """``(context cut to the adapter's budget, its template, the remembered exchanges or None)``."""
    settings = meta.context
    context = fit_context(
        [{"role": t["role"], "text": t["text"]} for t in history],
        settings.context_budget,
        context_counter(settings, tokenizer),
    )
    past = memory.retrieve(message, memory.k, contact=contact) if memory is not None else None
    return context, meta.template, past


def fit_prompt_ids(
    tokenizer: Any,
    context: list[dict],
    message: str,
    *,
    template: str,
    contact: str | None,
    room: int | None,
    memory: Sequence[dict] | None = None,
    budget: int | None = None,
    report: dict | None = None,
) -> list[int]:
    """The prompt's token ids, at most ``room`` (and ``budget``: the adapter's ``prompt_tokens``) of them.

    The one rule training (``twin.examples.encode_examples``), eval and serve cut a long prompt by:
    the oldest context turns go first, one by one; if the prompt without context is still too long,
    the head of the message goes (its end is what the reply answers). The template's header and the
    reply cue are never cut: a prompt that cannot fit even then is a :class:`TwinError`. ``report``,
    when given, gets ``context_dropped`` (turns) and ``message_cut`` (bool).
    """
    if budget is not None:
        room = budget if room is None else min(room, budget)

    def encode(ctx: list[dict], msg: str) -> list[int]:
        prompt = build_prompt(
            ctx, msg, template=template, contact=contact, tokenizer=tokenizer, memory=memory
        )
        return tokenizer(prompt, add_special_tokens=False)["input_ids"]

    report = report if report is not None else {}
    report.update(context_dropped=0, message_cut=False)
    ids = encode(context, message)
    if room is None or len(ids) <= room:
        return ids
    n_context = len(context)
    while context and len(ids) > room:
        context = context[1:]
        ids = encode(context, message)
    report["context_dropped"] = n_context - len(context)
    msg_ids = tokenizer(message, add_special_tokens=False)["input_ids"]
    cut = 0
    while len(ids) > room and cut < len(msg_ids):
        cut = min(len(msg_ids), cut + len(ids) - room)
        tail = tokenizer.decode(msg_ids[cut:], skip_special_tokens=True).lstrip("\ufffd")
        ids = encode(context, tail)
    report["message_cut"] = cut > 0
    if len(ids) > room or cut >= len(msg_ids):
        raise TwinError(
            f"the prompt template alone does not leave room for max_new_tokens within the model's "
            f"positions ({room} tokens left for the prompt); lower max_new_tokens"
        )
    return ids


def reply_prompt_ids(
    meta: AdapterMeta,
    tokenizer: Any,
    history: list[dict],
    message: str,
    contact: str | None,
    room: int | None,
    memory: Any | None = None,
) -> list[int]:
    """:func:`build_reply_prompt` as token ids, cut by :func:`fit_prompt_ids` to ``room`` tokens."""
    context, template, past = _reply_parts(meta, tokenizer, history, message, contact, memory)
    return fit_prompt_ids(
        tokenizer, context, message, template=template, contact=contact, room=room, memory=past,
        budget=meta.prompt_tokens,
    )  # fmt: skip


def prompt_room(model: Any, max_new_tokens: int) -> int | None:
    """How many prompt tokens fit next to ``max_new_tokens`` in the model's positions (None: no limit)."""
    limit = getattr(model.config, "max_position_embeddings", None)
    if not limit:
        return None
    if max_new_tokens >= limit:
        raise TwinError(f"max_new_tokens {max_new_tokens} must be below the model's {limit} positions")
    return limit - max_new_tokens


def speaker_stops(contact: str | None = None, template: str = PLAIN) -> tuple[str, ...]:
    """Stop strings for speaker lines: a new line starting ``Me:`` or ``<contact>:`` (``Them:`` unnamed).

    The adapter learned to end with EOS and no training reply holds a speaker label; these catch a
    model (an undertrained one, or the bare base) that carries on writing the conversation, so it
    can never put words in their mouth, and :func:`_leading_label` drops such a label opening the
    reply. For every template: a chat template renders no labels, but a base pretrained on
    transcripts (the old tiny base, a model that read chat logs) writes them after its turn starts too.
    """
    del template  # kept for callers; every template gets the same stops
    labels = dict.fromkeys((ME_LABEL, contact or "Them"))
    return tuple(f"\n{label}:" for label in labels)


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


def _find_stop(text: str, stops: Sequence[str]) -> int:
    cut = -1
    for s in stops:
        i = text.find(s)
        if i != -1 and (cut == -1 or i < cut):
            cut = i
    return cut


def _partial_stop(text: str, stops: Sequence[str]) -> int:
    """Length of the longest tail of ``text`` that could still grow into a stop string."""
    best = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), best, -1):
            if text.endswith(s[:k]):
                best = k
                break
    return best


# A speaker label as the context renders one ("Alice: ", "Олег (работа): ", "Sam Carter: "): up to three
# capitalised words (or a bracketed one) and a colon. A base that read chat transcripts writes the
# labels of *other* contacts too, which no per-request stop string names; no owner reply in the
# bundled sample's train split has one at the start of a line.
_LETTER = r"[^\W\d_]"
_CAP = "[A-ZÀ-ÖØ-ÞА-ЯЁ]"
_NAME = f"{_CAP}{_LETTER}+"  # a capitalised word of two letters or more ("P.S:" and "I:" are not names)
_BRACKETED = rf"\({_LETTER}+(?: {_LETTER}+){{0,2}}\)"
_LABEL = f"{_NAME}(?: (?:{_NAME}|{_BRACKETED})){{0,2}}"
_LABEL_LINE = re.compile(rf"(?:^|\n)[ \t]*{_LABEL}:(?:[ \t]|$)")
_LABEL_START = re.compile(rf"\s*{_LABEL}:[ \t]+")
# What may still grow into a label: a name-like start of a line, nothing else yet.
_OPEN_WORD = rf"(?:{_CAP}{_LETTER}*|\({_LETTER}*(?: {_LETTER}*){{0,2}}\)?)"
_LABEL_PREFIX = re.compile(rf"[ \t]*(?:{_CAP}{_LETTER}*(?: {_OPEN_WORD}?){{0,2}}:?)?")


def _guards_labels(stops: Sequence[str]) -> bool:
    """The caller asked for speaker guarding (``speaker_stops`` are among ``stops``)."""
    return any(s.startswith("\n") and s.endswith(":") and len(s) > 2 for s in stops)


def _leading_label(text: str, stops: Sequence[str], final: bool) -> int | None:
    """How many characters of ``text`` are a speaker label it opens with ("Me: ", "Alice: "); None
    while it could still become one (only when not ``final``).

    The labels are the speaker stops (``"\nAlice:"``) without their newline, and with speaker
    guarding on, any label-shaped opening (another contact's name: "Олег (работа): "). An
    undertrained model copies the context's ``Name: text`` layout and opens the reply with a label;
    the label is never part of a message, so it is dropped (what follows it is still cut at the
    next speaker).
    """
    body = text.lstrip()
    pad = len(text) - len(body)
    for stop in stops:
        if not (stop.startswith("\n") and stop.endswith(":") and len(stop) > 2):
            continue
        label = stop[1:]
        if body.startswith(label):
            return pad + len(label)
        if not final and label.startswith(body):
            return None
    if not _guards_labels(stops):
        return 0
    if m := _LABEL_START.match(text):
        return m.end()
    if not final and _LABEL_PREFIX.fullmatch(text.rstrip("\ufffd")):  # a half-decoded letter too
        return None  # "Олег (раб" may still become a label
    return 0


def _label_cut(text: str, final: bool) -> tuple[int, int]:
    """``(where a speaker label line starts or -1, how much of the tail to hold back)``."""
    m = _LABEL_LINE.search(text, 1)
    if m:
        return m.start(), 0
    nl = text.rfind("\n")
    if not final and nl != -1 and _LABEL_PREFIX.fullmatch(text.rstrip("\ufffd"), nl + 1):
        return -1, len(text) - nl
    return -1, 0


def visible_text(text: str, stops: Sequence[str], final: bool) -> tuple[str, bool]:
    """The part of the generated text that is safe to show now, and whether a stop string was hit.

    Held back until decoding settles: an opening that may become a speaker label, a tail that may
    become a stop string or a new speaker's line, an incomplete UTF-8 character (decoded as U+FFFD)
    and trailing whitespace (the reply is stripped at the end, so the concatenated deltas always
    equal the final reply).
    """
    skip = _leading_label(text, stops, final)
    if skip is None:
        return "", False
    text = text[skip:]
    cut = _find_stop(text, stops)
    hold = 0
    if _guards_labels(stops):
        label_at, hold = _label_cut(text if cut == -1 else text[:cut], final)
        if label_at != -1:
            cut, hold = label_at, 0
    stopped = cut != -1
    if stopped:
        text = text[:cut]
    elif not final:
        text = text[: len(text) - max(hold, _partial_stop(text, stops))]
    return text.rstrip("\ufffd").strip(), stopped


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

    def scores(self, logits: Any) -> Any:
        """The processed next-token scores (``[1, vocab]``) for ``logits``, as ``generate`` computes them."""
        logits = logits.float()
        if len(self.generated) < self.params.min_new_tokens and self.eos:
            logits[:, list(self.eos)] = -math.inf  # as transformers' MinNewTokensLengthLogitsProcessor
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


def generate(model: Any, tokenizer: Any, prompt: str, params: GenParams) -> Generation:
    """My whole reply to ``prompt``, decoded alone, with token counts and the time it took (the batch
    scheduler, :mod:`twin.inference.batch`, gives the same reply to the same request)."""
    import torch

    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    dec = Decoding(model, tokenizer, ids, params)
    parts: list[str] = []
    step_input, cache = dec.seq, None
    while not dec.done:
        with torch.inference_mode():
            out = model(input_ids=step_input, past_key_values=cache, use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        parts.append(dec.step(out.logits[:, -1, :]))
        if not dec.done:
            step_input = dec.seq[:, -1:]
    return dec.result("".join(parts))
