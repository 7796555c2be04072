"""The LoRA fine-tune: Lightning Fabric used directly, the whole loop readable in this one file.

    twin train --config pipelines/tiny.yaml --run demo

Order of work, so that mistakes cost seconds, not minutes:
  1. preflight (no torch): config, quantization vs hardware, base dir, data files;
  2. Fabric launch (one process, or N processes for ``--devices N --strategy ddp``);
  3. tokenizer, prompt template, every example tokenized once (a too-small max length fails here);
  4. the base model, peft LoRA on top, AdamW, the LR schedule; resume state if asked;
  5. the loop: length-grouped micro-batches, gradient accumulation, clipping, validation,
     metrics.csv, atomic checkpoints; a NaN/inf loss stops the run;
  6. the adapter (PEFT format) + tokenizer + twin.json in ``checkpoints/adapters/<run>/``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import random
import re
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from twin.errors import TwinError
from twin.fileio import atomic_write_json, atomic_write_text
from twin.train.config import TrainConfig

log = logging.getLogger(__name__)

STATE_FILE = "state.ckpt"
METRIC_FIELDS = ("step", "epoch", "train_loss", "lr", "tokens_per_s", "val_loss", "val_ppl", "elapsed_s")
_PRECISION_DTYPE = {"bf16-true": "bfloat16", "16-true": "float16"}  # the rest load in float32
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


# --------------------------------------------------------------------------------------------
# Paths and preflight


def run_dir(cfg: TrainConfig) -> Path:
    return Path(cfg.out_dir) / "runs" / cfg.run


def adapter_dir(cfg: TrainConfig) -> Path:
    return Path(cfg.out_dir) / "adapters" / cfg.run


def preflight(cfg: TrainConfig) -> None:
    """Every cheap check, before torch is even imported: each failure is one clear line."""
    from twin.model.load import check_base_dir, check_quantize

    if not _RUN_NAME.match(cfg.run):
        raise TwinError(
            f"run name {cfg.run!r}: use letters, digits, '.', '_' or '-' (it becomes a directory)"
        )
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
# Entry point


def train(cfg: TrainConfig, *, resume: bool = False) -> dict:
    """Fine-tune ``cfg.base`` on ``cfg.data.dir``; returns the final metrics (also in twin.json).

    With ``devices > 1`` Fabric spawns that many processes (gloo on CPU, NCCL on GPUs) and the
    call returns rank 0's metrics; this works the same from the CLI, a test or a notebook.
    """
    preflight(cfg)
    from lightning.fabric import Fabric

    fabric = Fabric(
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=_strategy(cfg),
        precision=cfg.precision,
    )
    return fabric.launch(_fit, cfg, resume)


def _strategy(cfg: TrainConfig) -> Any:
    if cfg.devices == 1 and cfg.strategy != "fsdp":
        return "auto"
    if cfg.strategy == "fsdp":
        import functools

        from lightning.fabric.strategies import FSDPStrategy
        from torch.distributed.fsdp.wrap import lambda_auto_wrap_policy

        # Shard per decoder block (the model's own `_no_split_modules`), filled in once it's loaded.
        policy = functools.partial(lambda_auto_wrap_policy, lambda_fn=lambda m: type(m).__name__ in _NO_SPLIT)
        return FSDPStrategy(auto_wrap_policy=policy, state_dict_type="full", use_orig_params=True)
    from lightning.fabric.strategies import DDPStrategy

    # Spawned workers (not re-executed scripts) so `train()` behaves the same from any caller.
    return DDPStrategy(start_method="spawn")


_NO_SPLIT: set[str] = set()


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

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> Any:
            targets = labels[:, 1:]
            keep = targets != -100
            if fast:
                hidden = body(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)[0]
                logits = head(hidden[:, :-1][keep])
            else:
                out = self.peft_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
                logits = out.logits[:, :-1][keep]
            return F.cross_entropy(logits.float(), targets[keep], reduction="sum")

    return ResponseLoss()


# --------------------------------------------------------------------------------------------
# The run


def _fit(fabric: Any, cfg: TrainConfig, resume: bool) -> dict:
    import torch

    from twin.model.load import base_fingerprint, load_base, load_tokenizer, model_type
    from twin.model.lora import apply_lora, param_groups
    from twin.prompt import resolve_template, with_memory
    from twin.train.data import encode_examples, file_digest, make_batches, padding_fraction, read_with_memory
    from twin.train.schedules import build_scheduler

    cores = os.cpu_count() or 1
    torch.set_num_threads(cfg.num_threads or max(1, cores // max(1, fabric.world_size)))
    zero = fabric.is_global_zero
    rdir, adir = run_dir(cfg), adapter_dir(cfg)
    state_path = rdir / STATE_FILE

    # -- 3. data, tokenized once ------------------------------------------------------------
    data_dir = Path(cfg.data.dir)
    tokenizer = load_tokenizer(cfg.base)
    template = with_memory(resolve_template(cfg.data.template, tokenizer), cfg.data.memory)
    train_file = data_dir / cfg.data.train_file
    train_examples = read_with_memory(train_file, data_dir, cfg.data.memory, cfg.data.train_file)
    train_data = encode_examples(train_examples, tokenizer, template, cfg.data.max_seq_length)
    val_data = _read_val(data_dir / cfg.data.val_file, tokenizer, template, cfg)
    lengths = train_data.lengths
    world, rank = fabric.world_size, fabric.global_rank

    def epoch_batches(epoch: int) -> list[list[int]]:
        all_batches = make_batches(
            lengths,
            cfg.micro_batch_size,
            seed=cfg.seed,
            epoch=epoch,
            group_by_length=cfg.data.group_by_length,
            pool=cfg.data.length_pool,
            world_size=world,
        )
        return all_batches[rank::world]

    first = epoch_batches(0)
    per_epoch = len(first)  # micro-batches per epoch on this process
    accum = cfg.grad_accum_steps
    # Micro-batches run on across epoch boundaries, so `epochs` costs exactly that many passes
    # (rounded up to a whole optimizer step), whatever the accumulation.
    total_steps = cfg.max_steps or max(1, math.ceil(cfg.epochs * per_epoch / accum))
    all_first = make_batches(
        lengths, cfg.micro_batch_size, seed=cfg.seed, epoch=0,
        group_by_length=cfg.data.group_by_length, pool=cfg.data.length_pool,
    )  # fmt: skip
    pad_frac = padding_fraction(all_first, lengths)
    if zero:
        log.info(
            "%d train / %d val examples, template %s, %d optimizer steps of %d examples "
            "(micro-batch %d x %d accumulation x %d devices), padding %.1f%% of tokens",
            len(train_data),
            len(val_data) if val_data else 0,
            template,
            total_steps,
            cfg.batch_size,
            cfg.micro_batch_size,
            accum,
            world,
            100 * pad_frac,
        )

    # -- 4. model, adapters, optimizer, schedule ---------------------------------------------
    fabric.seed_everything(cfg.seed, verbose=False)
    model, _ = load_base(
        cfg.base, dtype=_PRECISION_DTYPE.get(cfg.precision, "float32"), quantize=cfg.quantize
    )
    _NO_SPLIT.update(getattr(model, "_no_split_modules", None) or [])
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
    peft_model = apply_lora(model, cfg.lora)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    total_params = sum(p.numel() for p in peft_model.parameters())
    module = _make_loss_module(peft_model)
    trainable_names = {n for n, p in module.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW(
        param_groups(peft_model, cfg.optim.lr, cfg.optim.weight_decay, cfg.lora.loraplus_lr_ratio),
        lr=cfg.optim.lr,
        betas=cfg.optim.betas,
        eps=cfg.optim.eps,
    )
    module, optimizer = fabric.setup(module, optimizer, move_to_device=not cfg.quantize)
    scheduler = build_scheduler(cfg.schedule, optimizer, total_steps)

    data_id = {"train": file_digest(train_file), "examples": len(train_data), "world": world}
    progress = {"step": 0, "micro": 0, "tokens": 0, "elapsed": 0.0, "train_seconds": 0.0}
    rows: list[dict] = []
    state: dict[str, Any] = {"model": module, "optimizer": optimizer, "scheduler": scheduler}
    if resume and state_path.exists():
        extra = fabric.load(state_path, state, strict=False)
        if extra["data"] != data_id:
            raise TwinError(
                f"{state_path}: the training data or device count changed since this checkpoint, so "
                "the run cannot continue exactly; start it again without --resume (or use a new --run)"
            )
        progress, rows = extra["progress"], extra["rows"]
        changed = _changed_keys(extra.get("config", {}), cfg.model_dump(mode="json"))
        if changed and zero:
            log.warning("resuming with changed settings: %s", ", ".join(changed))
        torch.set_rng_state(extra["rng"]["torch"])
        random.setstate(extra["rng"]["python"])
        if zero:
            log.info("resumed %s at step %d/%d", cfg.run, progress["step"], total_steps)
    elif resume and zero:
        log.warning("--resume: no checkpoint in %s yet, starting from step 0", rdir)

    def checkpoint() -> None:
        """Atomic: write beside, then rename over the previous checkpoint."""
        snapshot = {
            **state,
            "progress": dict(progress),
            "rows": rows,
            "data": data_id,
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
            "config": cfg.model_dump(mode="json"),
        }
        tmp = rdir / f".{STATE_FILE}.tmp"
        fabric.save(tmp, snapshot, filter={"model": lambda k, v: k in trainable_names})
        fabric.barrier()
        if zero:
            _replace_path(tmp, state_path)
            _write_metrics(rdir, rows)
        fabric.barrier()

    if zero:
        rdir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(rdir / "config.yaml", _yaml(cfg))
    tb = _tensorboard(rdir) if zero else None

    # -- 5. the loop ------------------------------------------------------------------------
    from tqdm.auto import tqdm

    epoch_cache: dict[int, list[list[int]]] = {0: first}

    def next_batch() -> list[int]:
        epoch, j = divmod(progress["micro"], per_epoch)
        if epoch not in epoch_cache:
            epoch_cache.clear()
            epoch_cache[epoch] = epoch_batches(epoch)
        progress["micro"] += 1
        return epoch_cache[epoch][j]

    val_loss = val_ppl = None
    window_loss = torch.zeros((), dtype=torch.float64, device=fabric.device)
    window_steps, window_tokens, window_start = 0, 0, time.perf_counter()
    run_start = time.perf_counter() - progress["elapsed"]
    last_csv = time.perf_counter()
    bar = tqdm(
        total=total_steps,
        initial=progress["step"],
        desc=f"train {cfg.run}",
        unit="step",
        disable=not zero,
        dynamic_ncols=True,
        mininterval=1.0,
    )
    module.train()
    while progress["step"] < total_steps:
        batches = [next_batch() for _ in range(accum)]
        # Normalise by the reply tokens of the whole optimizer step (known up front: no sync), so
        # every reply token weighs the same however the step is split into micro-batches.
        n_targets = max(1, sum(_targets(train_data, b) for b in batches))
        for k, b in enumerate(batches):
            batch = _to(_collate(train_data, b, tokenizer.pad_token_id), fabric.device)
            with fabric.no_backward_sync(module, enabled=k < accum - 1):
                loss = module(**batch) / n_targets
                fabric.backward(loss)
            window_loss += loss.detach()
            window_tokens += sum(lengths[i] for i in b)  # real (non-pad) tokens
        if cfg.optim.max_grad_norm:
            fabric.clip_gradients(
                module, optimizer, max_norm=cfg.optim.max_grad_norm, error_if_nonfinite=False
            )
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        progress["step"] += 1
        step = progress["step"]
        window_steps += 1
        bar.update(1)

        if step % cfg.log_every_steps == 0 or step == total_steps:
            # The only host sync of the loop: once per logged step, not per micro-batch.
            mean_loss = float(window_loss) / window_steps
            if not math.isfinite(mean_loss):
                bar.close()
                raise TwinError(
                    f"training loss became {mean_loss} at step {step}; lower optim.lr (now {cfg.optim.lr}) "
                    f"or use precision 32-true. The last checkpoint in {rdir} is kept."
                )
            now = time.perf_counter()
            progress["train_seconds"] = progress.get("train_seconds", 0.0) + (now - window_start)
            tok_s = window_tokens * world / max(now - window_start, 1e-9)
            progress["tokens"] += window_tokens * world
            row = dict.fromkeys(METRIC_FIELDS) | {
                "step": step,
                "epoch": round(progress["micro"] / per_epoch, 4),
                "train_loss": round(mean_loss, 6),
                "lr": scheduler.get_last_lr()[0],
                "tokens_per_s": round(tok_s, 1),
                "elapsed_s": round(now - run_start, 2),
            }
            rows.append(row)
            bar.set_postfix(loss=f"{mean_loss:.3f}", tok_s=f"{tok_s:,.0f}")
            if tb:
                tb.log_metrics({k: v for k, v in row.items() if v is not None and k != "step"}, step)
            window_loss.zero_()
            window_steps, window_tokens = 0, 0
        paused = time.perf_counter()  # validation and checkpoints are not training throughput
        if val_data is not None and (
            step == total_steps or (cfg.eval.every_steps and step % cfg.eval.every_steps == 0)
        ):
            val_loss = _evaluate(fabric, module, val_data, tokenizer.pad_token_id, cfg)
            val_ppl = math.exp(min(val_loss, 50.0))
            if not rows or rows[-1]["step"] != step:
                rows.append(dict.fromkeys(METRIC_FIELDS) | {"step": step})
            rows[-1].update(val_loss=round(val_loss, 6), val_ppl=round(val_ppl, 4))
            if tb:
                tb.log_metrics({"val_loss": val_loss, "val_ppl": val_ppl}, step)
            if zero:
                bar.write(f"step {step}: val loss {val_loss:.4f}, perplexity {val_ppl:.2f}")
        progress["elapsed"] = time.perf_counter() - run_start
        if cfg.checkpoint_every_steps and step % cfg.checkpoint_every_steps == 0 and step < total_steps:
            checkpoint()
        elif zero and time.perf_counter() - last_csv > 10:  # keep metrics.csv fresh for watchers
            _write_metrics(rdir, rows)
            last_csv = time.perf_counter()
        if window_steps == 0:
            window_start = time.perf_counter()
        else:
            window_start += time.perf_counter() - paused
    bar.close()

    # -- 6. outputs ---------------------------------------------------------------------------
    if val_data is not None and val_loss is None:  # resumed a finished run: report, don't retrain
        val_loss = _evaluate(fabric, module, val_data, tokenizer.pad_token_id, cfg)
        val_ppl = math.exp(min(val_loss, 50.0))
    elapsed = progress["elapsed"]
    train_losses = [r["train_loss"] for r in rows if r.get("train_loss") is not None]
    metrics = {
        "steps": progress["step"],
        "epochs": round(progress["micro"] / per_epoch, 4),
        "train_loss_first": train_losses[0] if train_losses else None,
        "train_loss": train_losses[-1] if train_losses else None,
        "val_loss": round(val_loss, 6) if val_loss is not None else None,
        "val_ppl": round(val_ppl, 4) if val_ppl is not None else None,
        "train_examples": len(train_data),
        "val_examples": len(val_data) if val_data else 0,
        "tokens": progress["tokens"],
        "tokens_per_s": round(progress["tokens"] / progress["train_seconds"], 1)
        if progress.get("train_seconds")
        else None,
        "padding_fraction": round(pad_frac, 4),
        "seconds": round(elapsed, 2),
        "trainable_params": trainable,
        "total_params": total_params,
        "peak_memory_mb": _peak_memory_mb(),
        "data": train_data.stats,
    }
    checkpoint()
    # FSDP shards the weights: rank 0 takes the adapter from the consolidated checkpoint.
    adapter_state = _full_adapter_state(state_path) if cfg.strategy == "fsdp" else None
    if zero:
        _save_adapter(
            cfg,
            peft_model,
            tokenizer,
            template,
            metrics,
            adapter_state,
            base_fp=base_fingerprint(cfg.base),
            base_type=model_type(cfg.base),
        )
        log.info("adapter written to %s (val loss %s)", adir, metrics["val_loss"])
    fabric.barrier()
    return metrics


# --------------------------------------------------------------------------------------------
# Helpers


def _targets(data: Any, batch: list[int]) -> int:
    from twin.train.data import count_targets

    return count_targets(data, batch)


def _collate(data: Any, batch: list[int], pad_id: int) -> dict:
    from twin.train.data import collate

    return collate(data, batch, pad_id)


def _to(batch: dict, device: Any) -> dict:
    if str(device) == "cpu":
        return batch
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _read_val(path: Path, tokenizer: Any, template: str, cfg: TrainConfig) -> Any:
    """The validation set, or None (with a warning) when prepare wrote none."""
    from twin.train.data import encode_examples, read_with_memory

    if not path.is_file() or path.stat().st_size == 0 or not path.read_text(encoding="utf-8").strip():
        log.warning("%s: no validation examples; validation loss will not be reported", path)
        return None
    examples = read_with_memory(path, cfg.data.dir, cfg.data.memory, cfg.data.train_file)
    return encode_examples(examples, tokenizer, template, cfg.data.max_seq_length)


def _evaluate(fabric: Any, module: Any, data: Any, pad_id: int, cfg: TrainConfig) -> float:
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
            batch = _to(_collate(data, b, pad_id), fabric.device)
            total[0] += module(**batch).double()
            total[1] += _targets(data, b)
    module.train()
    if fabric.world_size > 1:
        total = fabric.all_reduce(total, reduce_op="sum")
    return float(total[0] / total[1].clamp(min=1))


def _changed_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _changed_keys(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}")
    return out


def _replace_path(tmp: Path, dst: Path) -> None:
    if dst.is_dir() and not dst.is_symlink():
        old = dst.with_name(dst.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
        os.replace(tmp, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dst)


def _write_metrics(rdir: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRIC_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r[k]) for k in METRIC_FIELDS})
    atomic_write_text(rdir / "metrics.csv", buf.getvalue())


def _yaml(cfg: TrainConfig) -> str:
    from twin.config import dump_yaml

    return dump_yaml(cfg)


def _tensorboard(rdir: Path) -> Any:
    import importlib.util

    if not (importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX")):
        return None
    from lightning.fabric.loggers import TensorBoardLogger

    return TensorBoardLogger(root_dir=str(rdir), name="tensorboard", version="")


def _peak_memory_mb() -> float:
    import resource

    import torch

    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def _full_adapter_state(state_path: Path) -> dict | None:
    """FSDP: the consolidated (state_dict_type=full) checkpoint holds the trainable weights."""
    import torch

    if not state_path.is_file():
        return None
    sd = torch.load(state_path, map_location="cpu", weights_only=False)["model"]
    return {k.removeprefix("peft_model."): v for k, v in sd.items()}


def prepare_settings(data_dir: Path) -> dict:
    """``stats.json``'s "config" from prepare, or the defaults (flagged) when it is missing."""
    stats = data_dir / "stats.json"
    if stats.is_file():
        try:
            cfg = json.loads(stats.read_text(encoding="utf-8")).get("config")
            if isinstance(cfg, dict):
                return cfg
        except ValueError:
            pass
        log.warning("%s: unreadable or without 'config'; twin.json records prepare's defaults", stats)
    else:
        log.warning("%s: missing; twin.json records prepare's defaults instead", stats)
    try:
        from twin.prepare.config import PrepareConfig  # type: ignore[import-not-found]

        defaults = PrepareConfig().model_dump(mode="json")
    except Exception:  # prepare stage absent or shaped differently: the documented fields
        defaults = {
            "max_context_tokens": 256,
            "context_unit": "tokens",
            "chars_per_token": 4.0,
            "tokenizer": None,
            "scrub": True,
        }
    return {**defaults, "defaults_used": True}


def _save_adapter(
    cfg: TrainConfig,
    peft_model: Any,
    tokenizer: Any,
    template: str,
    metrics: dict,
    adapter_state: dict | None,
    *,
    base_fp: str,
    base_type: str,
) -> Path:
    """PEFT files + tokenizer + twin.json, built beside and swapped in whole."""
    out = adapter_dir(cfg)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if adapter_state is not None:
            peft_model.save_pretrained(str(tmp), state_dict=adapter_state)
        else:
            peft_model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        meta = {
            "format": 1,
            "base_model": {"path": str(cfg.base), "fingerprint": base_fp, "model_type": base_type},
            "template": template,
            "prepare": prepare_settings(Path(cfg.data.dir)),
            "train": cfg.model_dump(mode="json"),
            "metrics": metrics,
            "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if cfg.data.memory:  # the past exchanges serving retrieves from travel with the adapter
            from twin.memory import MEMORY_DIR, copy_memory

            mem = copy_memory(Path(cfg.data.dir) / MEMORY_DIR, tmp)
            meta["memory"] = {"k": cfg.data.memory, "dir": mem.name}
        atomic_write_json(tmp / "twin.json", meta)
        _replace_path(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
