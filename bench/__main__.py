"""`make bench`: run every benchmark module in sequence; see bench/README.md for the convention.

    python -m bench                    # everything (creates .venv-bench for litgpt first if missing)
    python -m bench --quick            # every module's smoke size
    python -m bench --only compare_train,bench_serve
    python -m bench --list             # what would run
    python -m bench setup              # only (re)create .venv-bench

Each module ``bench/bench_*.py`` (per-stage figures) and ``bench/compare_*.py`` (side-by-side with
other tools) defines ``main(argv: list[str] | None) -> dict | None`` accepting ``--quick``. Each runs
in its own process (``python -c "from bench.X import main; main(argv)"``): memory figures are its
own, a crash cannot take the others down, and settings one module puts in its environment never
leak into the next. A module that is missing is reported and skipped; a failing one is reported,
the rest still run, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
# Stage benchmarks first (they are the cheaper ones), comparisons last. Modules found on disk but
# not listed here run too, after these, in name order.
EXPECTED = (
    "bench_import",
    "bench_prepare",
    "bench_train",
    "bench_serve",
    "compare_data",
    "compare_train",
    "compare_generate",
)
# Run only when named with --only (`make bench-7b`): 14 GB of weights and ~30 min, not every `make bench`.
OPT_IN = ("bench_7b",)
BENCH_VENV = ROOT / ".venv-bench"
# litgpt goes into its own venv: it pins lightning / huggingface-hub / jsonargparse versions of its
# own, which must not move the main .venv. torch first and pinned, as in `make install` (the local
# CPU wheel); `requests` is needed by litgpt's CLI (jsonargparse URL support) but not declared by it;
# py-spy profiles `twin train` from outside (compare_train --profile).
BENCH_REQUIREMENTS = (("torch==2.13.0",), ("litgpt==0.5.13", "requests", "py-spy"))
STAMP = BENCH_VENV / ".installed"


def discover() -> list[str]:
    on_disk = {p.stem for p in BENCH.glob("bench_*.py")} | {p.stem for p in BENCH.glob("compare_*.py")}
    extra = sorted(on_disk - set(EXPECTED) - set(OPT_IN))
    return [*EXPECTED, *extra]  # expected ones even if missing: noted


def setup_bench_venv(force: bool = False) -> bool:
    """Create ``.venv-bench`` with litgpt (idempotent). False, with a note, when it cannot."""
    py = BENCH_VENV / "bin" / "python"
    if STAMP.exists() and py.exists() and not force:
        return True
    print(f"bench: creating {BENCH_VENV.relative_to(ROOT)} for litgpt (one time)", flush=True)
    try:
        if not py.exists():
            subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True)
        pip = [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        for group in BENCH_REQUIREMENTS:
            subprocess.run([*pip, *group], check=True)
        torch_version = subprocess.run(
            [str(py), "-c", "import torch, litgpt; print(torch.__version__)"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        if not torch_version.startswith("2.13.0"):
            print(f"bench: note: .venv-bench got torch {torch_version}, not 2.13.0", flush=True)
    except (subprocess.CalledProcessError, OSError) as e:
        print(
            f"bench: note: could not set up .venv-bench ({e}); litgpt comparisons will be skipped", flush=True
        )
        return False
    STAMP.write_text("litgpt bench venv\n", encoding="utf-8")
    return True


def run_module(name: str, argv: list[str]) -> tuple[str, float]:
    """(status, seconds) for one module run in its own process."""
    if importlib.util.find_spec(f"bench.{name}") is None:
        print(f"\nbench: note: bench/{name}.py is missing; skipped", flush=True)
        return "missing", 0.0
    print(f"\n=== bench.{name} {' '.join(argv)}".rstrip(), flush=True)
    code = f"import sys; from bench.{name} import main; main({argv!r})"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    t0 = time.perf_counter()
    rc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env).returncode
    dt = time.perf_counter() - t0
    if rc != 0:
        print(f"bench: bench.{name} FAILED (exit {rc}) after {dt:.0f}s", flush=True)
        return f"failed ({rc})", dt
    return "ok", dt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["setup"]:
        return 0 if setup_bench_venv(force="--force" in argv) else 1
    ap = argparse.ArgumentParser(
        prog="python -m bench", description="Run every benchmark module in sequence."
    )
    ap.add_argument("--quick", action="store_true", help="pass --quick to every module (smoke sizes)")
    ap.add_argument("--only", help="comma-separated module names (e.g. compare_train,bench_serve)")
    ap.add_argument("--skip", default="", help="comma-separated module names to leave out")
    ap.add_argument("--list", action="store_true", help="print the modules that would run and exit")
    ap.add_argument("--no-setup", action="store_true", help="do not create .venv-bench (litgpt is skipped)")
    a = ap.parse_args(argv)
    names = discover()
    if a.only:
        wanted = [n.strip().removesuffix(".py") for n in a.only.split(",") if n.strip()]
        names = wanted
    skip = {n.strip() for n in a.skip.split(",") if n.strip()}
    names = [n for n in names if n not in skip]
    if a.list:
        for n in names:
            state = "" if importlib.util.find_spec(f"bench.{n}") else "  (missing)"
            print(f"{n}{state}")
        return 0
    # The smoke run never installs anything; it uses .venv-bench only if it is already there.
    if not a.no_setup and not a.quick and "compare_train" in names:
        setup_bench_venv()
    t0 = time.perf_counter()
    results = [(n, *run_module(n, ["--quick"] if a.quick else [])) for n in names]
    print("\n=== bench summary")
    for n, status, secs in results:
        print(f"  {n:<20} {status:<12} {secs:7.0f}s")
    print(f"  {'total':<20} {'':<12} {time.perf_counter() - t0:7.0f}s")
    return 1 if any(s.startswith("failed") for _, s, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
