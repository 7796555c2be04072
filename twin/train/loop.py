"""The LoRA fine-tune: Lightning Fabric used directly, the whole loop readable top to bottom here.

    twin train --config pipelines/tiny.yaml --run demo

Order of work, so that mistakes cost seconds, not minutes:
  1. preflight (no torch): config, quantization vs hardware, base dir, data files;
  2. Fabric launch (one process, or N processes for ``--devices N --strategy ddp``);
  3. tokenizer, prompt template, every example tokenized once and fitted to the prompt budget
     (a too-small max length fails here); the step plan chosen from the data (``plan.py``);
  4. the base model, peft LoRA on top, the loss (``loss.py``), AdamW, the LR schedule; resume
     state if asked (``checkpoints.py``);
  5. the loop: length-grouped micro-batches, gradient accumulation, clipping, validation (the
     best step's weights kept, optional early stop; one sample reply, ``sample.py``), metrics.csv,
     atomic checkpoints; a NaN/inf loss stops the run;
  6. the adapter of the best val loss (PEFT format) + tokenizer + twin.json in
     ``checkpoints/adapters/<run>/`` (``artifacts.py``, which also writes metrics.csv and config.yaml).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twin import examples
from twin.errors import TwinError
from twin.fileio import atomic_write_text
from twin.imports import gc_paused, import_modeling, resume_gc
from twin.train import encode_ahead
from twin.train.artifacts import METRIC_FIELDS, config_yaml, final_metrics, save, write_metrics
from twin.train.checkpoints import STATE_FILE, Progress, keep_best, restore, save_state, track_best
from twin.train.config import TrainConfig, run_dir
from twin.train.launch import preflight, resolve_precision, setup
from twin.train.loss import make_loss_module
from twin.train.plan import BatchPlan, StepPlan, log_plan, longer_run_hint, plan_steps
from twin.train.resume import check_resume, data_identity
from twin.train.sample import sample_prompt, sample_reply, shown

log = logging.getLogger(__name__)

_PRECISION_DTYPE = {"bf16-true": "bfloat16", "16-true": "float16"}  # the rest load in float32


# --------------------------------------------------------------------------------------------
# Entry point: setup (Fabric) -> main (load) -> fit (the loop) -> save


def train(cfg: TrainConfig, *, resume: bool = False) -> dict:
    """Fine-tune ``cfg.base`` on ``cfg.data.dir``; returns the final metrics (also in twin.json).

    With ``devices > 1`` Fabric spawns that many processes (gloo on CPU, NCCL on GPUs) and the
    call returns rank 0's metrics; this works the same from the CLI, a test or a notebook.
    """
    preflight(cfg)
    encode_ahead.start(cfg)  # new data: tokenized in a second process while torch imports
    try:
        with gc_paused():  # until the first optimizer step (twin/imports.py); `auto` imports torch here
            precision = resolve_precision(cfg)
            cfg = cfg.model_copy(update={"precision": precision["precision"]})
            if resume:
                check_resume(cfg, run_dir(cfg) / STATE_FILE)
            return setup(cfg).launch(main, cfg, resume, precision)
    finally:
        encode_ahead.stop()


@dataclass
class TrainData:
    """The tokenizer, the prompt template and every example, tokenized once."""

    tokenizer: Any
    template: str
    train: Any  # twin.examples.Encoded
    val: Any  # Encoded, or None when prepare wrote no validation examples
    digest: str  # of train.jsonl: a resumed run must see the same data
    budget: Any  # twin.examples.PromptBudget: what every prompt was fitted to
    sample: dict | None = None  # the val example each validation writes a reply to (twin/train/sample.py)


@dataclass
class Model:
    peft: Any  # the PeftModel: what the adapter is saved from
    module: Any  # the loss module, set up by Fabric: what the loop calls
    optimizer: Any
    scheduler: Any
    trainable: set[str]  # parameter names a checkpoint keeps (the frozen base is not saved)
    best: dict | None = None  # CPU copies of the trainable weights at the best val loss so far


def main(fabric: Any, cfg: TrainConfig, resume: bool, precision: dict | None = None) -> dict:
    """One process's run: data, model, (resume), the loop, the adapter. Returns the final metrics."""
    import torch

    torch.set_num_threads(cfg.num_threads or max(1, (os.cpu_count() or 1) // max(1, fabric.world_size)))
    data = load_data(cfg)
    plan = BatchPlan(data.train.lengths, cfg, fabric.world_size)
    steps = plan_steps(cfg, len(data.train), plan.per_epoch)
    total_steps = steps.steps
    if fabric.is_global_zero:
        log_plan(cfg, data, plan, steps, fabric.world_size)
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
    val_losses = [(row["step"], row["val_loss"]) for row in progress.rows if row.get("val_loss") is not None]
    if fabric.is_global_zero and (hint := longer_run_hint(steps, kept, val_losses, progress.elapsed)):
        log.info(hint)
    metrics = final_metrics(model.peft, data, plan, progress, kept) | {"plan": steps.record()}
    save(fabric, cfg, model, data, metrics, precision)
    return metrics


def load_data(cfg: TrainConfig) -> TrainData:
    from twin.model.load import load_tokenizer
    from twin.prompt import CHAT_TEMPLATES, check_chat_template, resolve_template, with_memory
    from twin.train.data import encode_split, file_digest, read_val, read_with_memory
    from twin.train.sample import wants_sample

    data_dir = Path(cfg.data.dir)
    tokenizer = load_tokenizer(cfg.base)
    template = with_memory(resolve_template(cfg.data.template, tokenizer), cfg.data.memory)
    if template in CHAT_TEMPLATES:  # a template twin cannot split stops here, not as a mis-masked run
        check_chat_template(tokenizer)
    train_file = data_dir / cfg.data.train_file
    rows = read_with_memory(train_file, data_dir, cfg.data.memory, cfg.data.train_file, cfg.data.memory_scope)
    val_file = data_dir / cfg.data.val_file
    val_rows = read_val(val_file, cfg)
    if encode_ahead.running():  # a helper is tokenizing this data (encode_ahead.py): overlap its end
        import_modeling()  # with the model's imports, which load_model needs next
    encode_ahead.wait()  # then its cache, not a second encoding
    return TrainData(
        tokenizer=tokenizer,
        template=template,
        train=encode_split(rows, train_file, tokenizer, template, cfg),
        val=encode_split(val_rows, val_file, tokenizer, template, cfg) if val_rows else None,
        digest=file_digest(train_file),
        budget=prompt_budget(cfg),
        sample=val_rows[0] if val_rows and wants_sample(cfg) else None,
    )


def prompt_budget(cfg: TrainConfig) -> Any:
    """The run's :class:`twin.examples.PromptBudget` (tokens of ``cfg.base``), from ``data:``."""
    from twin.examples import PromptBudget

    return PromptBudget(seq_tokens=cfg.data.max_seq_length, reply_tokens=cfg.data.reply_tokens)


def load_model(
    fabric: Any, cfg: TrainConfig, total_steps: int, init_adapter: Path | None = None, train_rows: bool = True
) -> Model:
    """The base, peft LoRA on top, the loss module, AdamW and the LR schedule, set up by Fabric.

    ``init_adapter``: continue that trained adapter (the preference stage) instead of a fresh LoRA;
    ``train_rows`` False keeps its embedding rows (peft trainable tokens) frozen, only LoRA moves.
    """
    import torch

    import_modeling()  # before load_base imports it: without scipy (twin/imports.py)
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
    peft_model = (
        apply_lora(model, cfg.lora) if init_adapter is None else _trainable(model, init_adapter, train_rows)
    )
    module = make_loss_module(peft_model)
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


def _trainable(model: Any, adapter: Path, train_rows: bool = True) -> Any:
    """A saved adapter loaded for further training (its LoRA weights, and its embedding rows unless
    ``train_rows`` is False, require grad)."""
    from peft import PeftModel

    try:
        peft_model = PeftModel.from_pretrained(model, str(adapter), is_trainable=True)
    except (OSError, ValueError) as e:
        raise TwinError(f"{adapter}: could not load the adapter ({str(e).splitlines()[0]})") from None
    if not train_rows:
        for name, p in peft_model.named_parameters():
            if "trainable_tokens_" in name:
                p.requires_grad_(False)
    return peft_model


def save_checkpoint(fabric: Any, cfg: TrainConfig, model: Model, progress: Progress, data_id: dict) -> None:
    """The checkpoint (``twin/train/checkpoints.py``), then metrics.csv refreshed beside it."""
    save_state(fabric, cfg, model, progress, data_id)
    if fabric.is_global_zero:
        write_metrics(run_dir(cfg), progress.rows)


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
    sample = _sample(fabric, cfg, model, data, bar)
    model.module.train()
    first_step = progress.step + 1
    with bar:
        while progress.step < total_steps and not progress.stopped_early:
            loss, tokens = train_step(fabric, cfg, model, data, plan, progress)
            window.add(loss, tokens)
            progress.step += 1
            if progress.step == first_step:
                resume_gc()
                if fabric.is_global_zero:
                    _log_first_step(bar)
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
                val_loss = validate_now(fabric, cfg, model, data, progress, bar, tb, sample)
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


def validate_now(fabric: Any, cfg: TrainConfig, model: Model, data: TrainData, progress: Progress,
                 bar: Any, tb: Any, sample: Any) -> float:  # fmt: skip
    """The val loss at this step (and the base's, the first time), recorded; the best adapter kept;
    the sample reply, when one is asked for."""
    with saying(bar, "validating"):
        val_loss = validate(fabric, model.module, data.val, data.tokenizer.pad_token_id, cfg)
        if progress.base_val_loss is None:
            progress.base_val_loss = _base_val_loss(fabric, cfg, model, data, bar)
    _tb_log(tb, _record_val(fabric, progress, val_loss, bar))
    track_best(fabric, cfg, model, progress, val_loss, bar)
    if sample is not None:
        _record_sample(progress, sample_reply(model.peft, data.tokenizer, sample), bar)
    return val_loss


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


@contextmanager
def saying(bar: Any, what: str) -> Iterator[None]:
    """The bar's postfix says ``what`` runs between two steps, then shows the step's figures again.

    A validation (20 batches, the first one twice: adapter on and off) left the bar still for 11 s
    on a busy 2-core machine, its last step's loss the only thing on the screen."""
    before = bar.postfix
    bar.set_postfix_str(what, refresh=True)
    try:
        yield
    finally:
        bar.set_postfix_str(before or "", refresh=False)


def _log_first_step(bar: Any) -> None:
    """How long the user waited for training to start (goal: seconds; bench/RESULTS.md#compare-train).

    Logged with the bar cleared first: otherwise the bar's next refresh writes over the line."""
    from twin.logs import since_start

    with bar.external_write_mode():
        log.info("first optimizer step at %.1f s (CPU %.1f s) since %s", *since_start())


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


def _sample(fabric: Any, cfg: TrainConfig, model: Model, data: TrainData, bar: Any) -> Any:
    """Rank 0's :class:`~twin.train.sample.Sample` (None: off, no val data, or another rank)."""
    if data.sample is None or not fabric.is_global_zero:
        return None
    sample = sample_prompt(
        model.peft, data.tokenizer, data.sample, data.template, data.budget.prompt_tokens, cfg
    )
    if sample is not None:
        bar.write(f"each validation's sample reply answers: {shown(data.sample['instruction'])}")
    return sample


def _record_sample(progress: Progress, reply: str, bar: Any) -> None:
    """The reply goes to the terminal and metrics.csv (the run dir), never to the logger."""
    progress.rows[-1]["sample_reply"] = reply
    bar.write(f"step {progress.step}: sample reply {shown(reply)}")


def _tb_log(tb: Any, row: dict) -> None:
    if tb:
        numbers = {k: v for k, v in row.items() if isinstance(v, int | float) and k != "step"}
        tb.log_metrics(numbers, row["step"])


def _base_val_loss(fabric: Any, cfg: TrainConfig, model: Model, data: TrainData, bar: Any) -> float:
    """The base's own val loss (the adapter switched off): the bar the kept adapter must clear."""
    with model.peft.disable_adapter():
        loss = validate(fabric, model.module, data.val, data.tokenizer.pad_token_id, cfg)
    if fabric.is_global_zero:
        bar.write(f"the base's own val loss (adapter off): {loss:.4f}")
    return loss


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
# Outputs


# --------------------------------------------------------------------------------------------
# Helpers


def batch_to(batch: dict, device: Any) -> dict:
    if str(device) == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _tensorboard(rdir: Path) -> Any:
    import importlib.util

    if not (importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX")):
        return None
    from lightning.fabric.loggers import TensorBoardLogger

    return TensorBoardLogger(root_dir=str(rdir), name="tensorboard", version="")
