"""What a training run leaves behind, besides checkpoints: the adapter directory and the run's records.

- ``checkpoints/adapters/<run>/``: PEFT files + tokenizer + ``twin.json`` (:class:`twin.adapter_meta.AdapterMeta`:
  base fingerprint, template, prepare's settings, the prompt budget, the train config, precision,
  metrics, memory), built beside and swapped in whole, so a reader never sees half an adapter;
- ``checkpoints/runs/<run>/``: ``config.yaml`` (the resolved config) and ``metrics.csv`` (one row per
  logged step or validation), each written atomically.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twin.adapter_meta import AdapterMeta, BaseRecord, MemoryRecord, now
from twin.fileio import atomic_write_text, replace_path
from twin.train.checkpoints import STATE_FILE, full_adapter_state
from twin.train.config import TrainConfig, adapter_dir, run_dir

if TYPE_CHECKING:
    from twin.train.checkpoints import Progress
    from twin.train.loop import Model, TrainData
    from twin.train.plan import BatchPlan

log = logging.getLogger(__name__)

METRIC_FIELDS = ("step", "epoch", "train_loss", "lr", "tokens_per_s", "val_loss", "val_ppl", "elapsed_s",
                 "sample_reply")  # fmt: skip


def final_metrics(peft_model: Any, data: TrainData, plan: BatchPlan, progress: Progress, kept: dict) -> dict:
    """twin.json's metrics. ``val_loss``/``val_ppl`` are the kept adapter's (the best step's)."""
    train_losses = [r["train_loss"] for r in progress.rows if r.get("train_loss") is not None]
    val_loss, last = kept["val_loss"], kept["last_val_loss"]
    val_ppl = math.exp(min(val_loss, 50.0)) if val_loss is not None else None
    seconds = progress.train_seconds
    st = data.train.stats
    n = max(1, st["examples"])
    return {
        "steps": progress.step,
        "kept": {
            "adapter": kept["kept"],
            "step": kept["step"],
            "last_val_loss": round(last, 6) if last is not None else None,
            "stopped_early": kept["stopped_early"],
            "base_val_loss": round(b, 6) if (b := kept.get("base_val_loss")) is not None else None,
        },
        "epochs": round(progress.micro / plan.per_epoch, 4),
        "train_loss_first": train_losses[0] if train_losses else None,
        "train_loss": train_losses[-1] if train_losses else None,
        "val_loss": round(val_loss, 6) if val_loss is not None else None,
        "val_ppl": round(val_ppl, 4) if val_ppl is not None else None,
        "train_examples": len(data.train),
        "val_examples": len(data.val) if data.val else 0,
        "tokens": progress.tokens,
        "tokens_per_s": round(progress.tokens / seconds, 1) if seconds else None,
        "padding_fraction": round(plan.padding_fraction(), 4),
        "seconds": round(progress.elapsed, 2),
        "trainable_params": sum(p.numel() for p in peft_model.parameters() if p.requires_grad),
        "total_params": sum(p.numel() for p in peft_model.parameters()),
        "peak_memory_mb": _peak_memory_mb(),
        "data": st,
        "budget": {
            "reply_cut_share": round(st["reply_cut"] / n, 4),
            "context_lost_share": round(st["context_trimmed"] / n, 4),
            "val_reply_cut": data.val.stats["reply_cut"] if data.val else 0,
            "val_context_trimmed": data.val.stats["context_trimmed"] if data.val else 0,
        },
    }


def save(
    fabric: Any, cfg: TrainConfig, model: Model, data: TrainData, metrics: dict, precision: dict | None
) -> None:
    """The adapter directory, written by rank 0 once the final checkpoint is in."""

    # FSDP shards the weights: rank 0 takes the adapter from the consolidated checkpoint.
    full = cfg.strategy == "fsdp"
    adapter_state = full_adapter_state(run_dir(cfg) / STATE_FILE) if full else None
    if fabric.is_global_zero:
        meta = adapter_meta(cfg, data.template, data.budget, metrics, precision)
        save_adapter(adapter_dir(cfg), model.peft, data.tokenizer, meta, adapter_state, cfg)
        log.info("adapter written to %s; %s", adapter_dir(cfg), val_words(metrics))
    fabric.barrier()


def val_words(metrics: dict) -> str:
    """``val loss 1.6 (ppl 4.9)``, or why there is none: an empty val.jsonl (all your replies in one
    session) printed "val loss None (ppl None)", which reads as a bug."""
    if metrics.get("val_loss") is None:
        return "no val loss: val.jsonl is empty, nothing was held out to measure"
    return f"val loss {metrics['val_loss']} (ppl {metrics['val_ppl']})"


def adapter_meta(
    cfg: TrainConfig, template: str, budget: Any, metrics: dict, precision: dict | None
) -> AdapterMeta:
    """The run's twin.json: ``budget`` is the :class:`twin.examples.PromptBudget` every prompt was fitted to."""
    from twin.model.load import base_fingerprint, model_type

    memory = None
    if cfg.data.memory:  # the past exchanges serving retrieves from travel with the adapter (save_adapter)
        memory = MemoryRecord(k=cfg.data.memory, scope=cfg.data.memory_scope)
    return AdapterMeta(
        base_model=BaseRecord(
            path=str(cfg.base), fingerprint=base_fingerprint(cfg.base), model_type=model_type(cfg.base)
        ),
        template=template,
        prepare=prepare_settings(Path(cfg.data.dir)),
        budget=budget,
        train=cfg.model_dump(mode="json"),
        precision=precision or {"precision": cfg.precision, "reason": "set in the config"},
        metrics=metrics,
        created=now(),
        memory=memory,
    )


def save_adapter(
    out: Path,
    peft_model: Any,
    tokenizer: Any,
    meta: AdapterMeta,
    adapter_state: dict | None,
    cfg: TrainConfig,
) -> Path:
    """PEFT files + tokenizer (+ memory) + twin.json, built beside ``out`` and swapped in whole."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if adapter_state is not None:
            peft_model.save_pretrained(str(tmp), state_dict=adapter_state)
        else:
            peft_model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        if meta.memory is not None:
            from twin.memory import MEMORY_DIR, copy_memory

            mem = copy_memory(Path(cfg.data.dir) / MEMORY_DIR, tmp)
            meta = meta.model_copy(update={"memory": meta.memory.model_copy(update={"dir": mem.name})})
        meta.write(tmp)
        replace_path(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


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
    from twin.examples import ContextSettings

    return {**ContextSettings().model_dump(mode="json"), "defaults_used": True}


def write_metrics(rdir: Path, rows: list[dict]) -> None:
    """``runs/<run>/metrics.csv``, rewritten whole (atomically) from the rows so far."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=METRIC_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r[k]) for k in METRIC_FIELDS})
    atomic_write_text(rdir / "metrics.csv", buf.getvalue())


def config_yaml(cfg: TrainConfig) -> str:
    """``runs/<run>/config.yaml``: the resolved config, as ``--config`` reads it back."""
    from twin.config import dump_yaml

    return dump_yaml(cfg)


def _peak_memory_mb() -> float:
    import resource

    import torch

    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux
