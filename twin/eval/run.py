"""``twin eval``: the base model versus the twin (base + adapter) on the held-out ``val.jsonl``.

Both sides come from ONE loaded model: the adapter is switched off for the base's turn
(``peft``'s ``disable_adapter``, or per-row adapters when base and twin rows share a generation
batch: ``twin.inference.multi_lora``), so a 7B base is held in memory once. For each side:

* loss and perplexity of the real replies, token-weighted, with exactly the training masking
  (prompt rendered by ``twin.prompt``, loss on the reply + EOS only: ``twin.examples``);
* a generated reply per example, scored against the real one (BLEU-4, ROUGE-1/2/L), plus style
  statistics of real, base and twin replies (``twin.eval.metrics``).

Generation is sampled with the given parameters and seeded per example (``seed + index``), in batches
through the serving engine's scheduler (a reply is the same batched or alone), so a
rerun gives the same replies whatever the example order. Results go to ``checkpoints/runs/<run>/``:
``eval.json`` (numbers), ``eval_samples.jsonl`` (every generated pair) and ``report.html``.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from twin.config import StageConfig
from twin.errors import TwinError
from twin.eval import metrics
from twin.feedback import acceptance, read_feedback

if TYPE_CHECKING:
    from twin.adapter_meta import AdapterMeta
    from twin.memory import Memory

log = logging.getLogger(__name__)


class EvalConfig(StageConfig):
    adapter: str = "checkpoints/adapters/default"
    base: str | None = None  # null: the base recorded in the adapter's twin.json
    data: str = "data/processed"
    val_file: str = "val.jsonl"
    train_file: str = "train.jsonl"  # the authorship verifier learns the owner's style from it
    run: str | None = None  # null: the adapter directory's name
    out_dir: str = "checkpoints"  # report goes to <out_dir>/runs/<run>/
    # 200: the paired twin - base interval is about +-0.07 wide on the bundled sample (bench/RESULTS.md,
    # section evalbase); generation is the slow part; null: all of val
    max_examples: int | None = Field(200, ge=1)
    samples: int = Field(20, ge=0)  # rows in the report's side-by-side table
    batch_size: int = Field(8, ge=1)  # for the loss pass, and replies generated together
    max_seq_length: int | None = Field(None, ge=8)  # null: as trained (twin.json), else 512
    seed: int = 0
    max_new_tokens: int = Field(48, ge=1)
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.9, gt=0, le=1)
    top_k: int = Field(50, ge=0)
    repetition_penalty: float = Field(1.1, gt=0)
    dtype: str = "auto"
    pet_phrases: int = Field(10, ge=0)
    memory: int | None = Field(None, ge=0)  # past exchanges per prompt; null: as trained (twin.json)
    feedback: str = "data/feedback"  # twin drafts' records of what you sent: the acceptance figures


def _select(examples: list[dict], limit: int | None, seed: int) -> list[dict]:
    """A seeded, chat-balanced subset (kept in file order) when val is larger than ``limit``.

    Round-robin over chats (a person or a whole group is one), each chat's examples in a seeded
    random order: every chat gives one example before any gives a second, so no chatty contact
    dominates the score (a plain random sample took 15 of 30 examples from one of 12 contacts).
    Chats are told apart by dialog id, not name: several deleted accounts, or a group named like a
    person, are separate chats.
    """
    if limit is None or len(examples) <= limit:
        return examples
    rng = random.Random(seed)
    by_contact: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        by_contact.setdefault(chat_key(ex), []).append(i)
    queues = [rng.sample(idx, len(idx)) for _, idx in sorted(by_contact.items())]
    rng.shuffle(queues)  # which contacts get the last round's places
    keep: list[int] = []
    while len(keep) < limit:
        for q in queues:
            if q and len(keep) < limit:
                keep.append(q.pop())
    return [examples[i] for i in sorted(keep)]


def chat_key(ex: dict) -> str:
    """Which chat an example (or a sample row) is from: its dialog id, else its contact's name."""
    did = ex.get("dialog_id")
    return f"dialog {did}" if did is not None else f"contact {ex.get('contact') or ''}"


