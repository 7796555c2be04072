"""The preference stage: DPO on the owner's own replies, continuing an SFT adapter.

    twin train --stage prefs --run demo                       # continue adapters/demo, in place
    twin train --stage prefs --from demo --run demo-prefs     # leave the SFT adapter as it is
    prefs: {enabled: true}   (in a recipe)                    # `twin train` runs SFT, then this

A pair is one train-split prompt with two replies: **chosen** is what the owner really wrote;
**rejected** is a plausible reply that is not theirs: of ``prefs.samples`` replies the SFT twin
samples for that prompt, the one the owner-style verifier (:mod:`twin.style`, fitted on the train
split) scores least like the owner, and the base's own reply (the adapter switched off), each kept
only when the verifier puts it below ``prefs.max_rejected_p`` (a reply it takes for the owner's is
no evidence of what the owner would not write). Drafts
feedback adds pairs where the owner rewrote a suggestion (chosen = what they sent, rejected = the
draft). Val prompts never make pairs; their real replies only give the guard its loss (below).

The objective is DPO (Rafailov et al. 2023) against the SFT adapter as reference, plus the NLL of
the chosen reply (RPO, Pang et al. 2024), which keeps the owner's real replies likely while the
margin grows. Only the LoRA matrices move (``prefs.train_embeddings``: the SFT adapter's embedding
rows stay as SFT left them), and a guard measures the loss of the real val replies every
``prefs.val_every`` steps: the stage stops once it is more than ``prefs.max_loss_increase`` above
the SFT adapter's and keeps the last weights within it. The reference log-probs are computed ONCE,
before the first update, by the same model (the adapter is the SFT one then) and kept as a tensor:
no second model is held in memory.

Pairs are built in :mod:`twin.train.pairs`. The same Fabric (:mod:`twin.train.launch`), model
loading and loss module as :mod:`twin.train.loop`; one device; no resume (a rerun restarts from
the SFT adapter, which is never overwritten until the end, atomically).
"""

from __future__ import annotations

import logging
import math
import os
import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twin.adapter_meta import AdapterMeta, now, read_meta
from twin.errors import TwinError
from twin.fileio import replace_path
from twin.train.checkpoints import put_back, trainable_copy
from twin.train.config import TrainConfig
from twin.train.pairs import Pairs, build_pairs, encode_pairs

log = logging.getLogger(__name__)

PREFS_METRICS = ("step", "loss", "dpo", "nll", "accuracy", "margin", "lr", "elapsed_s", "val_loss")


# --------------------------------------------------------------------------------------------
# Preflight (no torch): the adapter to continue, the data, the feedback records


@dataclass
class Plan:
    init: Path  # the adapter continued
    meta: AdapterMeta  # its twin.json
    out: Path  # where the result goes (== init: in place)
    feedback: list[dict]  # pairs from drafts feedback


def init_adapter(cfg: TrainConfig) -> Path:
    """``prefs.init`` as a directory (a bare name is a run under ``<out_dir>/adapters``)."""
    raw = cfg.prefs.init or cfg.run
    p = Path(raw)
    if cfg.prefs.init and (p.is_dir() or os.sep in raw):
        return p
    return Path(cfg.out_dir) / "adapters" / raw


def preflight_prefs(cfg: TrainConfig, *, feedback_required: bool = False) -> tuple[TrainConfig, Plan]:
    """Every cheap check before torch: returns the config pointed at the adapter's base, and the plan."""
    from twin.model.load import resolve_base
    from twin.train.config import adapter_dir
    from twin.train.launch import preflight

    if cfg.devices != 1:
        raise TwinError(f"--devices {cfg.devices}: the preference stage runs on one device; use --devices 1")
    init = init_adapter(cfg)
    if not (init / "twin.json").is_file():
        raise TwinError(
            f"{init}: no SFT adapter to continue; train one first (`twin train --run {cfg.run}`) "
            "or name it with --from RUN_OR_DIR"
        )
    meta = read_meta(init)
    out = adapter_dir(cfg)
    if meta.prefs and out.resolve() == init.resolve():
        raise TwinError(
            f"{init / 'twin.json'}: already has a preference stage; continue from the SFT adapter "
            f"kept in {Path(cfg.out_dir) / 'runs' / cfg.run / 'sft-adapter'} (--from DIR) or pick "
            "another --run"
        )
    base = Path(cfg.base) if Path(cfg.base).is_dir() else None
    cfg = cfg.model_copy(update={"base": str(resolve_base(init, base, meta))})
    preflight(cfg)  # the template and max_seq_length are the adapter's own (twin.json), not the recipe's
    return cfg, Plan(init=init, meta=meta, out=out, feedback=_feedback(cfg, feedback_required))


