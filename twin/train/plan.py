"""How long the run is and what each step sees, decided from the data before the model loads.

:func:`plan_steps` turns ``epochs``/``step_cap``/``max_steps`` into optimizer steps (and how often to
validate); :class:`BatchPlan` lays out every process's length-grouped micro-batches, epoch after
epoch, deterministically, so ``--resume`` replays them exactly; :func:`log_plan` says it all once.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from twin.train.config import TrainConfig

if TYPE_CHECKING:
    from twin.train.loop import TrainData

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StepPlan:
    """How many optimizer steps the run takes, and why (logged, and recorded in twin.json)."""

    steps: int
    steps_per_epoch: float
    eval_every: int  # validate every this many steps (and at the last one); 0: only at the end
    reason: str
    capped_from: int = 0  # the steps ``epochs`` would have taken, when ``step_cap`` cut them

    @property
    def epochs(self) -> float:
        return self.steps / self.steps_per_epoch

    def record(self) -> dict:
        return {
            "steps": self.steps,
            "epochs": round(self.epochs, 3),
            "steps_per_epoch": round(self.steps_per_epoch, 3),
            "eval_every": self.eval_every,
            "reason": self.reason,
        }


def plan_steps(cfg: TrainConfig, n_examples: int, micro_per_epoch: int) -> StepPlan:
    """Steps from the data: ``epochs`` passes over the train split, at most ``step_cap``; an
    explicit ``max_steps`` overrides both. A fixed step count would train a 1,000-message chat for
    dozens of epochs (and a million-message one for a fraction of one)."""
    per_epoch = max(micro_per_epoch / cfg.grad_accum_steps, 1e-9)
    capped_from = 0
    if cfg.max_steps:
        steps = cfg.max_steps
        reason = (
            f"{n_examples} examples, max_steps {steps} set -> {steps} steps ({steps / per_epoch:.1f} epochs)"
        )
    else:
        wanted = max(1, math.ceil(cfg.epochs * micro_per_epoch / cfg.grad_accum_steps))
        steps = min(wanted, cfg.step_cap) if cfg.step_cap else wanted
        capped_from = wanted if steps < wanted else 0
        if steps < wanted:
            reason = (
                f"{n_examples} examples: {cfg.epochs} epochs would be {wanted} steps, capped at {steps} "
                f"({steps / per_epoch:.2f} epochs{_unseen(steps, per_epoch)})"
            )
        else:
            cap = f" (cap {cfg.step_cap})" if cfg.step_cap else ""
            reason = f"{n_examples} examples, {cfg.epochs} epochs -> {steps} steps{cap}"
    every = cfg.eval.every_steps
    eval_every = math.ceil(steps / 10) if every == "auto" else int(every)
    return StepPlan(steps, per_epoch, eval_every, reason, capped_from)


def _unseen(steps: int, per_epoch: float) -> str:
    """Under one pass, what "0.35 epochs" means to the owner and the step cap that gives one pass
    (a 180,000-message account: 65% of its replies never trained on, said only as an epoch count)."""
    if steps >= per_epoch:
        return ""
    unseen = 1 - steps / per_epoch
    return f": {unseen:.0%} of the examples never trained on; --set step_cap={math.ceil(per_epoch)} makes one pass"


# The second half of a capped run took at least this share off the val loss: more steps still pay.
# Measured on a 90,000-message account (bench/RESULTS.md, "steps from the data"): a 600-step run whose
# second half took 4.4% off gained 3.7% more from 1,200 steps; that run's second half took 2.2% off.
STILL_FALLING = 0.03


def longer_run_hint(
    plan: StepPlan, kept: dict, val_losses: list[tuple[int, float]], seconds: float
) -> str | None:
    """What to do when the step cap ended a run whose val loss was still falling (a big chat trains
    for a fraction of an epoch under the default cap): the best at the last step, and the run's
    second half took :data:`STILL_FALLING` or more off. ``kept`` is :func:`keep_best`'s answer,
    ``val_losses`` the run's ``(step, val loss)``, ``seconds`` its time; ``None`` otherwise."""
    first_half = [(step, loss) for step, loss in val_losses if step <= plan.steps / 2]
    if not plan.capped_from or kept["best_step"] != plan.steps or not first_half:
        return None
    half_step, half_loss = first_half[-1]
    fall = 1 - val_losses[-1][1] / half_loss
    if fall < STILL_FALLING:
        return None
    more = min(plan.steps, plan.capped_from - plan.steps)
    return (
        f"val loss was still falling at step {plan.steps}, the step cap ({fall:.1%} lower than at step "
        f"{half_step}; {plan.capped_from:,} steps would be "
        f"{plan.capped_from / plan.steps_per_epoch:.0f} epochs): a longer run may fit your replies better. "
        f"Add --set step_cap={plan.steps + more} to twin train (make train ARGS=...): "
        f"{_more_time(more / plan.steps * seconds)} at this run's pace"
    )