def reply_loss(
    model: Any,
    tokenizer: Any,
    examples: list[dict],
    template: str,
    max_seq_length: int,
    batch_size: int,
    reply_tokens: int | None = None,
) -> dict:
    """Token-weighted mean cross-entropy of the real replies (+EOS) given their prompts, fitted to the
    prompt budget training used (``reply_tokens``, from twin.json's "budget") when there is one."""
    import torch

    from twin.examples import collate, encode_examples

    data = encode_examples(examples, tokenizer, template, max_seq_length, reply_tokens=reply_tokens)
    total, count = 0.0, 0
    order = sorted(range(len(data)), key=lambda i: len(data.ids[i]))  # little padding
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = collate(data, order[start : start + batch_size], tokenizer.pad_token_id)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            labels = batch["labels"][:, 1:]
            logits = logits[:, :-1].float()
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100, reduction="sum"
            )
            total += float(loss)
            count += int((labels != -100).sum())
    mean = total / count if count else math.nan
    return {"loss": mean, "perplexity": metrics.perplexity(mean), "tokens": count, "examples": len(data)}


def generate_replies(
    cfg: EvalConfig,
    model: Any,
    tokenizer: Any,
    examples: list[dict],
    template: str,
    progress: bool,
    budget: int | None = None,
) -> tuple[list[tuple[str, str]], list[int]]:
    """``(base reply, twin reply)`` per example, generated in batches by the serving engine's scheduler
    (:mod:`twin.inference.batch`: base and twin rows share forward passes), so the report shows what the
    server would answer. Seeds are ``seed + index`` on both sides. Also returns each prompt's length in tokens."""
    from dataclasses import replace

    from tqdm.auto import tqdm

    from twin.inference.batch import Request, Scheduler, generate_many
    from twin.inference.generate import GenParams, fit_prompt_ids, prompt_room, speaker_stops

    room = prompt_room(model, cfg.max_new_tokens)
    requests: list[Request] = []
    prompt_tokens: list[int] = []
    for i, ex in enumerate(examples):
        contact = ex.get("contact")
        ids = fit_prompt_ids(tokenizer, ex["context"], ex["instruction"], template=template, contact=contact,
                             room=room, memory=ex.get("memory"), budget=budget, group=bool(ex.get("group")))  # fmt: skip
        prompt_tokens.append(len(ids))
        params = GenParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                           top_k=cfg.top_k, repetition_penalty=cfg.repetition_penalty, seed=cfg.seed + i,
                           extra_stops=speaker_stops(contact, template, ex.get("members") or ()))  # fmt: skip
        requests += [Request(ids, params, None), Request(ids, replace(params), model.active_adapter)]
    bar = tqdm(total=len(requests), desc="generating base + twin replies", unit="reply",
               disable=not progress, dynamic_ncols=True)  # fmt: skip
    with bar:
        gens = generate_many(Scheduler(model, tokenizer, max_batch=cfg.batch_size), requests, bar.update)
    replies = [(gens[k].text.strip(), gens[k + 1].text.strip()) for k in range(0, len(gens), 2)]
    return replies, prompt_tokens


def summarize(rows: list[dict], *, pet_top: int = 10) -> dict:
    """Overlap, style, length and pet-phrase figures of ``rows`` (``real``/``base``/``twin`` replies)."""
    replies = {side: [r[side] for r in rows] for side in metrics.SIDES}
    real = replies["real"]
    phrases = metrics.pet_phrases(real, top=pet_top) if pet_top else []
    return {
        "overlap": {side: metrics.overlap_scores(replies[side], real) for side in metrics.GENERATED},
        "style": {side: metrics.style_stats(replies[side]) for side in metrics.SIDES},
        "lengths": {side: [len(t) for t in replies[side]] for side in metrics.SIDES},
        "pet_phrases": [
            {
                "phrase": p,
                "count": c,
                **{side: metrics.phrase_share(replies[side], p) for side in metrics.SIDES},
            }
            for p, c in phrases
        ],
    }


def score_authorship(cfg: EvalConfig, val: list[dict], rows: list[dict]) -> dict:
    """The ``authorship`` block (verifier checked on all of ``val``, replies of ``rows`` scored);
    adds each row's P(owner) per side as ``row["authorship"]``."""
    from twin.eval.authorship import authorship_block
    from twin.eval.metrics import SIDES
    from twin.examples import read_examples

    train_path = Path(cfg.data) / cfg.train_file
    if not train_path.is_file():
        return {"status": "no_train_split", "train_file": str(train_path)}
    started = time.perf_counter()
    replies = {side: [r[side] for r in rows] for side in SIDES}
    block, scores = authorship_block(read_examples(train_path), val, replies, cfg.seed)
    for i, row in enumerate(rows):
        if scores:
            row["authorship"] = {side: round(scores[side][i], 4) for side in SIDES}
    block["seconds"] = time.perf_counter() - started
    return block