def _feedback(cfg: TrainConfig, required: bool) -> list[dict]:
    if "feedback" not in cfg.prefs.sources:
        return []
    d = Path(cfg.prefs.feedback)
    if not d.is_dir():
        if required:
            raise TwinError(f"{d}: feedback directory not found; pass the directory `twin drafts` writes to")
        return []
    from twin.feedback import preference_pairs, read_feedback

    return preference_pairs(read_feedback(d))


# --------------------------------------------------------------------------------------------
# Entry point


def train_prefs(cfg: TrainConfig, *, feedback_required: bool = False) -> dict:
    """Run the preference stage on ``prefs.init`` (default: this run's adapter); returns its record."""
    from twin.train.launch import resolve_precision, setup

    cfg, plan = preflight_prefs(cfg, feedback_required=feedback_required)
    precision = resolve_precision(cfg)
    cfg = cfg.model_copy(update={"precision": precision["precision"]})
    return setup(cfg).launch(main_prefs, cfg, plan)


def main_prefs(fabric: Any, cfg: TrainConfig, plan: Plan) -> dict:
    """Load, build pairs, score the reference once, train, measure, save. Returns the prefs record."""
    import torch

    from twin.train.loop import load_model

    started = time.perf_counter()
    torch.set_num_threads(cfg.num_threads or max(1, os.cpu_count() or 1))
    fabric.seed_everything(cfg.seed, verbose=False)
    tokenizer, template, train_rows, val = load_prefs_data(cfg, plan)
    p = cfg.prefs
    step_cfg = cfg.model_copy(update={"optim": cfg.optim.model_copy(update={"lr": p.lr})})
    model = load_model(fabric, step_cfg, p.steps, init_adapter=plan.init, train_rows=p.train_embeddings)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    pairs, verifier_status = build_pairs(cfg, model.peft, tokenizer, template, train_rows, plan.feedback)
    timings["pairs"] = time.perf_counter() - t
    if not pairs.chosen:
        raise TwinError(
            "no preference pairs could be built (every sample matched the real reply); check the data"
        )
    enc = encode_pairs(
        pairs, tokenizer, template, plan.meta.trained("max_seq_length", cfg.data.max_seq_length)
    )
    t = time.perf_counter()  # the reference: the SFT adapter's log-probs, once, before any update
    ref = sequence_logps(fabric, model.module, enc, tokenizer.pad_token_id, p.micro_batch_size)
    timings["reference"] = time.perf_counter() - t
    val_before = _val_loss(fabric, model, val, tokenizer, step_cfg)
    guard = Guard(p.max_loss_increase if val is not None else None, p.val_every, val_before,
                  lambda: _val_loss(fabric, model, val, tokenizer, step_cfg), model.module, p.patience)  # fmt: skip
    t = time.perf_counter()
    rows = fit_prefs(fabric, step_cfg, model, enc, ref, tokenizer.pad_token_id, guard)
    guard.restore(len(rows))
    timings["train"] = time.perf_counter() - t
    after = sequence_logps(  # the same pairs after the stage: the margin it reached
        fabric, model.module, enc, tokenizer.pad_token_id, p.micro_batch_size
    )
    val_after = _val_loss(fabric, model, val, tokenizer, step_cfg)
    timings["total"] = time.perf_counter() - started
    record = prefs_record(
        cfg, plan, pairs, verifier_status, ref, after, (val_before, val_after), rows, timings
    ) | {"guard": guard.record()}
    _warn_loss(record, cfg)
    if fabric.is_global_zero:
        write_prefs_metrics(cfg, rows)
        save_prefs(cfg, plan, model.peft, record)
    return record


