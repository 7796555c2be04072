"""``PrepareConfig``: every knob of ``twin prepare`` (YAML, ``--set`` or the command's flags)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, computed_field, field_validator

from twin.config import StageConfig

# Character budget per token when no tokenizer is given: ~4 characters per token is the usual figure
# for English with a BPE tokenizer; Russian with an English-centric tokenizer (Falcon) is ~2-2.5, so
# the character budget is generous there. `--tokenizer DIR` counts real tokens instead.
DEFAULT_CHARS_PER_TOKEN = 4.0


class PrepareConfig(StageConfig):
    raw: str = "data/raw"
    out: str = "data/processed"
    gap_hours: float = Field(24.0, gt=0, description="a gap longer than this starts a new session")
    max_context_tokens: int = Field(256, ge=0, description="context budget per example")
    chars_per_token: float = Field(DEFAULT_CHARS_PER_TOKEN, gt=0)
    tokenizer: str | None = Field(None, description="HF tokenizer dir: count context in real tokens")
    scrub: bool = True
    region: str = Field("US,RU", description="default region(s) for national-format phone numbers")
    val_fraction: float = Field(0.05, ge=0, lt=1)
    format: list[Literal["alpaca", "sharegpt"]] = Field(default_factory=list)
    workers: int = Field(0, ge=0, description="processes; 0 = one per CPU core")
    seed: int = Field(0, description="salt of the session hash that picks the validation split")

    @field_validator("region")
    @classmethod
    def _regions(cls, v: str) -> str:
        parts = [p.strip().upper() for p in v.split(",") if p.strip()]
        if not parts:
            raise ValueError("give at least one region code, e.g. US or US,RU")
        import phonenumbers

        bad = [p for p in parts if p not in phonenumbers.SUPPORTED_REGIONS]
        if bad:
            raise ValueError(f"unknown phone region(s) {', '.join(bad)}; use ISO codes such as US, RU, DE")
        return ",".join(parts)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def context_unit(self) -> Literal["tokens", "chars"]:
        """What the context budget counts: real tokens with a tokenizer, else characters."""
        return "tokens" if self.tokenizer else "chars"

    @property
    def context_budget(self) -> int:
        """The budget in ``context_unit`` units, as passed to :func:`twin.prompt.fit_context`."""
        if self.context_unit == "tokens":
            return self.max_context_tokens
        return int(self.max_context_tokens * self.chars_per_token)
