"""The run's checkpoint and the best step's weights: what ``--resume`` continues and what is kept.

``state.ckpt`` in the run directory holds everything needed to continue exactly (the trainable
weights, optimizer, schedule, :class:`Progress`, every process's RNG), written beside and renamed
over the previous one. The best val loss's weights are kept as CPU copies (``eval.keep_best``),
saved in the checkpoint too, and put back before the adapter is written.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twin.fileio import replace_path
from twin.train.config import TrainConfig, run_dir
from twin.train.resume import changed_keys, gather, rng_state, set_rng_state

if TYPE_CHECKING:
    from twin.train.loop import Model

log = logging.getLogger(__name__)

STATE_FILE = "state.ckpt"


@dataclass
class Progress:
    """Where the run is: saved in every checkpoint, restored by ``--resume``."""

    step: int = 0
    micro: int = 0  # micro-batches consumed by this process
    tokens: int = 0
    elapsed: float = 0.0
    train_seconds: float = 0.0  # without validation and checkpoints
    rows: list[dict] = field(default_factory=list)  # metrics.csv
    best_step: int | None = None  # the step of the lowest val loss so far (its weights: Model.best)
    best_val_loss: float | None = None
    evals_since_best: int = 0  # validations in a row without a new best (eval.patience)
    stopped_early: bool = False
    base_val_loss: float | None = None  # the base's own (adapter off), measured at the first validation


# --------------------------------------------------------------------------------------------
# The checkpoint: everything needed to continue exactly, written atomically


def save_state(fabric: Any, cfg: TrainConfig, model: Model, progress: Progress, data_id: dict) -> None:
    """Write beside, then rename over the previous checkpoint.

    Every process's RNG state is gathered into the one file, so each resumes with its own.
    """
    rdir = run_dir(cfg)
    snapshot = {
        "model": model.module,
        "optimizer": model.optimizer,
        "scheduler": model.scheduler,
        "progress": asdict(progress),
        "best": model.best,  # the best step's weights, so --resume still keeps the best adapter
        "data": data_id,
        "rng": gather(fabric, rng_state()),
        "config": cfg.model_dump(mode="json"),
    }
    tmp = rdir / f".{STATE_FILE}.tmp"
    fabric.save(tmp, snapshot, filter={"model": lambda k, v: k in model.trainable})
    fabric.barrier()
    if fabric.is_global_zero:
        replace_path(tmp, rdir / STATE_FILE)
    fabric.barrier()


def restore(fabric: Any, cfg: TrainConfig, model: Model, total_steps: int) -> Progress:
    """``--resume``: weights, optimizer, schedule, progress and this process's RNG (see ``check_resume``)."""
    zero = fabric.is_global_zero
    state_path = run_dir(cfg) / STATE_FILE
    if not state_path.exists():
        if zero:
            log.warning("--resume: no checkpoint in %s yet, starting from step 0", run_dir(cfg))
        return Progress()
    state = {"model": model.module, "optimizer": model.optimizer, "scheduler": model.scheduler}
    extra = fabric.load(state_path, state, strict=False, weights_only=True)  # data only, never code
    changed = changed_keys(extra.get("config", {}), cfg.model_dump(mode="json"))
    if changed and zero:
        log.warning("resuming with changed settings: %s", ", ".join(changed))
    rng = extra["rng"]  # one state per rank (a dict: checkpoints before per-rank states)
    set_rng_state(rng[fabric.global_rank] if isinstance(rng, list) else rng)
    progress = Progress(**extra["progress"])
    model.best = extra.get("best")  # checkpoints before the best-step record: None
    if zero:
        log.info("resumed %s at step %d/%d", cfg.run, progress.step, total_steps)
    return progress


def full_adapter_state(state_path: Path) -> dict | None:
    """FSDP: the consolidated (state_dict_type=full) checkpoint holds the trainable weights."""
    import torch

    if not state_path.is_file():
        return None
    sd = torch.load(state_path, map_location="cpu", weights_only=True)["model"]  # data only, never code
    return {k.removeprefix("peft_model."): v for k, v in sd.items()}


# --------------------------------------------------------------------------------------------
# The best step: its weights kept in memory (and in the checkpoint), put back at the end