def contact_spread(rows: list[dict]) -> dict:
    """How the scored prompts spread over chats: how many (``groups`` of them group chats), and the
    largest share from one (counts only, no names)."""
    counts: dict[str, int] = {}
    for r in rows:
        key = chat_key(r)
        counts[key] = counts.get(key, 0) + 1
    top = max(counts.values(), default=0)
    groups = len({chat_key(r) for r in rows if r.get("group")})
    return {"count": len(counts), "groups": groups, "max_share": top / len(rows) if rows else 0.0}


@dataclass
class _Plan:
    """What one evaluation reads, all checked before the slow model load."""

    adapter: Path
    meta: AdapterMeta  # its budget: prompts fitted as training fitted them
    base: Path
    val_path: Path
    val_all: list[dict]  # the authorship verifier is checked on all of val
    examples: list[dict]  # the selected subset, with memory attached when the adapter has it
    memory: Memory | None  # the adapter's own memory, if it was trained with one
    run: str
    out: Path
    template: str
    max_seq: int


def _plan(cfg: EvalConfig) -> _Plan:
    from twin.adapter_meta import read_meta
    from twin.examples import read_examples
    from twin.memory import adapter_memory
    from twin.model.load import resolve_base

    adapter = Path(cfg.adapter)
    meta = read_meta(adapter)
    base = resolve_base(adapter, cfg.base, meta)
    val_path = Path(cfg.data) / cfg.val_file
    memory = adapter_memory(adapter, meta, cfg.memory)  # before the slow load: a bad --memory fails now
    val_all = read_examples(val_path)
    examples = _select(val_all, cfg.max_examples, cfg.seed)
    if memory is not None:  # the prompts remember what the server's would: the adapter's own memory
        examples = memory.attach(examples, memory.k)
    run = cfg.run or adapter.name
    max_seq = cfg.max_seq_length or int(meta.trained("max_seq_length") or 512)
    return _Plan(adapter=adapter, meta=meta, base=base, val_path=val_path, val_all=val_all,
                 examples=examples, memory=memory, run=run, out=Path(cfg.out_dir) / "runs" / run,
                 template=meta.template, max_seq=max_seq)  # fmt: skip


def _reply_tokens(plan: _Plan) -> int | None:
    """The reply room training kept (twin.json "budget"); None for adapters from before it was recorded."""
    return plan.meta.budget.reply_tokens if plan.meta.budget else None


def _load_twin(plan: _Plan, dtype: str) -> tuple[Any, Any]:
    """The base with the adapter on top, in eval mode (the base's turn switches the adapter off)."""
    from peft import PeftModel

    from twin.model.load import load_base

    model, tokenizer = load_base(plan.base, dtype=dtype)
    try:
        model = PeftModel.from_pretrained(model, str(plan.adapter))
    except (OSError, ValueError) as e:
        raise TwinError(f"{plan.adapter}: could not load the adapter ({str(e).splitlines()[0]})") from None
    model.eval()
    return model, tokenizer


def _losses(cfg: EvalConfig, plan: _Plan, model: Any, tokenizer: Any) -> dict:
    n, total = len(plan.examples), len(plan.val_all)
    # a sample of a big val split: say so, or "200 val examples" reads as all there were
    part = (
        f"{n} of the {total} val examples (--max-examples {cfg.max_examples})"
        if n < total
        else f"{n} val examples"
    )
    log.info("loss on %s (base and twin)", part)
    with model.disable_adapter():
        base_loss = reply_loss(model, tokenizer, plan.examples, plan.template, plan.max_seq, cfg.batch_size,
                               _reply_tokens(plan))  # fmt: skip
    twin_loss = reply_loss(model, tokenizer, plan.examples, plan.template, plan.max_seq, cfg.batch_size,
                           _reply_tokens(plan))  # fmt: skip
    return {"base": base_loss, "twin": twin_loss}


def _sample_rows(examples: list[dict], replies: list[tuple[str, str]]) -> list[dict]:
    """One row per example: its prompt, the real reply and both generated ones."""
    return [
        {
            "session": ex.get("session"),
            "dialog_id": ex.get("dialog_id"),
            "contact": ex.get("contact"),
            # the page's blind tab asks for a group's reply as one (its members label the lines)
            **({"group": True, "members": ex.get("members") or []} if ex.get("group") else {}),
            "context": ex["context"],
            "message": ex["instruction"],
            "real": ex["response"],
            "base": base_reply,
            "twin": twin_reply,
        }
        for ex, (base_reply, twin_reply) in zip(examples, replies, strict=True)
    ]


