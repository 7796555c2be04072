"""The one real `twin serve` process the tests share (the `twin_server` fixture in conftest.py)."""

from __future__ import annotations

from pathlib import Path

TOKEN = "tok-test"  # its TWIN_API_TOKEN
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def serve_args(base: Path, adapter: Path) -> tuple[str, ...]:
    """`twin serve` options: the trained adapter as `me`, a short queue (so overload is reachable), one thread."""
    return ("--base", str(base), "--adapter", f"me={adapter}", "--queue-size", "8", "--threads", "1")
