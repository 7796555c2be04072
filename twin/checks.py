"""Command-line values checked at the start, before any loading: one line naming the option, exit 2.

typer/click range checks are not enough: a float range lets ``nan`` through (every comparison with
it is false) and their errors are a usage box, not one line. Every stage's command calls these
first, so a bad value never costs a model load or a failed request later.
"""

from __future__ import annotations

import math
import re

from twin.errors import TwinError

# a name that becomes a file or directory name: no path, no "..", no leading dot, no line break
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_number(
    option: str,
    value: float | int | None,
    *,
    low: float | None = None,
    high: float | None = None,
    above: float | None = None,
) -> None:
    """``value`` is finite and ``low <= value <= high`` / ``value > above`` (None: not given, fine)."""
    if value is None:
        return
    want = []
    if above is not None:
        want.append(f"above {above:g}")
    if low is not None:
        want.append(f"at least {low:g}")
    if high is not None:
        want.append(f"at most {high:g}")
    if not math.isfinite(value):
        raise TwinError(
            f"{option} {value}: must be a finite number" + (f", {' and '.join(want)}" if want else "")
        )
    ok = (above is None or value > above) and (low is None or value >= low)
    if not (ok and (high is None or value <= high)):
        raise TwinError(f"{option} {value}: must be {' and '.join(want)}")


def check_port(option: str, value: int | None, *, zero_ok: bool = False) -> None:
    """A TCP port: 1-65535."""
    check_number(option, value, low=0 if zero_ok else 1, high=65535)


def check_port_free(
    host: str, port: int, who: str = "twin serve", how: str = "--port N (make serve PORT=N)"
) -> None:
    """Bind ``host:port`` once, before anything slow: a port in use (a ``who`` already running) is one
    line naming ``how`` to pick another, not uvicorn's or Streamlit's own error after the model loaded
    (and a false "listening" line)."""
    import errno
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # the family uvicorn binds host with
    try:
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise TwinError(
            f"--host {host}: cannot resolve it ({e.strerror}); use an address such as 127.0.0.1"
        ) from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is free
        try:
            probe.bind(addr)
        except OSError as e:
            busy = e.errno == errno.EADDRINUSE
            why = (
                f"already in use (is a {who} already running?)" if busy else f"cannot be bound ({e.strerror})"
            )
            raise TwinError(f"{host}:{port} {why}; stop that server or pick another port: {how}") from None


def check_run_name(name: str | None, option: str = "--run") -> None:
    """A run name becomes ``checkpoints/{adapters,runs}/<name>/``: no path, no ``..``, no leading dot."""
    if name is None:
        return
    if not SAFE_NAME.fullmatch(name):
        raise TwinError(
            f"{option} {name!r}: not a run name; use letters, digits, '.', '_' or '-', starting with a "
            "letter or digit (it becomes a directory under checkpoints/)"
        )