def _warn_loss(record: dict, cfg: TrainConfig) -> None:
    """The stage should not cost the owner's real replies more than 2% of their loss."""
    change, guard = record["val_loss_change"], record["guard"]
    if guard["kept_step"] == 0:
        log.warning(
            "preference stage: all %d checks cost the real replies more than %.0f%% of their val loss; "
            "the adapter keeps the SFT weights (lower prefs.lr)",
            len(guard["checks"]),
            100 * cfg.prefs.max_loss_increase,
        )
    if change is not None and change > 0.02:
        log.warning(
            "preference stage: val loss of the real replies %.1f%% worse than the SFT adapter's; "
            "raise prefs.nll_weight (now %s) or lower prefs.lr (now %s)",
            100 * change, cfg.prefs.nll_weight, cfg.prefs.lr,
        )  # fmt: skip


def load_prefs_data(cfg: TrainConfig, plan: Plan) -> tuple[Any, str, list[dict], Any]:
    """The tokenizer, the adapter's own template, the train split (with memory if trained with it), val."""
    from twin.examples import encode_examples
    from twin.model.load import load_tokenizer
    from twin.train.data import read_with_memory

    data_dir = Path(cfg.data.dir)
    tokenizer = load_tokenizer(cfg.base)
    template = plan.meta.template
    k = plan.meta.memory.k if plan.meta.memory else 0
    rows = read_with_memory(
        data_dir / cfg.data.train_file, data_dir, k, cfg.data.train_file, cfg.data.memory_scope
    )
    val_path = data_dir / cfg.data.val_file
    val = None
    if val_path.is_file() and val_path.stat().st_size:
        val_rows = read_with_memory(val_path, data_dir, k, cfg.data.train_file, cfg.data.memory_scope)
        val = encode_examples(val_rows, tokenizer, template, plan.meta.trained("max_seq_length", 512))
    return tokenizer, template, rows, val


def _val_loss(fabric: Any, model: Any, val: Any, tokenizer: Any, cfg: TrainConfig) -> float | None:
    from twin.train.loop import validate

    return None if val is None else validate(fabric, model.module, val, tokenizer.pad_token_id, cfg)


# --------------------------------------------------------------------------------------------
# The guard: the real replies' loss within budget


class Guard:
    """Every ``every`` steps, the val loss of the owner's real replies; the stage stops after
    ``patience`` checks in a row more than ``limit`` (a fraction) above the SFT adapter's ``before``,
    and keeps the weights of the last step checked within it (step 0: the SFT weights). As SFT keeps its best checkpoint by val
    loss, the stage never ships an adapter that fits the real replies worse than it promised."""

    def __init__(
        self,
        limit: float | None,
        every: int,
        before: float | None,
        measure: Any,
        module: Any,
        patience: int = 1,
    ):
        self.limit, self.every, self.before, self.measure = limit, every, before, measure
        self.patience, self.over, self.module = patience, 0, module
        self.budget = None if limit is None or before is None else before * (1 + limit)
        self.checks: list[dict] = []
        self.kept_step, self.stopped_at = 0, None
        # on the CPU, as SFT's best-step copy (twin/train/checkpoints.py)
        self.kept = trainable_copy(module) if self.budget is not None else None

    def check(self, step: int, last: bool) -> bool:
        """After optimizer step ``step``: False stops the stage (the loss went over budget)."""
        if self.budget is None:
            self.kept_step = step
            return True
        if step % self.every and not last:
            return True
        loss = self.measure()
        self.checks.append({"step": step, "val_loss": round(loss, 6)})
        if loss <= self.budget:
            self.kept_step, self.kept, self.over = step, trainable_copy(self.module), 0
            return True
        self.over += 1  # the loss may come back under as the lr decays: ``patience`` checks in a row
        if self.over < self.patience:
            return True
        self.stopped_at = step
        return False

    def restore(self, last_step: int) -> None:
        """Put back the kept weights unless they are the current ones."""
        if self.kept is not None and self.kept_step != last_step:
            put_back(self.module, self.kept)

    def record(self) -> dict:
        return {"max_loss_increase": self.limit, "val_every": self.every, "patience": self.patience,
                "checks": self.checks, "kept_step": self.kept_step, "stopped_at": self.stopped_at}  # fmt: skip


# --------------------------------------------------------------------------------------------
# The objective


