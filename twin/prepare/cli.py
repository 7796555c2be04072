"""``twin prepare``: raw messages -> train/val examples. Nothing heavy imported at module level."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("prepare")(prepare_cmd)


def prepare_cmd(
    raw: str | None = typer.Option(None, "--raw", help="Raw records dir (default data/raw)."),
    out: str | None = typer.Option(None, "--out", help="Output dir (default data/processed)."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML with prepare settings."),
    gap_hours: float | None = typer.Option(None, "--gap-hours", help="Gap that starts a new session (24)."),
    max_context_tokens: int | None = typer.Option(
        None,
        "--max-context-tokens",
        help="Context kept per example at most (512); train fits it to the base.",
    ),
    chars_per_token: float | None = typer.Option(
        None, "--chars-per-token", help="Characters per token without --tokenizer (4.0)."
    ),
    tokenizer: str | None = typer.Option(
        None, "--tokenizer", help="Base model/tokenizer dir: budget context in real tokens."
    ),
    region: str | None = typer.Option(
        None,
        "--region",
        help="Phone regions tried first for national numbers, e.g. US or US,RU (default US,RU); each "
        "chat adds the regions its script and numbers point to, listed in the summary.",
    ),
    val_fraction: float | None = typer.Option(
        None, "--val-fraction", help="Share of sessions in val (0.05)."
    ),
    format_: list[str] = typer.Option(
        None, "--format", help="Also write alpaca|sharegpt files (LLaMA-Factory, axolotl); repeatable."
    ),
    no_scrub: bool = typer.Option(False, "--no-scrub", help="Keep PII in the data (not recommended)."),
    workers: int | None = typer.Option(None, "--workers", help="Processes (0 = one per core)."),
    set_: list[str] = typer.Option(None, "--set", help="Override a setting: --set gap_hours=12."),
) -> None:
    """Sessions, merged turns, PII scrub, instruction examples, train/val split -> data/processed."""
    from twin.config import deep_merge, load_config, parse_overrides
    from twin.prepare.config import PrepareConfig
    from twin.prepare.pipeline import run_prepare

    options = {"raw": raw, "out": out, "gap_hours": gap_hours, "max_context_tokens": max_context_tokens,
               "chars_per_token": chars_per_token, "tokenizer": tokenizer, "region": region,
               "val_fraction": val_fraction, "workers": workers}  # fmt: skip
    flags = _flags(options, format_, no_scrub)
    cfg = load_config(PrepareConfig, config, deep_merge(parse_overrides(set_), flags))
    stats = run_prepare(cfg)
    print_summary(stats, cfg.out)


def _flags(options: dict, format_: list[str] | None, no_scrub: bool) -> dict:
    """The command line's settings as a config overlay (only what was given)."""
    flags: dict = {k: v for k, v in options.items() if v is not None}
    if format_:
        flags["format"] = [f.strip() for item in format_ for f in item.split(",") if f.strip()]
    if no_scrub:
        flags["scrub"] = False
    return flags


def print_summary(stats: dict, out: str) -> None:
    """The end-of-run table: counts, PII hits by type, length percentiles. Numbers only, no text."""
    from rich.console import Console
    from rich.table import Table

    c = stats["counts"]
    t = Table(title=f"twin prepare -> {out}", show_header=True, header_style="bold")
    t.add_column("what")
    t.add_column("count", justify="right")
    for label, key in (
        ("dialogs", "dialogs"),
        ("dialogs with examples", "dialogs_with_examples"),
        ("messages", "messages"),
        ("  of them mine", "messages_mine"),
        ("  without text (media)", "messages_no_text"),
        ("  forwarded (a mark, no words)", "messages_forwarded"),
        ("sessions", "sessions"),
        ("turns", "turns"),
        ("examples", "examples"),
        ("  train", "train"),
        ("  val", "val"),
        ("  val sessions", "val_sessions"),
    ):
        t.add_row(label, f"{c.get(key, 0):,}")
    if stats["config"].get("scrub"):
        t.add_section()
        found = {kind: n for kind, n in stats["pii"].items() if n}
        for kind, n in found.items():
            t.add_row(f"PII [{kind}]", f"{n:,}")
        if len(found) < len(stats["pii"]):  # 17 rows of zeros would bury the hits (all in stats.json)
            t.add_row("PII, other kinds" if found else "PII", "0")
        regions = stats.get("phone_regions") or {}
        if regions:  # --region plus what the chats pointed to (script, their numbers): say which
            t.add_row("phone regions (dialogs)", ", ".join(f"{r} ({n:,})" for r, n in regions.items()))
    else:
        t.add_section()
        t.add_row("PII scrub", "OFF (--no-scrub)")
    lt = Table(title="lengths", header_style="bold")
    lt.add_column("")
    for col in ("mean", "p50", "p90", "p99", "max"):
        lt.add_column(col, justify="right")
    for key, row in stats["lengths"].items():
        if row.get("n"):
            label = key if key != "context_size" else f"context ({row.get('unit', 'chars')})"
            lt.add_row(label, *(str(row[k]) for k in ("mean", "p50", "p90", "p99", "max")))
    console = Console()
    console.print(t)
    console.print(lt)
