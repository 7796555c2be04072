"""Logging setup for the CLI: rich handler, quiet third-party loggers, no secrets or chat text."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator

_CHATTY_AT_INFO = (
    "telethon",
    "httpx",
    "urllib3",
    "filelock",
    "lightning",
    "lightning.fabric",
    "fsspec",
    "gguf",
    "matplotlib",  # "generated new fontManager" the first time eval draws its plots on a machine
)


def setup_logging(verbose: bool = False) -> None:
    from rich.logging import RichHandler

    level = logging.DEBUG if verbose else logging.INFO
    # The handler's own level too: some libraries set their logger to DEBUG at import (bm25s).
    handler = RichHandler(show_path=False, rich_tracebacks=False, markup=False, level=level)
    logging.basicConfig(level=level, format="%(message)s", datefmt="[%X]", handlers=[handler], force=True)
    if not verbose:
        quiet_libraries()
    # Libraries that are chatty at INFO (telethon logs connection details, gguf its file layout,
    # matplotlib its font cache).
    for name in _CHATTY_AT_INFO:
        logging.getLogger(name).setLevel(logging.WARNING)
    # Telemetry is off from `import twin` (twin/__init__.py); tokenizers' threads fight ours.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def quiet_libraries() -> None:
    """What libraries print for their developers (deprecations, internal notices) is not for the user.

    Every line twin prints says what happened or what to do; a library's FutureWarning about its own
    next version, or transformers' "Token indices sequence length is longer..." (twin cuts prompts
    to the model's size itself), only alarms. ``twin -v`` shows them all again.
    """
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # read by transformers when it loads
    if "transformers" in sys.modules:  # already loaded: tell it directly
        logging.getLogger("transformers").setLevel(logging.ERROR)


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
_STAGE: list[tuple[float, float]] = []  # (wall, CPU) when an in-process stage started (twin demo)


@contextlib.contextmanager
def stage_clock() -> Iterator[None]:
    """Inside, :func:`since_start` counts from the stage's start, not the process's: ``twin demo``
    runs every stage in one process, so its training's "first optimizer step at N s" would count the
    base's pretraining before it."""
    _STAGE[:] = [(time.monotonic(), time.process_time())]
    try:
        yield
    finally:
        _STAGE.clear()


def since_start() -> tuple[float, float, str]:
    """(wall s, CPU s, what they count from): since the stage's start inside a :func:`stage_clock`,
    else since the process started (interpreter start-up and imports included)."""
    if _STAGE:
        wall, cpu = _STAGE[0]
        return time.monotonic() - wall, time.process_time() - cpu, "this stage started"
    return process_age(), time.process_time(), "this process started"
