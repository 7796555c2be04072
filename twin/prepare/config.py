"""``PrepareConfig``: every knob of ``twin prepare`` (YAML, ``--set`` or the command's flags)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from twin.examples import ContextSettings


class PrepareConfig(ContextSettings):
    """Prepare's own settings; the context budget (shared with training and serving) is inherited."""

    raw: str = "data/raw"
    out: str = "data/processed"
    gap_hours: float = Field(24.0, gt=0, description="a gap longer than this starts a new session")
    scrub: bool = True
    region: str = Field("US,RU", description="default region(s) for national-format phone numbers")
    # the owner's own phone region(s), added to every dialog's regions after ``region``; run_prepare
    # adds those the exports recorded (<raw>/<source>/account.json, see twin/account.py)
    account_regions: list[str] = Field(default_factory=list)
    val_fraction: float = Field(0.05, ge=0, lt=1)
    # A val split must be big enough to measure: when val_fraction gives fewer than min_val_examples,
    # more blocks go to val (by hash), up to max_val_share of the examples. A session's examples are
    # split into blocks of val_block consecutive replies, so a chat of few long sessions can too.
    min_val_examples: int = Field(48, ge=0)
    max_val_share: float = Field(0.2, gt=0, lt=1)
    val_block: int = Field(8, ge=1)
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
