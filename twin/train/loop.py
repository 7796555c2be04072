"""The LoRA fine-tune: Lightning Fabric used directly, the whole loop readable in this one file.

    twin train --config pipelines/tiny.yaml --run demo

Order of work, so that mistakes cost seconds, not minutes:
  1. preflight (no torch): config, quantization vs hardware, base dir, data files;
  2. Fabric launch (one process, or N processes for ``--devices N --strategy ddp``);
  3. tokenizer, prompt template, every example tokenized once and fitted to the prompt budget
     (a too-small max length fails here); the step plan chosen from the data (``plan_steps``);
  4. the base model, peft LoRA on top, AdamW, the LR schedule; resume state if asked;
  5. the loop: length-grouped micro-batches, gradient accumulation, clipping, validation (the
     best step's weights kept, optional early stop), metrics.csv, atomic checkpoints; a NaN/inf
     loss stops the run;
  6. the adapter of the best val loss (PEFT format) + tokenizer + twin.json in
     ``checkpoints/adapters/<run>/`` (``artifacts.py``, which also writes metrics.csv and config.yaml).
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from twin import examples
from twin.errors import TwinError
from twin.fileio import atomic_write_text, replace_path
from twin.train.artifacts import METRIC_FIELDS, config_yaml, final_metrics, save, write_metrics
from twin.train.config import TrainConfig
from twin.train.resume import changed_keys, check_resume, data_identity, gather, rng_state, set_rng_state

log = logging.getLogger(__name__)

STATE_FILE = "state.ckpt"
_PRECISION_DTYPE = {"bf16-true": "bfloat16", "16-true": "float16"}  # the rest load in float32


# --------------------------------------------------------------------------------------------
# Paths and preflight


def run_dir(cfg: TrainConfig) -> Path:
    return Path(cfg.out_dir) / "runs" / cfg.run


def adapter_dir(cfg: TrainConfig) -> Path:
    return Path(cfg.out_dir) / "adapters" / cfg.run


def preflight(cfg: TrainConfig) -> None:
    """Every cheap check, before torch is even imported: each failure is one clear line."""
    from twin.checks import check_run_name
    from twin.model.load import check_base_dir, check_quantize

    check_run_name(cfg.run)
    check_quantize(cfg.quantize)
    if cfg.quantize and cfg.strategy == "fsdp":
        raise TwinError("quantize with strategy fsdp is not supported; use ddp (or a single device)")
    if cfg.strategy == "fsdp" or cfg.accelerator == "cuda" or cfg.precision.startswith("16-"):
        import torch

        if not torch.cuda.is_available():
            what = (
                "strategy fsdp"
                if cfg.strategy == "fsdp"
                else "accelerator cuda"
                if cfg.accelerator == "cuda"
                else f"precision {cfg.precision}"
            )
            raise TwinError(
                f"{what} needs a CUDA GPU and none is available; on CPU use --strategy ddp and "
                "precision bf16-true or 32-true"
            )
    check_base_dir(cfg.base)
    data = Path(cfg.data.dir)
    if not data.is_dir():
        raise TwinError(f"{data}: data directory not found; run `twin prepare` first (or pass --data DIR)")
    train_file = data / cfg.data.train_file
    if not train_file.is_file():
        raise TwinError(f"{train_file}: not found; run `twin prepare` first (or pass --data DIR)")
    if train_file.stat().st_size == 0:
        raise TwinError(f"{train_file}: empty, no examples to train on; check `twin prepare`'s summary")


# --------------------------------------------------------------------------------------------
# Entry point: setup (Fabric) -> main (load) -> fit (the loop) -> save


def train(cfg: TrainConfig, *, resume: bool = False) -> dict:
    """Fine-tune ``cfg.base`` on ``cfg.data.dir``; returns the final metrics (also in twin.json).

    With ``devices > 1`` Fabric spawns that many processes (gloo on CPU, NCCL on GPUs) and the
    call returns rank 0's metrics; this works the same from the CLI, a test or a notebook.
    """
    preflight(cfg)
    precision = resolve_precision(cfg)
    cfg = cfg.model_copy(update={"precision": precision["precision"]})
    if resume:
        check_resume(cfg, run_dir(cfg) / STATE_FILE)
    return setup(cfg).launch(main, cfg, resume, precision)


def resolve_precision(cfg: TrainConfig) -> dict:
    """``precision: auto`` -> what suits this machine (``model/precision.py``); logged, and kept for twin.json."""
    if cfg.precision != "auto":
        return {"precision": cfg.precision, "reason": "set in the config"}
    from twin.model.precision import choose_precision

    choice = choose_precision(cfg.base, cfg.accelerator, cfg.devices)
    (log.warning if choice.slow else log.info)("precision auto -> %s: %s", choice.precision, choice.reason)
    return {"precision": choice.precision, "reason": f"auto: {choice.reason}"}


def setup(cfg: TrainConfig) -> Any:
    """The Fabric that runs ``main`` on every device."""
    from twin.imports import import_fabric

    Fabric = import_fabric()  # noqa: N806  # without lightning's unused extras (twin/imports.py)
    return Fabric(
        accelerator=cfg.accelerator, devices=cfg.devices, strategy=_strategy(cfg), precision=cfg.precision
    )


def _strategy(cfg: TrainConfig) -> Any:
    if cfg.devices == 1 and cfg.strategy != "fsdp":
        return "auto"
    if cfg.strategy == "fsdp":
        import functools

        from lightning.fabric.strategies import FSDPStrategy
        from torch.distributed.fsdp.wrap import lambda_auto_wrap_policy

        blocks = _decoder_blocks(cfg.base)  # shard per decoder block: the model's `_no_split_modules`
        policy = functools.partial(lambda_auto_wrap_policy, lambda_fn=lambda m: type(m).__name__ in blocks)
        return FSDPStrategy(auto_wrap_policy=policy, state_dict_type="full", use_orig_params=True)
    from lightning.fabric.strategies import DDPStrategy

    # Spawned workers (not re-executed scripts) so `train()` behaves the same from any caller.
    return DDPStrategy(start_method="spawn")


def _decoder_blocks(base: str) -> set[str]:
    """Class names of the base's decoder blocks, read from its model class without loading weights."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    model_class = MODEL_FOR_CAUSAL_LM_MAPPING[type(AutoConfig.from_pretrained(base))]
    return set(getattr(model_class, "_no_split_modules", None) or [])