def dpo_loss(
    policy_chosen: Any, policy_rejected: Any, ref_chosen: Any, ref_rejected: Any, beta: float
) -> Any:
    """Per-pair DPO loss: ``-log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r)))`` on summed log-probs."""
    import torch.nn.functional as F

    margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return -F.logsigmoid(beta * margin)


def pair_rows(batch: list[int], n: int) -> list[int]:
    """The encoded rows of pairs ``batch``: their chosen rows, then their rejected rows."""
    return [*batch, *(n + i for i in batch)]


def sequence_logps(fabric: Any, module: Any, enc: Any, pad_id: int, micro: int) -> Any:
    """Summed log-prob of every encoded row under the current weights, no grad, dropout off: ``[2n]``."""
    import torch

    from twin.examples import collate
    from twin.train.loop import batch_to

    out = torch.zeros(len(enc), dtype=torch.float32)
    module.eval()
    with torch.no_grad():
        for start in range(0, len(enc), 2 * micro):
            idx = list(range(start, min(start + 2 * micro, len(enc))))
            out[idx] = (
                -module(**batch_to(collate(enc, idx, pad_id), fabric.device), per_row=True).float().cpu()
            )
    module.train()
    return out


def fit_prefs(
    fabric: Any, cfg: TrainConfig, model: Any, enc: Any, ref: Any, pad_id: int, guard: Guard
) -> list[dict]:
    """``prefs.steps`` optimizer steps of ``prefs.batch_size`` pairs, in a seeded order over the pairs,
    until the guard stops them."""
    from tqdm.auto import tqdm

    p, n = cfg.prefs, len(enc) // 2
    order: list[int] = []
    rng = random.Random(cfg.seed)
    rows: list[dict] = []
    start = time.perf_counter()
    with tqdm(total=p.steps, desc="preference stage (DPO)", unit="step", dynamic_ncols=True) as bar:
        for step in range(1, p.steps + 1):
            while len(order) < p.batch_size:
                order += rng.sample(range(n), n)
            batch, order = order[: p.batch_size], order[p.batch_size :]
            row = prefs_step(fabric, cfg, model, enc, ref, batch, pad_id)
            rows.append({**row, "step": step, "lr": model.scheduler.get_last_lr()[0],
                         "elapsed_s": round(time.perf_counter() - start, 2)})  # fmt: skip
            if not math.isfinite(row["loss"]):
                raise TwinError(
                    f"preference loss became {row['loss']} at step {step}; lower prefs.lr ({p.lr})"
                )
            bar.update()
            bar.set_postfix(loss=f"{row['loss']:.3f}", acc=f"{row['accuracy']:.2f}")
            go_on = guard.check(step, last=step == p.steps)
            if guard.checks and guard.checks[-1]["step"] == step:
                rows[-1]["val_loss"] = guard.checks[-1]["val_loss"]
            if not go_on:
                break
    return rows


def prefs_step(
    fabric: Any, cfg: TrainConfig, model: Any, enc: Any, ref: Any, batch: list[int], pad_id: int
) -> dict:
    """One optimizer step: DPO averaged over the step's pairs + NLL per chosen token, accumulated."""
    from twin.examples import collate, count_targets
    from twin.train.loop import batch_to, optimizer_step

    p, n = cfg.prefs, len(enc) // 2
    micro = [batch[i : i + p.micro_batch_size] for i in range(0, len(batch), p.micro_batch_size)]
    chosen_tokens = max(1, count_targets(enc, batch))
    totals = {"loss": 0.0, "dpo": 0.0, "nll": 0.0, "accuracy": 0.0, "margin": 0.0}
    for k, b in enumerate(micro):
        idx = pair_rows(b, n)
        with fabric.no_backward_sync(model.module, enabled=k < len(micro) - 1):
            neg = model.module(**batch_to(collate(enc, idx, pad_id), fabric.device), per_row=True)
            pol_c, pol_r = -neg[: len(b)], -neg[len(b) :]
            ref_c, ref_r = ref[b].to(neg.device), ref[[n + i for i in b]].to(neg.device)
            dpo = dpo_loss(pol_c, pol_r, ref_c, ref_r, p.beta).sum() / len(batch)
            nll = neg[: len(b)].sum() / chosen_tokens
            loss = dpo + p.nll_weight * nll
            fabric.backward(loss)
        margin = ((pol_c - ref_c) - (pol_r - ref_r)).detach()
        totals["loss"] += float(loss.detach())
        totals["dpo"] += float(dpo.detach())
        totals["nll"] += float(nll.detach())
        totals["accuracy"] += float((margin > 0).sum()) / len(batch)
        totals["margin"] += float(margin.sum()) / len(batch)
    optimizer_step(fabric, cfg, model)
    return {k: round(v, 6) for k, v in totals.items()}