def _more_time(seconds: float) -> str:
    """How much longer, in minutes, or in seconds under a minute and a half (never "1 more minutes")."""
    if seconds < 90:
        return f"about {max(1, round(seconds))} more seconds"
    return f"about {seconds / 60:.0f} more minutes"


class BatchPlan:
    """Every process's micro-batches, epoch after epoch, deterministic in (seed, epoch).

    Micro-batches run on across epoch boundaries, so ``epochs`` costs exactly that many passes
    (rounded up to a whole optimizer step), whatever the accumulation. Process ``rank`` takes
    micro-batches ``rank, rank + world, ...`` of each epoch; one epoch is kept in memory.
    """

    def __init__(self, lengths: list[int], cfg: TrainConfig, world: int) -> None:
        self.lengths, self.cfg, self.world = lengths, cfg, world
        self._cache: dict[int, list[list[int]]] = {}
        self.per_epoch = len(self.epoch(0)) // world  # micro-batches per epoch on each process

    def epoch(self, epoch: int) -> list[list[int]]:
        """All processes' micro-batches of one epoch."""
        from twin.train.data import make_batches

        if epoch not in self._cache:
            self._cache.clear()
            self._cache[epoch] = make_batches(
                self.lengths,
                self.cfg.micro_batch_size,
                seed=self.cfg.seed,
                epoch=epoch,
                group_by_length=self.cfg.data.group_by_length,
                pool=self.cfg.data.length_pool,
                world_size=self.world,
            )
        return self._cache[epoch]

    def micro_batch(self, micro: int, rank: int) -> list[int]:
        """Process ``rank``'s micro-batch number ``micro`` (counted from the start of the run)."""
        epoch, j = divmod(micro, self.per_epoch)
        return self.epoch(epoch)[rank + self.world * j]

    def padding_fraction(self) -> float:
        """Padding share of the first epoch, as one process would batch it."""
        from twin.train.data import make_batches, padding_fraction

        batches = make_batches(
            self.lengths, self.cfg.micro_batch_size, seed=self.cfg.seed, epoch=0,
            group_by_length=self.cfg.data.group_by_length, pool=self.cfg.data.length_pool,
        )  # fmt: skip
        return padding_fraction(batches, self.lengths)


def log_plan(cfg: TrainConfig, data: TrainData, plan: BatchPlan, steps: StepPlan, world: int) -> None:
    log.info("step plan: %s; validation every %s steps", steps.reason, steps.eval_every or "(end only)")
    log.info(
        "%d train / %d val examples, template %s, %d optimizer steps of %d examples "
        "(micro-batch %d x %d accumulation x %d devices), padding %.1f%% of tokens",
        len(data.train),
        len(data.val) if data.val else 0,
        data.template,
        steps.steps,
        cfg.batch_size,
        cfg.micro_batch_size,
        cfg.grad_accum_steps,
        world,
        100 * plan.padding_fraction(),
    )
    _log_budget(data)


def _log_budget(data: TrainData) -> None:
    """What the prompt budget cost the training split: replies cut, prompts that lost context."""
    st, b = data.train.stats, data.budget
    n = max(1, st["examples"])
    line = (
        f"prompt budget: {b.prompt_tokens} tokens (max_seq_length {b.seq_tokens} - reply_tokens "
        f"{b.reply_tokens}): {st['reply_cut']} of {st['examples']} replies cut ({100 * st['reply_cut'] / n:.1f}%), "
        f"{st['context_trimmed']} prompts lost context turns ({100 * st['context_trimmed'] / n:.1f}%), "
        f"{st['message_cut']} messages cut, {st['dropped_prompt_too_long']} dropped"
    )
    (log.warning if st["reply_cut"] > 0.01 * n else log.info)(
        "%s%s", line, "; raise data.max_seq_length or data.reply_tokens" if st["reply_cut"] > 0.01 * n else ""
    )
