"""Logging setup for the CLI: rich handler, quiet third-party loggers, no secrets or chat text."""

from __future__ import annotations

import logging
import os


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
    # Telemetry is off from `import twin` (twin/__init__.py); tokenizers' threads fight ours.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