# --------------------------------------------------------------------------------------------
# Outputs: the record in twin.json, the adapter beside the SFT one


def prefs_record(
    cfg: TrainConfig,
    plan: Plan,
    pairs: Pairs,
    verifier_status: str,
    ref: Any,
    after: Any,
    val: tuple[float | None, float | None],
    rows: list[dict],
    timings: dict[str, float],
) -> dict:
    """What twin.json records about the stage (counts and numbers only, never text)."""
    n = len(ref) // 2
    margin_before = float((ref[:n] - ref[n:]).mean())
    margin_after = float((after[:n] - after[n:]).mean())
    by_source = {s: pairs.sources.count(s) for s in dict.fromkeys(pairs.sources)}
    scored = {s: [x for x, src in zip(pairs.scores, pairs.sources, strict=True) if src == s and x is not None]
              for s in by_source}  # fmt: skip
    before, after_loss = val
    return {
        "stage": "prefs",
        "objective": cfg.prefs.objective,
        "beta": cfg.prefs.beta,
        "nll_weight": cfg.prefs.nll_weight,
        "init": str(plan.init),
        "init_created": plan.meta.created,
        "pairs": n,
        "pair_sources": by_source,
        "rejected_p_owner": {s: round(sum(v) / len(v), 4) for s, v in scored.items() if v},
        "left_out_owner_like": pairs.owner_like,
        "verifier": verifier_status,
        "steps": len(rows),
        "margin_before": round(margin_before, 4),
        "margin_after": round(margin_after, 4),
        "reward_accuracy_after": round(
            float(((after[:n] - ref[:n]) > (after[n:] - ref[n:])).float().mean()), 4
        ),
        "val_loss_before": round(before, 6) if before is not None else None,
        "val_loss_after": round(after_loss, 6) if after_loss is not None else None,
        "val_loss_change": round(after_loss / before - 1, 4) if before and after_loss is not None else None,
        "config": cfg.prefs.model_dump(mode="json"),
        "final_step": rows[-1] if rows else None,
        "seconds": {k: round(v, 2) for k, v in timings.items()},
    }


def write_prefs_metrics(cfg: TrainConfig, rows: list[dict]) -> Path:
    """``runs/<run>/prefs_metrics.csv``: one row per optimizer step."""
    import csv
    import io

    from twin.fileio import atomic_write_text
    from twin.train.config import run_dir

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=PREFS_METRICS, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    path = run_dir(cfg) / "prefs_metrics.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, buf.getvalue())
    return path


def save_prefs(cfg: TrainConfig, plan: Plan, peft_model: Any, record: dict) -> Path:
    """The SFT adapter's directory (memory, tokenizer...) with the new weights and twin.json's ``prefs``.

    Built beside and swapped in whole; continuing in place first keeps the SFT adapter in
    ``runs/<run>/sft-adapter`` so the step back is always there.
    """
    from twin.train.config import run_dir

    out = plan.out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        shutil.copytree(plan.init, tmp, dirs_exist_ok=True)
        peft_model.save_pretrained(str(tmp))
        plan.meta.model_copy(update={"prefs": record, "created": now()}).write(tmp)
        if out.resolve() == plan.init.resolve():
            keep = run_dir(cfg) / "sft-adapter"
            shutil.rmtree(keep, ignore_errors=True)
            shutil.copytree(plan.init, keep)
        replace_path(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info(
        "preference stage: %d pairs, margin %.3f -> %.3f, val loss %s -> %s; adapter %s",
        record["pairs"], record["margin_before"], record["margin_after"],
        record["val_loss_before"], record["val_loss_after"], out,
    )  # fmt: skip
    return out
