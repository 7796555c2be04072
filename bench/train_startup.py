"""`twin train --max-steps 1`: CPU seconds of the whole process, and of the start-up to the first step.

    .venv/bin/python -m bench.train_startup --work W --old /tmp/old-tree --rounds 3

Runs the real command on the tiny Falcon that ``python -m bench.compare_train --work W`` built
(``W/falcon/{base,data}``), alternately from this tree (cold: its encoding cache removed first;
and cached) and, with ``--old``, from another checkout (``git archive <commit> | tar -x -C DIR``).
``--phases`` also reports the CPU seconds at the end of each start-up phase (the CLI, torch and Fabric,
the tokenizer and data, the model), from wrappers around the loop's functions (the same names in
both trees) installed by ``--as-twin``; ``--precision auto`` runs the default precision instead.
``--first-run`` adds ``new+first``: cold and without twin's user cache (``XDG_CACHE_HOME``, which
keeps transformers' index of its model files), as on the first run after installing twin. Every
run uses ``W/startup-xdg`` as its ``XDG_CACHE_HOME``.
CPU seconds (user + sys of the child) are reported beside the wall time because on a shared machine
the wall time mostly measures the other jobs; the first step's time comes from twin's own log line.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# Phase -> the function whose end closes it (the first call), in run order.
PHASES = {"cli": ("twin.train.loop", "setup", "start"), "torch_fabric": ("twin.train.loop", "setup", "end"),
          "tokenizer_data": ("twin.train.loop", "load_data", "end"),
          "model": ("twin.train.loop", "load_model", "end")}  # fmt: skip


def as_twin(args: list[str]) -> None:
    """Run ``twin <args>`` in this process, printing ``phases {name: CPU s}`` when it exits."""
    import atexit
    import functools
    import importlib
    import json

    import twin.cli

    marks: dict[str, float] = {}

    def wrapped(f: object, name: str) -> object:
        @functools.wraps(f)  # type: ignore[arg-type]
        def g(*a: object, **k: object) -> object:
            marks.setdefault(f"{name} start", time.process_time())
            try:
                return f(*a, **k)  # type: ignore[operator]
            finally:
                marks.setdefault(f"{name} end", time.process_time())

        return g

    for module, name, _ in PHASES.values():
        m = importlib.import_module(module)
        setattr(m, name, wrapped(getattr(m, name), name))
    atexit.register(lambda: print("phases " + json.dumps(
        {k: round(marks[f"{n} {w}"], 2) for k, (_, n, w) in PHASES.items() if f"{n} {w}" in marks})))  # fmt: skip
    sys.argv = ["twin", *args]
    twin.cli.main()


def run(tree: Path, work: Path, cached: bool, first: bool = False, phases: bool = False,
        precision: str = "32-true") -> dict:  # fmt: skip
    data, base, xdg = work / "falcon" / "data", work / "falcon" / "base", work / "startup-xdg"
    if not cached:
        shutil.rmtree(data / ".twin-cache", ignore_errors=True)
    if first:
        shutil.rmtree(xdg, ignore_errors=True)
    out = work / "startup-out"
    shutil.rmtree(out, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env |= {"PYTHONPATH": str(tree), "XDG_CACHE_HOME": str(xdg)}
    twin = (
        [sys.executable, str(Path(__file__).resolve()), "--as-twin"]
        if phases
        else [sys.executable, "-m", "twin.cli"]
    )
    cmd = [*twin, "train", "--config", "pipelines/tiny.yaml", "--data", str(data),
           "--base", str(base), "--run", "cmp", "--max-steps", "1", "--set", f"out_dir={out}",
           "--set", "eval.every_steps=0", "--set", "checkpoint_every_steps=0", "--set", f"precision={precision}",
           "--set", "data.template=plain-v1", "--set", "lora.target_modules=[query_key_value]"]  # fmt: skip
    r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    p = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode:
        raise SystemExit(p.stderr[-2000:])
    first = re.search(r"first optimizer step at ([0-9.]+) s \(CPU ([0-9.]+) s\)", p.stdout + p.stderr)
    marks = re.search(r"^phases (.*)$", p.stdout, re.M)
    return ({"phases_cpu_s": json.loads(marks.group(1))} if marks else {}) | {
        "cpu_s": round(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime, 2),
        "wall_s": round(time.perf_counter() - t0, 1),
        "first_step_s": float(first.group(1)) if first else None,
        "first_step_cpu_s": float(first.group(2)) if first else None,
        "load": round(os.getloadavg()[0], 1),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m bench.train_startup", description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="a compare_train --work dir (tiny Falcon built)")
    ap.add_argument("--old", type=Path, help="another checkout of twin to compare with")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--first-run", action="store_true", help="also new+first: no encoding, no user cache")
    ap.add_argument("--phases", action="store_true", help="also the CPU seconds at the end of each phase")
    ap.add_argument("--precision", default="32-true", help="the run's precision (auto: the machine's pick)")
    a = ap.parse_args(argv)
    kinds = [("new", ROOT, False), ("new+cached", ROOT, True)]
    kinds += [("new+first", ROOT, False)] if a.first_run else []
    kinds += [("old", a.old, False), ("old+cached", a.old, True)] if a.old else []
    res: dict[str, list[dict]] = {k: [] for k, _, _ in kinds}
    for i in range(a.rounds):
        for name, tree, cached in kinds if i % 2 == 0 else kinds[::-1]:
            res[name].append(
                run(
                    tree,
                    a.work,
                    cached,
                    first=name.endswith("+first"),
                    phases=a.phases,
                    precision=a.precision,
                )
            )
            print(name, res[name][-1], flush=True)
    print(json.dumps(res))
    return res


if __name__ == "__main__":
    if sys.argv[1:2] == ["--as-twin"]:
        as_twin(sys.argv[2:])
    else:
        main(sys.argv[1:])
