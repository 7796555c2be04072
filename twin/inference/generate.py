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

from typing import Any

# The pieces live by job in their own modules; these names stay importable from here for their callers.
from twin.inference.decoding import Decoding, check_fits
from twin.inference.params import Generation, GenParams
from twin.inference.prompting import (
    Conversation,
    build_reply_prompt,
    context_counter,
    fit_prompt_ids,
    prompt_room,
    reply_prompt_ids,
)
from twin.inference.stops import speaker_stops, visible_text

__all__ = [
    "Conversation", "Decoding", "GenParams", "Generation", "build_reply_prompt", "check_fits", "context_counter",
    "fit_prompt_ids", "generate", "prompt_room", "reply_prompt_ids", "speaker_stops", "visible_text",
]  # fmt: skip


def generate(model: Any, tokenizer: Any, prompt: str, params: GenParams) -> Generation:
    """My whole reply to ``prompt``, decoded alone, with token counts and the time it took (the batch
    scheduler, :mod:`twin.inference.batch`, gives the same reply to the same request)."""
    import torch

    from twin.model.kv_cache import cache_kwarg, last_logits_only, output_cache

    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    dec = Decoding(model, tokenizer, ids, params)
    parts: list[str] = []
    step_input, cache, kv = dec.seq, None, cache_kwarg(model)
    while not dec.done:
        with torch.inference_mode():
            keep = last_logits_only(step_input.shape[1])
            out = model(input_ids=step_input, **{kv: cache}, use_cache=True, logits_to_keep=keep)
        cache = output_cache(out)
        parts.append(dec.step(out.logits[:, -1, :]))
        if not dec.done:
            step_input = dec.seq[:, -1:]
    return dec.result("".join(parts))
