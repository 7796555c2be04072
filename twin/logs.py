"""Logging setup for the CLI: rich handler, quiet third-party loggers, no secrets or chat text."""

from __future__ import annotations

import logging
import os
import time


def setup_logging(verbose: bool = False) -> None:
    from rich.logging import RichHandler

    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(
        level=level,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(show_path=False, rich_tracebacks=False, markup=False)],
        force=True,
    )
    # Libraries that are chatty at INFO (and telethon logs connection details).
    for name in ("telethon", "httpx", "urllib3", "filelock", "lightning", "lightning.fabric", "fsspec"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Never phone home: no hub calls, no telemetry from the libraries we use.
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def process_age() -> float:
    """Seconds since this process started (the kernel's start time on Linux, so interpreter start-up
    and imports count); elsewhere, since this module was imported."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED


_IMPORTED = time.monotonic()