def _result(cfg: EvalConfig, plan: _Plan, rows: list[dict], loss: dict, authorship: dict,
            prompt_tokens: list[int], seconds: dict) -> dict:  # fmt: skip
    """``eval.json``'s content (without the blind block, added by the caller)."""
    memory = plan.memory
    return {
        "run": plan.run,
        "adapter": str(plan.adapter),
        "base": str(plan.base),
        "template": plan.template,
        "val_file": str(plan.val_path),
        "examples": len(rows),
        "contacts": contact_spread(rows),
        "config": cfg.model_dump(mode="json"),
        "loss": loss,
        **summarize(rows, pet_top=cfg.pet_phrases),
        "authorship": authorship,
        "memory": {
            "k": memory.k if memory else 0,
            "pairs": len(memory.pairs) if memory else 0,
            "scope": memory.scope if memory else None,
        },
        "prompt_tokens": {
            "mean": sum(prompt_tokens) / len(prompt_tokens) if prompt_tokens else 0.0,
            "max": max(prompt_tokens, default=0),
        },
        "train_metrics": plan.meta.metrics,
        "seconds": seconds,
    }


def _write_outputs(out: Path, result: dict, rows: list[dict], samples: int, announce: bool) -> None:
    from twin.eval.report import write_report
    from twin.eval.verdict import acceptance_rate, headline
    from twin.fileio import atomic_write_json, atomic_write_jsonl

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_jsonl(out / "eval_samples.jsonl", rows)
    atomic_write_json(out / "eval.json", result)
    write_report(result, rows[:samples], out / "report.html", metrics_csv=out / "metrics.csv")
    if not announce:
        return
    log.info("%s", headline(result, acceptance_rate(result)))
    log.info(
        "eval: loss base %.3f -> twin %.3f; BLEU-4 base %.2f -> twin %.2f; report %s",
        result["loss"]["base"]["loss"],
        result["loss"]["twin"]["loss"],
        result["overlap"]["base"]["bleu4"],
        result["overlap"]["twin"]["bleu4"],
        out / "report.html",
    )


def run_eval(cfg: EvalConfig, *, progress: bool = True, announce: bool = True) -> dict:
    """Evaluate and write eval.json, eval_samples.jsonl and report.html; returns the results dict.

    ``announce`` logs the verdict and the numbers; `twin eval` prints them itself (on stdout, for
    scripts), so it turns the log lines off rather than show every line twice."""
    from twin.eval.blind import blind_score, blind_sentence
    from twin.imports import gc_paused, resume_gc

    started = time.perf_counter()
    drafts_acceptance = acceptance(read_feedback(cfg.feedback))  # a bad file stops before any loading
    # No full collection walks the imports and the models while they load (twin/imports.py): a tiny
    # eval did 9 of 15-320 ms, 1.4 s of its 12.4 s.
    with gc_paused():
        plan = _plan(cfg)
        # torch's imports and the load: 5.6-6.3 s with no line at the start of a 30,000-90,000-message eval
        log.info("loading the base %s with the adapter %s", plan.base, plan.adapter)
        model, tokenizer = _load_twin(plan, cfg.dtype)
        resume_gc()  # ...and none walks them again while it generates and scores: frozen until the end
        loss = _losses(cfg, plan, model, tokenizer)

        gen_started = time.perf_counter()
        replies, prompt_tokens = generate_replies(cfg, model, tokenizer, plan.examples, plan.template, progress,
                                                  plan.meta.prompt_tokens)  # fmt: skip
        rows = _sample_rows(plan.examples, replies)
        gen_seconds = time.perf_counter() - gen_started
        authorship = score_authorship(cfg, plan.val_all, rows)

        seconds = {
            "generation": gen_seconds,
            "per_reply": gen_seconds / (2 * len(rows)) if rows else 0.0,  # base and twin each
            "total": time.perf_counter() - started,
        }
        result = _result(cfg, plan, rows, loss, authorship, prompt_tokens, seconds)
        result["blind"] = blind_score(plan.out / "blind.jsonl")  # the chat page's "Is it me?" rounds
        log.info("%s", blind_sentence(result["blind"], plan.run))
        result["acceptance"] = drafts_acceptance  # what you did with twin drafts' suggestions, per week
        _write_outputs(plan.out, result, rows, cfg.samples, announce)
    return result