def track_best(
    fabric: Any, cfg: TrainConfig, model: Model, progress: Progress, val_loss: float, bar: Any
) -> None:
    """A new lowest val loss: remember its step and (``eval.keep_best``) a copy of its weights.
    ``eval.patience`` validations in a row without one stop the run. Every process decides the
    same (the val loss is all-reduced), and each copies its own weights."""
    if progress.best_val_loss is None or val_loss < progress.best_val_loss:
        progress.best_step, progress.best_val_loss, progress.evals_since_best = progress.step, val_loss, 0
        if _keeps_best(cfg):
            model.best = trainable_copy(model.peft)
        return
    progress.evals_since_best += 1
    patience = cfg.eval.patience
    if patience and progress.evals_since_best >= patience:
        progress.stopped_early = True
        if fabric.is_global_zero:
            bar.write(
                f"step {progress.step}: no lower val loss in {patience} validations since step "
                f"{progress.best_step} ({progress.best_val_loss:.4f}); stopping early (eval.patience)"
            )


def _keeps_best(cfg: TrainConfig) -> bool:
    # FSDP shards the weights and its adapter comes from the consolidated last checkpoint.
    return cfg.eval.keep_best and cfg.strategy != "fsdp"


def trainable_copy(module: Any) -> dict:
    """CPU copies of ``module``'s trainable weights (put back by :func:`put_back`)."""
    return {n: p.detach().to("cpu", copy=True) for n, p in module.named_parameters() if p.requires_grad}


def put_back(module: Any, copy: dict) -> None:
    """``module``'s weights named in ``copy`` (from :func:`trainable_copy`) set to it."""
    import torch

    params = dict(module.named_parameters())
    with torch.no_grad():
        for name, value in copy.items():
            params[name].copy_(value.to(params[name].device))


def keep_best(
    fabric: Any, cfg: TrainConfig, model: Model, progress: Progress, last_val: float | None
) -> dict:
    """Put the best step's weights back (after the last step's checkpoint is written) and say which
    adapter is kept: ``{"kept", "step", "val_loss", "last_val_loss", "best_step", "stopped_early",
    "base_val_loss"}``."""
    out = {"kept": "last", "step": progress.step, "val_loss": last_val, "last_val_loss": last_val,
           "best_step": progress.best_step, "best_val_loss": progress.best_val_loss,
           "stopped_early": progress.stopped_early, "base_val_loss": progress.base_val_loss}  # fmt: skip
    if progress.best_step is None or progress.best_step == progress.step or model.best is None:
        _warn_if_no_better_than_base(fabric, cfg, progress, last_val)
        if fabric.is_global_zero and cfg.eval.keep_best and cfg.strategy == "fsdp":
            log.warning(
                "strategy fsdp: the adapter is the last step's (best-step selection needs ddp or 1 device)"
            )
        if fabric.is_global_zero and progress.best_step is not None:
            log.info("best val loss %.4f at the last step %d, kept", progress.best_val_loss, progress.step)
        return out
    put_back(model.peft, model.best)
    if fabric.is_global_zero:
        log.info(
            "best val loss %.4f at step %d, kept (the last step %d had %s)",
            progress.best_val_loss, progress.best_step, progress.step,
            f"{last_val:.4f}" if last_val is not None else "no validation",
        )  # fmt: skip
    _warn_if_no_better_than_base(fabric, cfg, progress, progress.best_val_loss)
    return out | {"kept": "best", "step": progress.best_step, "val_loss": progress.best_val_loss}


def _warn_if_no_better_than_base(
    fabric: Any, cfg: TrainConfig, progress: Progress, kept: float | None
) -> None:
    """The kept adapter predicts the owner's val replies no better than the base did: say so plainly
    (a chat this small overfits before it learns; the eval report will show the same)."""
    base = progress.base_val_loss
    if not fabric.is_global_zero or base is None or kept is None or kept < base:
        return
    log.warning(
        "the adapter's val loss %.4f is no better than the base's own %.4f: this twin does not predict "
        "your replies better than the base. More chats help most; else lower optim.lr (%g) or epochs (%d)",
        kept, base, cfg.optim.lr, cfg.epochs,
    )  # fmt: skip
