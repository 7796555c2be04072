"""``twin train`` and ``twin model tiny|download``. Nothing heavy imported at module level."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import typer

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "pipelines/tiny.yaml"

# OpenMP spin-waits by default: on a busy CPU (shared machines, a server next to the trainer) two
# torch threads then run ~10x slower than one. Passive waiting removes that cliff at no cost on an
# idle machine. It must be in the environment before torch loads; every `twin` command imports
# this module at startup (and loads torch later, lazily), and spawned DDP workers inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def register(app: typer.Typer) -> None:
    model_app = typer.Typer(
        help="Base models: build the tiny Falcon, or download one from the Hugging Face Hub.",
        no_args_is_help=True,
    )
    app.add_typer(model_app, name="model")

    @app.command("train")
    def train_cmd(
        config: Path = typer.Option(DEFAULT_CONFIG, "--config", "-c", help="Recipe YAML (pipelines/*.yaml)."),
        data: str | None = typer.Option(
            None, "--data", help="Prepare output dir (default: config data.dir)."
        ),
        base: str | None = typer.Option(None, "--base", help="Base model dir (default: config base)."),
        run: str | None = typer.Option(None, "--run", help="Run name: checkpoints/{adapters,runs}/<run>/."),
        max_steps: int | None = typer.Option(None, "--max-steps", help="Stop after N optimizer steps."),
        resume: bool = typer.Option(False, "--resume", help="Continue the run from its last checkpoint."),
        devices: int | None = typer.Option(None, "--devices", help="Processes/GPUs (DDP on CPU uses gloo)."),
        strategy: str | None = typer.Option(None, "--strategy", help="auto | ddp | fsdp (fsdp: GPUs)."),
        precision: str | None = typer.Option(None, "--precision", help="auto | bf16-true | 32-true | 16-true | bf16-mixed."),
        set_: list[str] = typer.Option(
            None, "--set", help="Override a config key: --set lora.r=8 (repeatable)."
        ),
    ) -> None:
        """LoRA fine-tune a base model on data/processed (Lightning Fabric + peft)."""
        from twin.config import deep_merge, load_config, parse_overrides
        from twin.train.config import TrainConfig

        flags: dict = {}
        for key, value in (
            ("base", base),
            ("run", run),
            ("max_steps", max_steps),
            ("devices", devices),
            ("strategy", strategy),
            ("precision", precision),
        ):
            if value is not None:
                flags[key] = value
        if data is not None:
            flags["data"] = {"dir": data}
        cfg = load_config(TrainConfig, config, deep_merge(flags, parse_overrides(set_)))
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
            typer.echo(
                f"trained {metrics['steps']} steps: train loss {metrics['train_loss_first']} -> "
                f"{metrics['train_loss']}, val loss {metrics['val_loss']} (ppl {metrics['val_ppl']}), "
                f"{metrics['tokens_per_s']} tokens/s, padding {100 * metrics['padding_fraction']:.1f}%"
            )
            typer.echo(f"adapter: {Path(cfg.out_dir) / 'adapters' / cfg.run}")

    @model_app.command("tiny")
    def tiny_cmd(
        out: Path = typer.Option(Path("checkpoints/tiny-falcon"), "--out", help="Output model dir."),
        pretrain_steps: int = typer.Option(0, "--pretrain-steps", min=0, help="Pretrain all params N steps."),
        texts: Path | None = typer.Option(
            None,
            "--texts",
            help="Chat text: a prepare dir (train.jsonl) or raw records dir "
            "(default: data/processed, else data/raw, else a built-in corpus).",
        ),
        seed: int = typer.Option(0, "--seed"),
        vocab_size: int = typer.Option(2048, "--vocab-size", min=300),
        hidden_size: int = typer.Option(128, "--hidden-size", min=8),
        layers: int = typer.Option(4, "--layers", min=1),
        heads: int = typer.Option(4, "--heads", min=1),
    ) -> None:
        """Build the tiny Falcon (Falcon-7B's architecture, toy size) + a BPE tokenizer on your chats."""
        from twin.model.tiny import build_tiny, fallback_texts, texts_from_dir

        if texts is not None:
            docs = texts_from_dir(texts)
            source = str(texts)
        elif (Path("data/processed") / "train.jsonl").is_file():
            docs, source = texts_from_dir("data/processed"), "data/processed"
        elif Path("data/raw").is_dir() and any(Path("data/raw").rglob("*.jsonl")):
            docs, source = texts_from_dir("data/raw"), "data/raw"
        else:
            docs, source = fallback_texts(), "the built-in corpus"
        log.info("tokenizer and pretraining text: %d documents from %s", len(docs), source)
        path = build_tiny(
            out,
            docs,
            pretrain_steps=pretrain_steps,
            seed=seed,
            vocab_size=vocab_size,
            hidden_size=hidden_size,
            num_layers=layers,
            num_heads=heads,
        )
        typer.echo(f"tiny Falcon written to {path}")

    @model_app.command("download")
    def download_cmd(
        repo_id: str = typer.Argument(..., help="Hub repo id, e.g. tiiuae/falcon-7b."),
        out: Path | None = typer.Option(None, "--out", help="Target dir (default: checkpoints/<repo id>)."),
        revision: str | None = typer.Option(None, "--revision", help="Branch, tag or commit."),
    ) -> None:
        """Download a base model from the Hugging Face Hub (needs internet)."""
        from twin.model.download import download

        path = download(repo_id, out, revision=revision)
        typer.echo(f"downloaded {repo_id} to {path}")
