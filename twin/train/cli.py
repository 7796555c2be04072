"""``twin train`` and ``twin configs list|copy`` (the bundled recipes). Nothing heavy imported at module level."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from twin.train.config import TrainConfig

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "pipelines/tiny.yaml"


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
    configs = typer.Typer(
        help="List the bundled run recipes (pipelines/*.yaml) or copy one to edit.", no_args_is_help=True
    )
    configs.command("list")(configs_list_cmd)
    configs.command("copy")(configs_copy_cmd)
    app.add_typer(configs, name="configs")


def train_cmd(
    config: Path = typer.Option(DEFAULT_CONFIG, "--config", "-c", help="Recipe YAML (pipelines/*.yaml)."),
    data: str | None = typer.Option(None, "--data", help="Prepare output dir (default: config data.dir)."),
    base: str | None = typer.Option(None, "--base", help="Base model dir (default: config base)."),
    run: str | None = typer.Option(None, "--run", help="Run name: checkpoints/{adapters,runs}/<run>/."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Stop after N optimizer steps."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run from its last checkpoint."),
    devices: int | None = typer.Option(None, "--devices", help="Processes/GPUs (DDP on CPU uses gloo)."),
    strategy: str | None = typer.Option(None, "--strategy", help="auto | ddp | fsdp (fsdp: GPUs)."),
    precision: str | None = typer.Option(
        None, "--precision", help="auto | bf16-true | 32-true | 16-true | bf16-mixed."
    ),
    memory: int | None = typer.Option(
        None,
        "--memory",
        min=0,
        help="K most similar past exchanges in each prompt (default: data.memory, 0).",
    ),
    stage: str | None = typer.Option(
        None,
        "--stage",
        help="sft | prefs. Default: SFT, then the preference stage if prefs.enabled. "
        "prefs: only the preference stage (DPO), continuing an SFT adapter.",
    ),
    from_: str | None = typer.Option(
        None, "--from", help="prefs: the adapter to continue, a run name or a dir (default: --run's)."
    ),
    feedback: str | None = typer.Option(
        None, "--feedback", help="prefs: drafts feedback dir (default: data/feedback when it exists)."
    ),
    memory_scope: str | None = typer.Option(
        None,
        "--memory-scope",
        help="Whose past exchanges: contact (default: the same contact's only) or all (anyone's).",
    ),
    set_: list[str] = typer.Option(None, "--set", help="Override a config key: --set lora.r=8 (repeatable)."),
) -> None:
    """LoRA fine-tune a base model on data/processed (Lightning Fabric + peft), then optionally DPO."""
    import threading

    from twin.model.load import choose_omp_wait

    omp: list[str] = []  # chosen before torch loads; on a busy machine its 0.1 s look at /proc/stat
    probe = threading.Thread(target=lambda: omp.append(choose_omp_wait()), daemon=True)
    probe.start()  # sleeps: it overlaps reading the config
    options = {"base": base, "run": run, "max_steps": max_steps, "devices": devices, "strategy": strategy,
               "precision": precision}  # fmt: skip
    flags = _flags(options, data=data, memory=memory, from_=from_, feedback=feedback)
    _check_stage(stage, resume)
    cfg = _config(config, flags, memory_scope, set_)
    probe.join()
    log.info("threads: %s", omp[0] if omp else "OpenMP default wait (the load could not be read)")
    if stage == "prefs":
        _run_prefs(cfg, feedback is not None)
        return
    _train_sft(cfg, resume)
    if cfg.prefs.enabled and stage is None:
        _run_prefs(cfg.model_copy(update={"prefs": cfg.prefs.model_copy(update={"init": None})}), False)


def _flags(
    options: dict, *, data: str | None, memory: int | None, from_: str | None, feedback: str | None
) -> dict:
    """The command line's settings as a config overlay (only what was given)."""
    flags: dict = {k: v for k, v in options.items() if v is not None}
    if data is not None:
        flags["data"] = {"dir": data}
    if memory is not None:
        flags.setdefault("data", {})["memory"] = memory
    if from_ is not None:
        flags["prefs"] = {"init": from_}
    if feedback is not None:
        flags.setdefault("prefs", {})["feedback"] = feedback
    return flags


