"""The train stage's config. Defaults are the reference recipe (Falcon-7B, LoRA, one GPU);
``pipelines/tiny.yaml`` overrides sizes so the same code runs the tiny Falcon on a CPU.

Imports nothing heavy: ``twin train --help`` and config validation stay instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from twin.config import StageConfig
from twin.prompt import TemplateChoice

SchedulerName = Literal[
    "constant",
    "constant_with_warmup",
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "inverse_sqrt",
]
# auto: chosen for the machine by twin/model/precision.py (recorded in twin.json with the reason)
Precision = Literal["auto", "bf16-true", "32-true", "bf16-mixed", "16-mixed", "16-true"]


class LoraConfig(StageConfig):
    """Adapter shape. ``target_modules``: ``auto`` (per architecture: Falcon ``query_key_value``,
    Llama-like ``q_proj``/``v_proj``), ``all-linear``, or an explicit list of module names."""

    method: Literal["lora", "dora"] = "lora"
    r: int = Field(16, ge=1)
    alpha: float = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: Literal["auto", "all-linear"] | list[str] = "auto"
    bias: Literal["none", "all", "lora_only"] = "none"
    # LoRA+ (Hayou et al. 2024): B learns `loraplus_lr_ratio` times faster than A; null = plain LoRA.
    loraplus_lr_ratio: float | None = Field(None, gt=0)
    # Also train every row of the input embedding and of the output head (tied or not), through peft's
    # trainable tokens: for a base that has never read the owner's words (the tiny one, pretrained on
    # the contacts' side only) LoRA cannot move the frozen embeddings (bench/RESULTS.md, section
    # sound). A vocab x hidden delta: cheap on the tiny base, 0.3-1B parameters on a 7-8B one.
    train_embeddings: bool = False


class OptimConfig(StageConfig):
    """AdamW."""

    lr: float = Field(2e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    max_grad_norm: float | None = Field(1.0, gt=0)  # null: no clipping


class ScheduleConfig(StageConfig):
    name: SchedulerName = "cosine"
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    num_cycles: int = Field(1, ge=1)  # cosine_with_restarts
    power: float = Field(1.0, gt=0)  # polynomial
    lr_end: float = Field(1e-7, ge=0)  # polynomial


class DataConfig(StageConfig):
    dir: str = "data/processed"
    train_file: str = "train.jsonl"
    val_file: str = "val.jsonl"
    # The prompt budget in tokens of the base (twin.examples.PromptBudget, recorded in twin.json and
    # used by eval and serve): a prompt keeps max_seq_length - reply_tokens tokens at most (oldest
    # context turns dropped first), so every reply has reply_tokens of room before it is cut.
    max_seq_length: int = Field(512, ge=8)
    reply_tokens: int = Field(128, ge=1)
    template: TemplateChoice = "auto"
    memory: int = Field(0, ge=0)  # K past exchanges in each prompt (twin/memory.py); 0: none
    memory_scope: Literal["contact", "all"] = "contact"  # whose exchanges: the same chat's, or anyone's
    # Batches are drawn from length-sorted pools of this many micro-batches: little padding,
    # still shuffled (the pools and the batch order are random).
    group_by_length: bool = True
    length_pool: int = Field(64, ge=1)


class EvalConfig(StageConfig):
    # auto: ~10 validations per run (every ceil(steps / 10) steps), so the best step is found
    # however many steps the data gives; an integer N: every N steps; 0: only at the end.
    every_steps: Annotated[int, Field(ge=0)] | Literal["auto"] = "auto"
    # The adapter saved is the one with the lowest val loss seen (not the last step's); with
    # patience N the run also stops after N validations in a row without a new best.
    keep_best: bool = True
    patience: int | None = Field(None, ge=1)
    max_batches: int | None = Field(None, ge=1)  # null: the whole val set
    micro_batch_size: int | None = Field(None, ge=1)  # null: as training
    # One greedy reply to the first val prompt at each validation, printed and kept in metrics.csv
    # (as litgpt's generate_example): what the adapter writes, not only its loss. At most
    # min(data.reply_tokens, sample_tokens) tokens; rank 0 only; not with strategy fsdp.
    sample_reply: bool = True
    sample_tokens: int = Field(48, ge=1)


PairSource = Literal["twin", "base", "feedback"]


class PrefsConfig(StageConfig):
    """The preference stage after SFT (``twin/train/prefs.py``): DPO against the SFT adapter, plus an
    NLL term on the owner's real replies (RPO). ``enabled``: ``twin train`` runs it right after SFT;
    ``twin train --stage prefs`` runs it alone on an existing adapter whatever this says."""

    enabled: bool = False
    init: str | None = None  # adapter dir to continue; null: <out_dir>/adapters/<run> (the SFT output)
    objective: Literal["dpo"] = "dpo"
    beta: float = Field(0.1, gt=0)  # DPO's KL strength: higher stays closer to the SFT adapter
    nll_weight: float = Field(1.0, ge=0)  # RPO: per-token NLL of the chosen reply, added to the loss
    steps: int = Field(60, ge=1)  # optimizer steps
    batch_size: int = Field(16, ge=1)  # pairs per optimizer step
    micro_batch_size: int = Field(4, ge=1)  # pairs per forward pass (each pair is two rows)
    lr: float = Field(2e-3, gt=0)  # the recipe's SFT lr is 3e-3; 5e-4 barely moved (bench/RESULTS.md, prefs)
    prompts: int = Field(256, ge=1)  # train prompts sampled for generated pairs
    sources: list[PairSource] = Field(default_factory=lambda: ["twin", "base", "feedback"], min_length=1)
    samples: int = Field(4, ge=1)  # twin samples per prompt; the verifier's least owner-like is rejected
    # A generated reply is "not theirs" only if the verifier says so: P(owner) below this (1: keep all).
    max_rejected_p: float = Field(0.5, gt=0, le=1)
    max_new_tokens: int = Field(32, ge=1)
    temperature: float = Field(1.0, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    gen_batch: int = Field(16, ge=1)  # replies generated together
    feedback: str = "data/feedback"  # drafts feedback records (<dialog_id>.jsonl); skipped when missing
    # The SFT adapter's embedding rows (lora.train_embeddings) move in this stage too; off: only the
    # LoRA matrices do (60 steps cost the real replies' val loss +6.7% with the rows, +4.5% without:
    # bench/RESULTS.md, section prefs20).
    train_embeddings: bool = False
    # The guard: every val_every steps, the loss of the real val replies; the stage stops once it is
    # more than max_loss_increase above the SFT adapter's (patience checks in a row) and keeps the
    # last weights within it (the SFT weights themselves if none is). null: no guard, the last step's.
    max_loss_increase: float | None = Field(0.02, gt=0)
    val_every: int = Field(10, ge=1)
    patience: int = Field(2, ge=1)  # checks over budget in a row before the stage stops (1: at the first)

    @model_validator(mode="after")
    def _pairs_divide(self) -> PrefsConfig:
        if self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"prefs.batch_size {self.batch_size} must be a multiple of prefs.micro_batch_size "
                f"{self.micro_batch_size}"
            )
        return self


class TrainConfig(StageConfig):
    base: str = "checkpoints/tiny-falcon"
    run: str = "default"
    out_dir: str = "checkpoints"  # adapters/<run>/ and runs/<run>/ go under it
    precision: Precision = "auto"
    quantize: Literal["nf4", "int8"] | None = None  # QLoRA, CUDA only
    accelerator: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    devices: int = Field(1, ge=1)
    strategy: Literal["auto", "ddp", "fsdp"] = "auto"
    num_threads: int | None = Field(None, ge=1)  # CPU threads per process; null: cores / devices
    seed: int = 42
    # Steps come from the data: epochs x (examples / batch_size), at most step_cap; max_steps, when
    # set, is an explicit step count that overrides both (twin.train.plan.plan_steps logs the choice).
    epochs: int = Field(3, ge=1)
    step_cap: int | None = Field(None, ge=1)
    max_steps: int | None = Field(None, ge=1)
    batch_size: int = Field(128, ge=1)  # effective (global) batch per optimizer step
    micro_batch_size: int = Field(4, ge=1)  # per device per forward pass
    gradient_checkpointing: bool = False
    log_every_steps: int = Field(1, ge=1)
    checkpoint_every_steps: int = Field(100, ge=0)  # 0: only at the end
    lora: LoraConfig = LoraConfig()
    optim: OptimConfig = OptimConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    data: DataConfig = DataConfig()
    eval: EvalConfig = EvalConfig()
    prefs: PrefsConfig = PrefsConfig()

    @model_validator(mode="after")
    def _batch_divides(self) -> TrainConfig:
        per_step = self.micro_batch_size * self.devices
        if self.batch_size % per_step:
            raise ValueError(
                f"batch_size {self.batch_size} must be a multiple of micro_batch_size x devices "
                f"({self.micro_batch_size} x {self.devices}); gradient accumulation makes up the rest"
            )
        return self

    @property
    def grad_accum_steps(self) -> int:
        return self.batch_size // (self.micro_batch_size * self.devices)


def run_dir(cfg: TrainConfig) -> Path:
    """``<out_dir>/runs/<run>``: checkpoints, metrics.csv, the config; never leaves the machine."""
    return Path(cfg.out_dir) / "runs" / cfg.run


def adapter_dir(cfg: TrainConfig) -> Path:
    """``<out_dir>/adapters/<run>``: what training delivers (PEFT files, tokenizer, twin.json)."""
    return Path(cfg.out_dir) / "adapters" / cfg.run
