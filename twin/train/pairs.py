"""Preference pairs for the preference stage (:mod:`twin.train.prefs`): a prompt, the owner's real
reply (chosen) and a plausible reply that is not theirs (rejected).

Rejected replies come from the SFT twin (of ``prefs.samples`` sampled replies, the one the
owner-style verifier scores least like the owner), from the base with the adapter switched off,
and from drafts feedback (the draft the owner rewrote). A generated reply the verifier takes for the
owner's (P(owner) >= ``prefs.max_rejected_p``) is left out: it is no evidence of what they would not
write. Replies are sampled in batches by the serving engine's scheduler (:mod:`twin.inference.batch`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from twin.errors import TwinError
from twin.train.config import TrainConfig


@dataclass
class Pairs:
    """Prompts with a chosen and a rejected reply, and where each rejected one came from."""

    prompts: list[dict] = field(default_factory=list)  # context, instruction, contact (+ memory)
    chosen: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    scores: list[float | None] = field(default_factory=list)  # verifier P(owner) of the rejected reply
    owner_like: dict[str, int] = field(
        default_factory=dict
    )  # samples left out: the verifier took them for the owner's

    def add(self, prompt: dict, chosen: str, rejected: str, source: str, score: float | None = None) -> None:
        if rejected.strip() and rejected.strip() != chosen.strip():
            self.prompts.append(prompt)
            self.chosen.append(chosen)
            self.rejected.append(rejected)
            self.sources.append(source)
            self.scores.append(score)


def build_pairs(
    cfg: TrainConfig, peft_model: Any, tokenizer: Any, template: str, rows: list[dict], feedback: list[dict]
) -> tuple[Pairs, str]:
    """Generated pairs on ``prefs.prompts`` seeded train prompts, then the feedback pairs."""
    p = cfg.prefs
    picked = random.Random(cfg.seed).sample(rows, min(p.prompts, len(rows)))
    pairs = Pairs()
    status = "not used"
    if "twin" in p.sources or "base" in p.sources:
        from twin.style import verifier_for

        verifier = verifier_for(rows, seed=cfg.seed) if "twin" in p.sources else None
        status = "ok" if verifier else ("too_little_data" if "twin" in p.sources else "not used")
        peft_model.eval()  # no dropout while sampling
        try:
            twin = (
                sample_replies(cfg, peft_model, tokenizer, template, picked, "default")
                if "twin" in p.sources
                else None
            )
            base = (
                sample_replies(cfg, peft_model, tokenizer, template, picked, None)
                if "base" in p.sources
                else None
            )
        finally:
            peft_model.train()
        for i, ex in enumerate(picked):
            prompt = {
                k: ex.get(k) for k in ("context", "instruction", "contact", "memory") if ex.get(k) is not None
            }
            if twin is not None:
                reply, score = least_like_owner(twin[i], verifier)
                _add_generated(pairs, prompt, ex["response"], reply, "twin", score, p.max_rejected_p)
            if base is not None:
                score = verifier.score(base[i])[0] if verifier else None
                _add_generated(pairs, prompt, ex["response"], base[i][0], "base", score, p.max_rejected_p)
    for fb in feedback:
        pairs.add(
            {k: fb[k] for k in ("context", "instruction", "contact")},
            fb["chosen"],
            fb["rejected"],
            "feedback",
        )
    return pairs, status


def _add_generated(pairs: Pairs, prompt: dict, chosen: str, reply: str, source: str, score: float | None,
                   limit: float) -> None:  # fmt: skip
    if score is not None and score >= limit:
        pairs.owner_like[source] = pairs.owner_like.get(source, 0) + 1
        return
    pairs.add(prompt, chosen, reply, source, score)


def sample_replies(
    cfg: TrainConfig, model: Any, tokenizer: Any, template: str, rows: list[dict], adapter: str | None
) -> list[list[str]]:
    """``prefs.samples`` replies per row from the adapter (or 1 from the base: ``adapter`` None)."""
    from tqdm.auto import tqdm

    from twin.inference.batch import Request, Scheduler, generate_many
    from twin.inference.generate import GenParams, fit_prompt_ids, prompt_room, speaker_stops

    p = cfg.prefs
    n = p.samples if adapter else 1
    room = prompt_room(model, p.max_new_tokens)
    requests = []
    for i, ex in enumerate(rows):
        contact = ex.get("contact")
        ids = fit_prompt_ids(tokenizer, ex["context"], ex["instruction"], template=template, contact=contact,
                             room=room, memory=ex.get("memory"), group=bool(ex.get("group")))  # fmt: skip
        for j in range(n):
            params = GenParams(max_new_tokens=p.max_new_tokens, temperature=p.temperature, top_p=p.top_p,
                               seed=cfg.seed + i * n + j, extra_stops=speaker_stops(contact, template, ex.get("members") or ()))  # fmt: skip
            requests.append(Request(ids, params, adapter))
    desc = f"sampling {'twin' if adapter else 'base'} replies on train prompts"
    with tqdm(total=len(requests), desc=desc, unit="reply", dynamic_ncols=True) as bar:
        gens = generate_many(Scheduler(model, tokenizer, max_batch=p.gen_batch), requests, bar.update)
    texts = [g.text.strip() for g in gens]
    return [texts[i * n : (i + 1) * n] for i in range(len(rows))]


def least_like_owner(samples: list[str], verifier: Any) -> tuple[str, float | None]:
    """The sample the verifier scores least like the owner (the first non-empty one without a verifier)."""
    candidates = [s for s in samples if s.strip()] or samples
    if verifier is None:
        return candidates[0], None
    scores = verifier.score(candidates)
    best = min(range(len(candidates)), key=scores.__getitem__)
    return candidates[best], scores[best]


def encode_pairs(pairs: Pairs, tokenizer: Any, template: str, max_seq_length: int) -> Any:
    """One :class:`~twin.examples.Encoded`: rows ``0..n-1`` the chosen replies, ``n..2n-1`` the rejected.

    Both replies of a pair share the prompt, so training's masking and cutting apply alike to both.
    """
    from twin.examples import encode_examples

    rows = [{**pr, "response": c} for pr, c in zip(pairs.prompts, pairs.chosen, strict=True)]
    rows += [{**pr, "response": r} for pr, r in zip(pairs.prompts, pairs.rejected, strict=True)]
    enc = encode_examples(rows, tokenizer, template, max_seq_length)
    if len(enc) != len(rows):  # a prompt too long for max_seq_length drops both of its rows
        raise TwinError(
            f"{len(rows) - len(enc)} preference rows had a prompt longer than data.max_seq_length "
            f"{max_seq_length}; raise it or re-run `twin prepare` with a smaller context budget"
        )
    return enc