@dataclass
class TrainData:
    """The tokenizer, the prompt template and every example, tokenized once."""

    tokenizer: Any
    template: str
    train: Any  # twin.examples.Encoded
    val: Any  # Encoded, or None when prepare wrote no validation examples
    digest: str  # of train.jsonl: a resumed run must see the same data
    budget: Any  # twin.examples.PromptBudget: what every prompt was fitted to


@dataclass
class Model:
    peft: Any  # the PeftModel: what the adapter is saved from
    module: Any  # the loss module, set up by Fabric: what the loop calls
    optimizer: Any
    scheduler: Any
    trainable: set[str]  # parameter names a checkpoint keeps (the frozen base is not saved)
    best: dict | None = None  # CPU copies of the trainable weights at the best val loss so far


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


def main(fabric: Any, cfg: TrainConfig, resume: bool, precision: dict | None = None) -> dict:
    """One process's run: data, model, (resume), the loop, the adapter. Returns the final metrics."""
    import torch

    torch.set_num_threads(cfg.num_threads or max(1, (os.cpu_count() or 1) // max(1, fabric.world_size)))
    data = load_data(cfg)
    plan = BatchPlan(data.train.lengths, cfg, fabric.world_size)
    steps = plan_steps(cfg, len(data.train), plan.per_epoch)
    total_steps = steps.steps
    if fabric.is_global_zero:
        _log_plan(cfg, data, plan, steps, fabric.world_size)
    fabric.seed_everything(cfg.seed, verbose=False)
    model = load_model(fabric, cfg, total_steps)
    data_id = data_identity(cfg, data.digest)
    progress = restore(fabric, cfg, model, total_steps) if resume else Progress()
    if fabric.is_global_zero:
        run_dir(cfg).mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir(cfg) / "config.yaml", config_yaml(cfg))
    val_loss = fit(fabric, cfg, model, data, plan, progress, steps, data_id)
    if data.val is not None and val_loss is None:  # resumed a finished run: report, don't retrain
        val_loss = validate(fabric, model.module, data.val, data.tokenizer.pad_token_id, cfg)
    save_checkpoint(fabric, cfg, model, progress, data_id)  # the last step: what --resume continues
    kept = keep_best(fabric, cfg, model, progress, val_loss)
    metrics = final_metrics(model.peft, data, plan, progress, kept) | {"plan": steps.record()}
    save(fabric, cfg, model, data, metrics, precision)
    return metrics


def load_data(cfg: TrainConfig) -> TrainData:
    from twin.model.load import load_tokenizer
    from twin.prompt import CHAT_TEMPLATES, check_chat_template, resolve_template, with_memory
    from twin.train.data import file_digest, read_with_memory

    data_dir = Path(cfg.data.dir)
    tokenizer = load_tokenizer(cfg.base)
    template = with_memory(resolve_template(cfg.data.template, tokenizer), cfg.data.memory)
    if template in CHAT_TEMPLATES:  # a template twin cannot split stops here, not as a mis-masked run
        check_chat_template(tokenizer)
    train_file = data_dir / cfg.data.train_file
    rows = read_with_memory(train_file, data_dir, cfg.data.memory, cfg.data.train_file, cfg.data.memory_scope)
    budget = prompt_budget(cfg)
    return TrainData(
        tokenizer=tokenizer,
        template=template,
        train=_encode(rows, train_file, tokenizer, template, cfg),
        val=_read_val(data_dir / cfg.data.val_file, tokenizer, template, cfg),
        digest=file_digest(train_file),
        budget=budget,
    )


def prompt_budget(cfg: TrainConfig) -> Any:
    """The run's :class:`twin.examples.PromptBudget` (tokens of ``cfg.base``), from ``data:``."""
    from twin.examples import PromptBudget

    return PromptBudget(seq_tokens=cfg.data.max_seq_length, reply_tokens=cfg.data.reply_tokens)


@dataclass(frozen=True)
class StepPlan:
    """How many optimizer steps the run takes, and why (logged, and recorded in twin.json)."""

    steps: int
    steps_per_epoch: float
    eval_every: int  # validate every this many steps (and at the last one); 0: only at the end
    reason: str

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
    if cfg.max_steps:
        steps = cfg.max_steps
        reason = (
            f"{n_examples} examples, max_steps {steps} set -> {steps} steps ({steps / per_epoch:.1f} epochs)"
        )
    else:
        wanted = max(1, math.ceil(cfg.epochs * micro_per_epoch / cfg.grad_accum_steps))
        steps = min(wanted, cfg.step_cap) if cfg.step_cap else wanted
        cap = f" (cap {cfg.step_cap})" if cfg.step_cap else ""
        reason = f"{n_examples} examples, {cfg.epochs} epochs -> {steps} steps{cap}"
        if steps < wanted:
            reason += f": capped from {wanted}, {steps / per_epoch:.2f} epochs"
    every = cfg.eval.every_steps
    eval_every = math.ceil(steps / 10) if every == "auto" else int(every)
    return StepPlan(steps, per_epoch, eval_every, reason)


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


def _log_plan(cfg: TrainConfig, data: TrainData, plan: BatchPlan, steps: StepPlan, world: int) -> None:
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


def load_model(fabric: Any, cfg: TrainConfig, total_steps: int, init_adapter: Path | None = None) -> Model:
    """The base, peft LoRA on top, the loss module, AdamW and the LR schedule, set up by Fabric.

    ``init_adapter``: continue that trained adapter (the preference stage) instead of a fresh LoRA.
    """
    import torch

    from twin.model.load import load_base
    from twin.model.lora import apply_lora, param_groups
    from twin.train.schedules import build_scheduler

    dtype = _PRECISION_DTYPE.get(cfg.precision, "float32")
    model, _ = load_base(cfg.base, dtype=dtype, quantize=cfg.quantize)
    model.config.use_cache = False
    if cfg.quantize:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    if cfg.gradient_checkpointing:
        kwargs = {"use_reentrant": False}  # non-reentrant: works with frozen inputs and DDP
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    peft_model = apply_lora(model, cfg.lora) if init_adapter is None else _trainable(model, init_adapter)
    module = _make_loss_module(peft_model)
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW(
        param_groups(peft_model, cfg.optim.lr, cfg.optim.weight_decay, cfg.lora.loraplus_lr_ratio),
        lr=cfg.optim.lr,
        betas=cfg.optim.betas,
        eps=cfg.optim.eps,
    )
    module, optimizer = fabric.setup(module, optimizer, move_to_device=not cfg.quantize)
    scheduler = build_scheduler(cfg.schedule, optimizer, total_steps)
    return Model(peft_model, module, optimizer, scheduler, trainable)


def _trainable(model: Any, adapter: Path) -> Any:
    """A saved adapter loaded for further training (its LoRA weights require grad)."""
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, str(adapter), is_trainable=True)
    except (OSError, ValueError) as e:
        raise TwinError(f"{adapter}: could not load the adapter ({str(e).splitlines()[0]})") from None


