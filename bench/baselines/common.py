"""Shared plumbing of the comparison benchmarks: measured subprocess runs, medians, RESULTS.md rows.

Every measured run is its own process, so peak memory belongs to that run alone: a small wrapper
(``rusage.py``) reports the command's ``ru_maxrss`` (the largest single process of its tree, exact),
and a sampler adds up the RSS of the whole process tree every 0.1 s (data-loader workers included;
shared pages count once per process, so it over-counts forked workers).
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "<!-- section: compare (owner: bench) -->"
BENCH_VENV = ROOT / ".venv-bench"


def machine() -> str:
    """One line naming the hardware, e.g. ``Linux x86_64, 2 cores (AMD EPYC ...), 24 GiB``."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        import psutil

        mem = f", {psutil.virtual_memory().total / 2**30:.0f} GiB"
    except ImportError:
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu}){mem}"


def today() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def run_measured(
    cmd: Sequence[str], *, log: Path, env: dict | None = None, cwd: Path | None = None, timeout: float = 1800
) -> dict:
    """Run ``cmd`` to completion; wall seconds, exact max-process RSS and sampled tree RSS (MiB).

    ``env`` is the child's whole environment when given (default: this process's).

    Output goes to ``log`` (a pipe could fill and stall the child). A non-zero exit raises with
    the log's tail, since a failed run has no figures worth recording.
    """
    import psutil

    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ) if env is None else env
    rusage = log.with_suffix(".rusage.json")
    wrapper = [sys.executable, "-S", str(Path(__file__).with_name("rusage.py")), str(rusage), "--"]
    with log.open("wb") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen([*wrapper, *cmd], stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=cwd)
        ps = psutil.Process(proc.pid)
        tree_peak = 0
        while proc.poll() is None:
            try:
                procs = ps.children(recursive=True)  # the wrapper itself is not counted
                tree_peak = max(tree_peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            if time.perf_counter() - t0 > timeout:
                proc.kill()
            time.sleep(0.1)
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{shlex.join(cmd)} exited {proc.returncode}; log {log}:\n{tail}")
    max_rss_kib = json.loads(rusage.read_text())["max_rss_kib"]
    return {
        "wall_s": wall,
        "max_rss_mb": max_rss_kib / 1024,  # KiB on Linux
        "tree_rss_mb": tree_peak / 2**20,
    }


def still_client() -> None:
    """Take what this bench process holds now out of the cyclic GC's full collections.

    A bench that drives servers over HTTP also imports torch and transformers (to build its work
    dirs): ~420k long-lived objects, and every full collection walks them all with the GIL held —
    210-260 ms each here, measured, twice inside one round of ``compare_generate``, stalling the
    client's event loop in the middle of a ~0.3 s timed section (the "slow wave" in RESULTS.md).
    Called before each timed section: the first call collects and freezes, later ones are cheap.
    """
    gc.collect()
    gc.freeze()


def median(xs: Sequence[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return statistics.median(vals) if vals else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def fmt(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "—"
    return f"{x:,.{digits}f}"


def write_block(name: str, markdown: str, path: Path = RESULTS) -> None:
    """Replace the block ``name`` of RESULTS.md where it is, or add it at the end of the compare
    section, atomically.

    Blocks are delimited by ``<!-- compare:NAME -->`` / ``<!-- /compare:NAME -->`` so each compare
    script rewrites only its own rows; text outside the block is never touched.
    """
    from twin.fileio import atomic_write_text

    text = path.read_text(encoding="utf-8")
    begin, stop = f"<!-- compare:{name} -->", f"<!-- /compare:{name} -->"
    block = f"{begin}\n{markdown.strip()}\n{stop}"
    if begin in text and stop in text:  # where it already is (another section may have been added before it)
        text = re.sub(re.escape(begin) + r".*?" + re.escape(stop), lambda _: block, text, count=1, flags=re.S)
        atomic_write_text(path, text)
        return
    if SECTION not in text:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n"
    start = text.index(SECTION) + len(SECTION)
    nxt = text.find("<!-- section:", start)
    end = len(text) if nxt == -1 else nxt
    section = text[start:end].rstrip("\n") + f"\n\n{block}\n"
    if nxt != -1 and not section.endswith("\n\n"):
        section = section.rstrip("\n") + "\n\n"
    atomic_write_text(path, text[:start] + section + text[end:])