def _config(config: Path, flags: dict, memory_scope: str | None, set_: list[str] | None) -> TrainConfig:
    """The recipe with the flags and ``--set`` overrides on top (a bad scope or key: one line)."""
    from twin.config import deep_merge, load_config, parse_overrides
    from twin.train.config import TrainConfig

    if memory_scope is not None:
        from twin.memory import check_scope

        flags.setdefault("data", {})["memory_scope"] = check_scope(memory_scope)
    return load_config(TrainConfig, config, deep_merge(flags, parse_overrides(set_)))


def _train_sft(cfg: TrainConfig, resume: bool) -> None:
    """The SFT run, then its summary (the adapter, the plan, the step kept)."""
    from twin.train.loop import train

    try:
        metrics = train(cfg, resume=resume)
    except KeyboardInterrupt:
        log.warning(
            "interrupted: add --resume to the same command to continue from the last checkpoint in %s",
            Path(cfg.out_dir) / "runs" / cfg.run,
        )
        raise
    if metrics:
        from twin.train.artifacts import val_words

        typer.echo(
            f"trained {metrics['steps']} steps: train loss {metrics['train_loss_first']} -> "
            f"{metrics['train_loss']}, {val_words(metrics)}, "
            f"{metrics['tokens_per_s']} tokens/s, padding {100 * metrics['padding_fraction']:.1f}%"
        )
        kept = metrics["kept"]
        typer.echo(
            f"step plan: {metrics['plan']['reason']}; adapter kept: the {kept['adapter']} step "
            f"({kept['step']}{', stopped early' if kept['stopped_early'] else ''})"
        )
        typer.echo(f"adapter: {Path(cfg.out_dir) / 'adapters' / cfg.run}")


def _check_stage(stage: str | None, resume: bool) -> None:
    from twin.errors import TwinError

    if stage not in (None, "sft", "prefs"):
        raise TwinError(f"--stage {stage!r}: use sft or prefs (default: sft, then prefs if prefs.enabled)")
    if stage == "prefs" and resume:
        raise TwinError(
            "--resume: the preference stage has no resume; rerun it (it restarts from the SFT adapter)"
        )


def _run_prefs(cfg: TrainConfig, feedback_required: bool) -> None:
    from twin.train.prefs import train_prefs

    rec = train_prefs(cfg, feedback_required=feedback_required)
    typer.echo(
        f"preference stage ({rec['objective']}, beta {rec['beta']}): {rec['pairs']} pairs {rec['pair_sources']}, "
        f"margin {rec['margin_before']} -> {rec['margin_after']}, val loss {rec['val_loss_before']} -> "
        f"{rec['val_loss_after']}"
    )
    g = rec.get("guard") or {}
    if g.get("stopped_at") is not None:
        typer.echo(
            f"stopped at step {g['stopped_at']}: val loss more than {g['max_loss_increase']:.0%} above the SFT "
            f"adapter's; kept step {g['kept_step']}" + (" (the SFT weights)" if g["kept_step"] == 0 else "")
        )
    typer.echo(f"adapter: {Path(cfg.out_dir) / 'adapters' / cfg.run}")


def configs_list_cmd() -> None:
    """Show the bundled recipes."""
    from twin.train.recipes import list_configs

    items = list_configs()
    if not items:
        typer.echo("no recipes found (expected pipelines/*.yaml)")
        return
    width = max(len(c["name"]) for c in items)
    for c in items:
        typer.echo(f"{c['name']:<{width}}  {c['description']}")
        typer.echo(f"{'':<{width}}  {c['path']}")


def configs_copy_cmd(
    name: str = typer.Argument(..., help="Recipe name from `twin configs list` (e.g. tiny, falcon-7b)."),
    path: Path = typer.Argument(..., help="Where to write the copy (a .yaml file or a directory)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Copy a bundled recipe to edit: twin train --config PATH."""
    from twin.train.recipes import copy_config

    out = copy_config(name, path, force=force)
    typer.echo(f"wrote {out}; train with: twin train --config {out}")