# --------------------------------------------------------------------------------------------
# Checkpoints: everything needed to continue exactly, written atomically


def save_checkpoint(fabric: Any, cfg: TrainConfig, model: Model, progress: Progress, data_id: dict) -> None:
    """Write beside, then rename over the previous checkpoint (and refresh metrics.csv).

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
        write_metrics(rdir, progress.rows)
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


# --------------------------------------------------------------------------------------------
# The loop


class Window:
    """Loss, steps, real tokens and training seconds since the last logged step."""

    def __init__(self, device: Any) -> None:
        import torch

        self.loss = torch.zeros((), dtype=torch.float64, device=device)
        self.steps, self.tokens, self.start = 0, 0, time.perf_counter()

    def add(self, loss: Any, tokens: int) -> None:
        self.loss += loss
        self.steps += 1
        self.tokens += tokens

    def reset(self) -> None:
        self.loss.zero_()
        self.steps, self.tokens, self.start = 0, 0, time.perf_counter()


def fit(
    fabric: Any,
    cfg: TrainConfig,
    model: Model,
    data: TrainData,
    plan: BatchPlan,
    progress: Progress,
    steps: StepPlan,
    data_id: dict,
) -> float | None:
    """The optimizer steps, with logging, validation and checkpoints; returns the last val loss."""
    from tqdm.auto import tqdm

    total_steps = steps.steps
    val_loss = None
    window = Window(fabric.device)
    run_start, last_csv = time.perf_counter() - progress.elapsed, time.perf_counter()
    tb = _tensorboard(run_dir(cfg)) if fabric.is_global_zero else None
    bar = tqdm(total=total_steps, initial=progress.step, desc=f"train {cfg.run}", unit="step",
               disable=not fabric.is_global_zero, dynamic_ncols=True, mininterval=1.0)  # fmt: skip
    model.module.train()
    first_step = progress.step + 1
    with bar:
        while progress.step < total_steps and not progress.stopped_early:
            loss, tokens = train_step(fabric, cfg, model, data, plan, progress)
            window.add(loss, tokens)
            progress.step += 1
            if progress.step == first_step and fabric.is_global_zero:
                _log_first_step()
            bar.update(1)
            step = progress.step
            if step % cfg.log_every_steps == 0 or step == total_steps:
                row = log_step(fabric, cfg, model, plan, progress, window, run_start)
                bar.set_postfix(loss=f"{row['train_loss']:.3f}", tok_s=f"{row['tokens_per_s']:,.0f}")
                _tb_log(tb, row)
                window.reset()
            paused = time.perf_counter()  # validation and checkpoints are not training throughput
            if data.val is not None and (
                step == total_steps or (steps.eval_every and step % steps.eval_every == 0)
            ):
                val_loss = validate(fabric, model.module, data.val, data.tokenizer.pad_token_id, cfg)
                _tb_log(tb, _record_val(fabric, progress, val_loss, bar))
                track_best(fabric, cfg, model, progress, val_loss, bar)
            progress.elapsed = time.perf_counter() - run_start
            if progress.stopped_early:
                break  # main() writes the final checkpoint
            if cfg.checkpoint_every_steps and step % cfg.checkpoint_every_steps == 0 and step < total_steps:
                save_checkpoint(fabric, cfg, model, progress, data_id)
            elif fabric.is_global_zero and time.perf_counter() - last_csv > 10:  # fresh for watchers
                write_metrics(run_dir(cfg), progress.rows)
                last_csv = time.perf_counter()
            window.start += time.perf_counter() - paused
    return val_loss


def track_best(
    fabric: Any, cfg: TrainConfig, model: Model, progress: Progress, val_loss: float, bar: Any
) -> None:
    """A new lowest val loss: remember its step and (``eval.keep_best``) a copy of its weights.
    ``eval.patience`` validations in a row without one stop the run. Every process decides the
    same (the val loss is all-reduced), and each copies its own weights."""
    if progress.best_val_loss is None or val_loss < progress.best_val_loss:
        progress.best_step, progress.best_val_loss, progress.evals_since_best = progress.step, val_loss, 0
        if _keeps_best(cfg):
            model.best = _trainable_copy(model.peft)
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


def _trainable_copy(peft_model: Any) -> dict:
    return {n: p.detach().to("cpu", copy=True) for n, p in peft_model.named_parameters() if p.requires_grad}


def keep_best(
    fabric: Any, cfg: TrainConfig, model: Model, progress: Progress, last_val: float | None
) -> dict:
    """Put the best step's weights back (after the last step's checkpoint is written) and say which
    adapter is kept: ``{"kept", "step", "val_loss", "last_val_loss", "best_step", "stopped_early"}``."""
    import torch

    out = {"kept": "last", "step": progress.step, "val_loss": last_val, "last_val_loss": last_val,
           "best_step": progress.best_step, "best_val_loss": progress.best_val_loss,
           "stopped_early": progress.stopped_early}  # fmt: skip
    if progress.best_step is None or progress.best_step == progress.step or model.best is None:
        if fabric.is_global_zero and cfg.eval.keep_best and cfg.strategy == "fsdp":
            log.warning(
                "strategy fsdp: the adapter is the last step's (best-step selection needs ddp or 1 device)"
            )
        if fabric.is_global_zero and progress.best_step is not None:
            log.info("best val loss %.4f at the last step %d, kept", progress.best_val_loss, progress.step)
        return out
    with torch.no_grad():
        params = dict(model.peft.named_parameters())
        for name, value in model.best.items():
            params[name].copy_(value.to(params[name].device))
    if fabric.is_global_zero:
        log.info(
            "best val loss %.4f at step %d, kept (the last step %d had %s)",
            progress.best_val_loss, progress.best_step, progress.step,
            f"{last_val:.4f}" if last_val is not None else "no validation",
        )  # fmt: skip
    return out | {"kept": "best", "step": progress.best_step, "val_loss": progress.best_val_loss}


def train_step(
    fabric: Any, cfg: TrainConfig, model: Model, data: TrainData, plan: BatchPlan, progress: Progress
) -> tuple[Any, int]:
    """One optimizer step over ``grad_accum_steps`` micro-batches on every process.

    The loss is normalised by the reply tokens of the whole step on all processes, so every reply
    token weighs the same however the step is split. That count comes from the batch plan, which
    every process holds whole (no communication). Returns this process's share of the step's mean
    loss and the real (non-pad) tokens of all processes.
    """
    accum, world = cfg.grad_accum_steps, fabric.world_size
    step_batches = [[plan.micro_batch(progress.micro + k, r) for r in range(world)] for k in range(accum)]
    progress.micro += accum
    n_targets = max(
        1, sum(examples.count_targets(data.train, b) for per_rank in step_batches for b in per_rank)
    )
    tokens = sum(plan.lengths[i] for per_rank in step_batches for b in per_rank for i in b)
    step_loss = 0.0
    for k, per_rank in enumerate(step_batches):
        batch = batch_to(
            examples.collate(data.train, per_rank[fabric.global_rank], data.tokenizer.pad_token_id),
            fabric.device,
        )
        with fabric.no_backward_sync(model.module, enabled=k < accum - 1):
            loss = model.module(**batch) / n_targets
            fabric.backward(loss * world)  # DDP/FSDP average gradients over processes: make it a sum
        step_loss += loss.detach()
    optimizer_step(fabric, cfg, model)
    return step_loss, tokens


def optimizer_step(fabric: Any, cfg: TrainConfig, model: Model) -> None:
    """Clip (when ``optim.max_grad_norm``), step, zero the gradients, advance the LR schedule."""
    if cfg.optim.max_grad_norm:
        fabric.clip_gradients(
            model.module, model.optimizer, max_norm=cfg.optim.max_grad_norm, error_if_nonfinite=False
        )
    model.optimizer.step()
    model.optimizer.zero_grad(set_to_none=True)
    model.scheduler.step()


def _log_first_step() -> None:
    """How long the user waited for training to start (goal: seconds; bench/RESULTS.md#compare-train)."""
    from twin.logs import process_age

    log.info("first optimizer step at %.1f s (CPU %.1f s)", process_age(), time.process_time())


def log_step(
    fabric: Any,
    cfg: TrainConfig,
    model: Model,
    plan: BatchPlan,
    progress: Progress,
    window: Window,
    run_start: float,
) -> dict:
    """A metrics row for the window (the loop's only host sync); a NaN/inf loss stops the run.

    The loss is the mean over the reply tokens of all processes (each holds its share of it).
    """
    total = fabric.all_reduce(window.loss, reduce_op="sum") if fabric.world_size > 1 else window.loss
    mean_loss = float(total) / window.steps
    if not math.isfinite(mean_loss):
        raise TwinError(
            f"training loss became {mean_loss} at step {progress.step}; lower optim.lr (now "
            f"{cfg.optim.lr}) or use precision 32-true. The last checkpoint in {run_dir(cfg)} is kept."
        )
    now = time.perf_counter()
    progress.train_seconds += now - window.start
    progress.tokens += window.tokens
    tok_s = window.tokens / max(now - window.start, 1e-9)
    row = dict.fromkeys(METRIC_FIELDS) | {
        "step": progress.step,
        "epoch": round(progress.micro / plan.per_epoch, 4),
        "train_loss": round(mean_loss, 6),
        "lr": model.scheduler.get_last_lr()[0],
        "tokens_per_s": round(tok_s, 1),
        "elapsed_s": round(now - run_start, 2),
    }
    progress.rows.append(row)
    return row


def _record_val(fabric: Any, progress: Progress, val_loss: float, bar: Any) -> dict:
    val_ppl = math.exp(min(val_loss, 50.0))
    rows = progress.rows
    if not rows or rows[-1]["step"] != progress.step:
        rows.append(dict.fromkeys(METRIC_FIELDS) | {"step": progress.step})
    rows[-1].update(val_loss=round(val_loss, 6), val_ppl=round(val_ppl, 4))
    if fabric.is_global_zero:
        bar.write(f"step {progress.step}: val loss {val_loss:.4f}, perplexity {val_ppl:.2f}")
    return {"step": progress.step, "val_loss": val_loss, "val_ppl": val_ppl}


def _tb_log(tb: Any, row: dict) -> None:
    if tb:
        tb.log_metrics({k: v for k, v in row.items() if v is not None and k != "step"}, row["step"])


def validate(fabric: Any, module: Any, data: Any, pad_id: int, cfg: TrainConfig) -> float:
    """Mean response-token loss over the val set, sharded over processes and summed."""
    import torch

    from twin.train.data import make_batches

    mbs = cfg.eval.micro_batch_size or cfg.micro_batch_size
    batches = make_batches(data.lengths, mbs, seed=0, epoch=0, group_by_length=True, pool=10**6)
    if cfg.eval.max_batches:
        batches = batches[: cfg.eval.max_batches]
    mine = batches[fabric.global_rank :: fabric.world_size]
    total = torch.zeros(2, dtype=torch.float64, device=fabric.device)
    module.eval()
    with torch.no_grad():
        for b in mine:
            batch = batch_to(examples.collate(data, b, pad_id), fabric.device)
            total[0] += module(**batch).double()
            total[1] += examples.count_targets(data, b)
    module.train()
    if fabric.world_size > 1:
        total = fabric.all_reduce(total, reduce_op="sum")
    return float(total[0] / total[1].clamp(min=1))


# --------------------------------------------------------------------------------------------
# The loss: response tokens only, LM head only where there is a label


def _make_loss_module(peft_model: Any) -> Any:
    import torch
    import torch.nn.functional as F

    lm = peft_model.get_base_model()
    body = getattr(lm, "base_model", None)
    head = lm.get_output_embeddings()
    # Models that post-process logits (soft-capping, scaling) go through their full forward.
    fast = (
        body is not None
        and body is not lm
        and head is not None
        and not getattr(lm.config, "final_logit_softcapping", None)
        and getattr(lm.config, "logit_scale", None) in (None, 1, 1.0)
    )

    class ResponseLoss(torch.nn.Module):
        """Summed next-token cross-entropy over positions whose label is not -100.

        Only those positions (the reply and its EOS) go through the LM head: on chat data most
        tokens are prompt, so this skips most of the head's matmul and softmax.
        """

        def __init__(self) -> None:
            super().__init__()
            self.peft_model = peft_model

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            labels: torch.Tensor,
            per_row: bool = False,
        ) -> Any:
            """The summed loss, or with ``per_row`` each row's own sum (minus its log-probability)."""
            targets = labels[:, 1:]
            keep = targets != -100
            if fast:
                hidden = body(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)[0]
                logits = head(hidden[:, :-1][keep])
            else:
                out = self.peft_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
                logits = out.logits[:, :-1][keep]
            if not per_row:
                return F.cross_entropy(logits.float(), targets[keep], reduction="sum")
            losses = F.cross_entropy(logits.float(), targets[keep], reduction="none")
            rows = keep.nonzero()[:, 0]  # boolean indexing is row-major: rows line up with `losses`
            return losses.new_zeros(len(input_ids)).index_add(0, rows, losses)

    return ResponseLoss()


# --------------------------------------------------------------------------------------------
# Helpers


def batch_to(batch: dict, device: Any) -> dict:
    if str(device) == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _read_val(path: Path, tokenizer: Any, template: str, cfg: TrainConfig) -> Any:
    """The validation set, or None (with a warning) when prepare wrote none."""
    from twin.train.data import read_with_memory

    if not path.is_file() or path.stat().st_size == 0 or not path.read_text(encoding="utf-8").strip():
        log.warning("%s: no validation examples; validation loss will not be reported", path)
        return None
    rows = read_with_memory(path, cfg.data.dir, cfg.data.memory, cfg.data.train_file, cfg.data.memory_scope)
    return _encode(rows, path, tokenizer, template, cfg)


def _encode(rows: list[dict], path: Path, tokenizer: Any, template: str, cfg: TrainConfig) -> Any:
    """Tokenized examples, every prompt fitted to the prompt budget (``data.max_seq_length`` minus
    ``data.reply_tokens``): cached beside the data (``train/data.py``) unless memory makes them per-run."""
    from twin.train.data import encode_cached, encode_in_chunks

    max_len, reply = cfg.data.max_seq_length, cfg.data.reply_tokens
    if cfg.data.memory:  # retrieved exchanges depend on the memory index too: encoded each run
        return encode_in_chunks(
            rows, tokenizer, template, max_len, desc=f"tokenizing {path.name}", reply_tokens=reply
        )
    return encode_cached(rows, path, cfg.base, tokenizer, template, max_len, reply_tokens=reply)


def _tensorboard(rdir: Path) -> Any:
    import importlib.util

    if not (importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX")):
        return None
    from lightning.fabric.loggers import TensorBoardLogger

    return TensorBoardLogger(root_dir=str(rdir), name="tensorboard", version="")
