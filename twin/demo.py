"""``twin demo``: the whole product on the bundled sample export, in one command.

Stages, each one line of progress with its wall time::

    import   data/sample/result.json -> data/demo/raw/telegram/*.jsonl     (Telegram Desktop importer)
    prepare  data/demo/raw -> data/demo/processed/{train,val}.jsonl       (sessions, PII scrub, split)
    base     tiny Falcon + tokenizer, briefly pretrained on the contacts' side of train.jsonl -> checkpoints/demo/tiny-falcon
    train    LoRA on it with pipelines/tiny.yaml -> checkpoints/adapters/demo
    eval     base vs twin on val.jsonl -> checkpoints/runs/demo/report.html
    serve    (--serve 1) REST server + chat page until ctrl-C

The demo's data and base have directories of their own, never the ones your own chats go through
(``data/raw``, ``data/processed``, ``checkpoints/tiny-falcon``): run the demo first, then
``make export-desktop`` with your export, and the sample person's chats are not in your twin.

The base is pretrained on the *prepared* training split, not the raw export: that text is
PII-scrubbed, and it holds no validation replies; and only on the contacts' messages, never the
owner's, so it plays a real base that has never seen the owner and the eval compares fairly.

Reruns reuse finished stages: each stage writes a stamp (``checkpoints/demo/<stage>.json``)
with a hash of its inputs (input files, settings, upstream stamps) and of its outputs; a stage whose
stamp matches and whose outputs are as it wrote them is skipped. Change the sample or a recipe and
exactly the stages downstream of it run again; an output changed since (``make train`` without
``RUN=`` writes the demo's adapter) is made again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import typer

from twin.errors import TwinError
from twin.fileio import atomic_write_json
from twin.model.tiny import PRETRAIN_STEPS

log = logging.getLogger(__name__)

RUN = "demo"
# The demo's tiny base reads the contacts' side only (as `twin model tiny` does): a base that has never
# seen the owner, judged "you" 0-2% of the time. The twin learns the owner's words from it because
# pipelines/tiny.yaml trains the embedding rows with the LoRA (`lora.train_embeddings`): on the
# bundled sample the owner's phrases are nowhere in the contacts' text (bench/RESULTS.md, section
# sound). True: the old corpus with the owner's replies (`twin model tiny --with-owner-replies`).
BASE_OWNER_REPLIES = False
# 200 contact-balanced val prompts: the paired twin - base interval about +-0.07 (30 gave +-0.2);
# batched generation keeps it around a minute and a half (bench/RESULTS.md, section evalbase).
EVAL_EXAMPLES = 200
EVAL_NEW_TOKENS = 32
# The steps come from the data (pipelines/tiny.yaml: 20 epochs, at most 600 steps; a user's own small
# chat gets its epochs, the best step kept). The demo caps the bundled sample at 300 (0.67 epochs):
# with the embedding rows trained, 300 steps already give the twin 98% judged "you" against the
# base's 0% (bench/RESULTS.md, section sound), in half the time of 600. Validation ~10 times a run
# on 8 batches (the adapter kept is the best of them), a checkpoint halfway.
TRAIN_OVERRIDES: dict = {
    "step_cap": 300,
    "checkpoint_every_steps": 150,
    "eval": {"max_batches": 8},
}


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


@dataclass
class DemoOptions:
    workdir: Path = Path(".")
    sample: Path | None = None
    me: str | None = None  # --me, for an export whose owner cannot be detected (as in `twin export desktop`)
    include_groups: bool = False  # --include-groups: import groups too (a group-only export needs it)
    fresh: bool = False
    serve: bool = True
    host: str = "127.0.0.1"
    port: int = 8000
    chat_port: int = 8501
    pretrain_steps: int = PRETRAIN_STEPS
    eval_examples: int = EVAL_EXAMPLES
    config: Path | None = None  # training recipe; default pipelines/tiny.yaml
    train_overrides: dict = field(default_factory=lambda: dict(TRAIN_OVERRIDES))
    echo: Callable[[str], None] = print
    # How serve_forever starts `twin serve` / `twin chat`: this interpreter, so the same venv serves.
    twin_cmd: list[str] = field(default_factory=lambda: [sys.executable, "-m", "twin.cli"])

    @property
    def paths(self) -> dict[str, Path]:
        w = Path(self.workdir)
        return {
            "sample": Path(self.sample) if self.sample else _repo_root() / "data" / "sample" / "result.json",
            "raw": w / "data" / "demo" / "raw",
            "processed": w / "data" / "demo" / "processed",
            "base": w / "checkpoints" / "demo" / "tiny-falcon",
            "checkpoints": w / "checkpoints",
            "adapter": w / "checkpoints" / "adapters" / RUN,
            "run": w / "checkpoints" / "runs" / RUN,
            "stamps": w / "checkpoints" / "demo",
            "config": Path(self.config) if self.config else _repo_root() / "pipelines" / "tiny.yaml",
        }


def hash_paths(paths: Iterable[Path]) -> str:
    """sha256 over the names and bytes of files (directories: every file below, sorted)."""
    h = hashlib.sha256()
    for p in paths:
        p = Path(p)
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            if not f.exists():
                h.update(b"missing:" + str(f).encode())
                continue
            h.update(str(f.relative_to(p) if p.is_dir() else f.name).encode() + b"\0")
            with f.open("rb") as fh:
                for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()[:16]


def _digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Stages:
    """Runs stages in order, skipping those whose stamp matches their inputs; records wall times."""

    def __init__(self, stamp_dir: Path, *, fresh: bool, echo: Callable[[str], None]):
        self.stamp_dir = stamp_dir
        self.fresh = fresh
        self.echo = echo
        self.times: dict[str, float] = {}
        self.skipped: list[str] = []
        self.digests: dict[str, str] = {}

    def run(
        self, name: str, inputs: object, outputs: list[Path], fn: Callable[[], object], n: int, total: int
    ) -> None:
        digest = _digest({"inputs": inputs, "upstream": dict(self.digests)})
        stamp = self.stamp_dir / f"{name}.json"
        label = f"[{n}/{total}] {name:<8}"
        made = self._reusable(stamp, digest, outputs)
        if made is not None:
            self.digests[name] = _digest([digest, made])
            self.skipped.append(name)
            self.times[name] = 0.0
            self.echo(f"{label} up to date, reused")
            return
        self.echo(f"{label} running ...")
        stamp.unlink(missing_ok=True)  # a failed rerun must not leave a stale "done"
        t0 = time.perf_counter()
        summary = fn()
        secs = time.perf_counter() - t0
        self.times[name] = secs
        made = hash_paths(outputs)
        # downstream stages see what this one made, not only what it read: a rerun whose outputs
        # differ from the last run's redoes them
        self.digests[name] = _digest([digest, made])
        atomic_write_json(
            stamp, {"digest": digest, "outputs": made, "seconds": round(secs, 1), "summary": summary}
        )
        self.echo(f"{label} done in {secs:.1f}s")

    def _reusable(self, stamp: Path, digest: str, outputs: list[Path]) -> str | None:
        """The outputs' hash when the stamp says this stage ran on these inputs and its outputs are
        as it wrote them (not deleted, not rewritten by hand since); else None."""
        if self.fresh or not stamp.is_file() or not all(p.exists() for p in outputs):
            return None
        try:
            written = json.loads(stamp.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            return None
        if not isinstance(written, dict) or written.get("digest") != digest:
            return None
        made = hash_paths(outputs)
        return made if written.get("outputs") == made else None


def _summary_counts(obj: object) -> object:
    """Keep only numbers/short strings from a stage's summary (no chat text in stamps)."""
    if isinstance(obj, dict):
        return {
            str(k): _summary_counts(v)
            for k, v in obj.items()
            if isinstance(v, int | float | str | dict | bool)
        }
    if isinstance(obj, str):
        return obj[:200]
    return obj


def run_demo(opts: DemoOptions) -> dict:
    """Run the pipeline; with ``opts.serve`` start the server and chat page and block until ctrl-C."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    p = opts.paths
    _check_inputs(p)
    stages = Stages(p["stamps"], fresh=opts.fresh, echo=opts.echo)
    started = time.perf_counter()
    steps = (_import_stage, _prepare_stage, _base_stage, _train_stage, _eval_stage)
    total = len(steps) + (1 if opts.serve else 0)
    for n, step in enumerate(steps, 1):
        step(stages, opts, p, n, total)
    elapsed = time.perf_counter() - started
    result = {"times": stages.times, "skipped": stages.skipped, "total_seconds": elapsed}
    atomic_write_json(p["stamps"] / "last_run.json", result)
    per = ", ".join(f"{k} {v:.0f}s" for k, v in stages.times.items())
    opts.echo(f"pipeline finished in {elapsed:.1f}s ({per})")
    opts.echo(f"report: {p['run'] / 'report.html'}")
    if opts.serve:
        opts.echo(f"[{total}/{total}] serve    starting the server and the chat page (ctrl-C stops both)")
        serve_forever(opts, p)
    return result


def _check_inputs(p: dict[str, Path]) -> None:
    if not p["sample"].is_file():
        raise TwinError(f"{p['sample']}: sample export not found; pass --sample path/to/result.json")
    if not p["config"].is_file():
        raise TwinError(
            f"{p['config']}: training recipe not found; `twin configs list` shows the bundled ones"
        )


def _import_stage(stages: Stages, opts: DemoOptions, p: dict[str, Path], n: int, total: int) -> None:
    def do_import() -> object:
        import shutil

        from twin.sources.telegram_desktop import import_desktop

        # the demo's raw chats are made from the sample alone: another sample's must not stay beside them
        shutil.rmtree(p["raw"], ignore_errors=True)
        summary = import_desktop(
            p["sample"], out_root=str(p["raw"]), me=opts.me, include_groups=opts.include_groups
        )
        if not summary.get("dialogs"):
            hint = "" if opts.include_groups else "; for a group chat add --include-groups"
            raise TwinError(f"{p['sample']}: no chat to import (see the line above){hint}")
        return _summary_counts(summary)

    inputs = {"sample": hash_paths([p["sample"]]), "me": opts.me, "groups": opts.include_groups}
    stages.run("import", inputs, [p["raw"] / "telegram"], do_import, n, total)


def _prepare_stage(stages: Stages, opts: DemoOptions, p: dict[str, Path], n: int, total: int) -> None:
    def do_prepare() -> object:
        from twin.prepare.config import PrepareConfig
        from twin.prepare.pipeline import run_prepare

        cfg = PrepareConfig(raw=str(p["raw"]), out=str(p["processed"]))
        counts = (run_prepare(cfg) or {}).get("counts", {})
        _check_enough(counts, p["sample"])
        return _summary_counts(counts)

    raw_files = p["raw"] / "telegram"
    inputs = {"raw": hash_paths([raw_files]) if raw_files.exists() else None}
    outputs = [p["processed"] / "train.jsonl", p["processed"] / "val.jsonl"]
    stages.run("prepare", inputs, outputs, do_prepare, n, total)


def _check_enough(counts: dict, sample: Path) -> None:
    """Stop before minutes of training when the evaluation could not run (no held-out example)."""
    if not counts.get("train") or not counts.get("val"):
        raise TwinError(
            f"{sample}: {counts.get('train', 0)} training and {counts.get('val', 0)} held-out examples; the demo "
            "needs both (it evaluates on held-out replies): export more of your chats, or run the stages "
            "yourself (`make prepare`, `make train`)"
        )


def _base_stage(stages: Stages, opts: DemoOptions, p: dict[str, Path], n: int, total: int) -> None:
    def do_base() -> object:
        from twin.model.tiny import build_tiny, texts_from_dir

        docs = texts_from_dir(p["processed"], owner_replies=BASE_OWNER_REPLIES)
        build_tiny(p["base"], docs, pretrain_steps=opts.pretrain_steps, seed=0)
        return json.loads((p["base"] / "tiny.json").read_text(encoding="utf-8"))

    # "text": which corpus the base reads (a stamp from the other one is stale)
    text = "with owner replies" if BASE_OWNER_REPLIES else "contacts"
    inputs = {
        "train": hash_paths([p["processed"] / "train.jsonl"]),
        "steps": opts.pretrain_steps,
        "text": text,
    }
    outputs = [p["base"] / "config.json", p["base"] / "model.safetensors"]
    stages.run("base", inputs, outputs, do_base, n, total)


def _train_stage(stages: Stages, opts: DemoOptions, p: dict[str, Path], n: int, total: int) -> None:
    def do_train() -> object:
        from twin.config import load_config
        from twin.logs import stage_clock
        from twin.train.config import TrainConfig
        from twin.train.loop import train

        overrides = {
            "base": str(p["base"]),
            "run": RUN,
            "out_dir": str(p["checkpoints"]),
            "data": {"dir": str(p["processed"])},
            **opts.train_overrides,
        }
        cfg = load_config(TrainConfig, p["config"], overrides)
        with stage_clock():  # the first-step time counts from here, not from the base stage before it
            return _summary_counts(train(cfg) or {})

    inputs = {
        "data": hash_paths([p["processed"] / "train.jsonl", p["processed"] / "val.jsonl"]),
        "config": hash_paths([p["config"]]),
        "overrides": opts.train_overrides,
    }
    outputs = [p["adapter"] / "twin.json", p["adapter"] / "adapter_model.safetensors"]
    stages.run("train", inputs, outputs, do_train, n, total)


def _eval_stage(stages: Stages, opts: DemoOptions, p: dict[str, Path], n: int, total: int) -> None:
    def do_eval() -> object:
        from twin.eval.run import EvalConfig, run_eval

        cfg = EvalConfig(
            adapter=str(p["adapter"]),
            base=str(p["base"]),
            data=str(p["processed"]),
            run=RUN,
            out_dir=str(p["checkpoints"]),
            max_examples=opts.eval_examples,
            max_new_tokens=EVAL_NEW_TOKENS,
        )
        r = run_eval(cfg)
        return {"loss": r["loss"], "overlap": r["overlap"], "examples": r["examples"]}

    inputs = {"eval_examples": opts.eval_examples, "tokens": EVAL_NEW_TOKENS}
    stages.run("eval", inputs, [p["run"] / "report.html"], do_eval, n, total)


def serve_forever(opts: DemoOptions, p: dict[str, Path]) -> None:
    """Start ``twin serve`` and ``twin chat`` as child processes; stop both on ctrl-C or if one exits."""
    server_url = f"http://{opts.host}:{opts.port}"
    procs: list[subprocess.Popen] = []

    def _on_term(signum: int, frame: object) -> None:  # `kill` stops both children like ctrl-C does
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _on_term)
    try:
        procs.append(
            subprocess.Popen(
                [
                    *opts.twin_cmd,
                    "serve",
                    "--base",
                    str(p["base"]),
                    "--adapter",
                    str(p["adapter"]),
                    "--host",
                    opts.host,
                    "--port",
                    str(opts.port),
                ],
                start_new_session=True,
            )
        )
        procs.append(
            subprocess.Popen(
                [*opts.twin_cmd, "chat", "--server", server_url, "--port", str(opts.chat_port)],
                start_new_session=True,
            )
        )
        opts.echo(f"server:    {server_url}  (POST /reply)")
        opts.echo(f"chat page: http://{opts.host}:{opts.chat_port}")
        while all(pr.poll() is None for pr in procs):
            time.sleep(0.5)
        failed = [pr for pr in procs if pr.poll() not in (None, 0)]
        if failed:
            raise TwinError(
                f"{'server' if failed[0] is procs[0] else 'chat page'} exited with code {failed[0].returncode}; "
                "see its output above (a port in use? pass --port / --chat-port)"
            )
    except KeyboardInterrupt:
        opts.echo("stopping the server and the chat page ...")
    finally:
        signal.signal(signal.SIGTERM, previous)
        for pr in procs:
            if pr.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pr.pid, signal.SIGTERM)
        for pr in procs:
            try:
                pr.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pr.pid, signal.SIGKILL)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_cmd)


def demo_cmd(
    serve: int = typer.Option(
        1, "--serve", help="1: start the server and chat page at the end; 0: stop after eval."
    ),
    workdir: Path = typer.Option(Path("."), "--workdir", help="Where data/ and checkpoints/ go."),
    sample: Path | None = typer.Option(
        None, "--sample", help="Telegram Desktop result.json (default: the bundled sample)."
    ),
    me: str | None = typer.Option(
        None, "--me", help="You in the export, if it cannot tell: user id, user123 or exact name."
    ),
    include_groups: bool = typer.Option(False, "--include-groups", help="Import group chats too."),
    fresh: bool = typer.Option(False, "--fresh", help="Redo every stage even if its outputs are current."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port", help="REST server port."),
    chat_port: int = typer.Option(8501, "--chat-port", help="Chat page port."),
) -> None:
    """The whole pipeline on the bundled sample: import, prepare, base, train, eval (+ serve)."""
    from twin.checks import check_port, check_port_free

    check_port("--port", port)
    check_port("--chat-port", chat_port)
    if serve:  # found now, not after minutes of training
        if port == chat_port:
            raise TwinError(
                f"--port and --chat-port are both {port}: the server and the chat page need one each"
            )
        for option, number, who, var in (
            ("--port", port, "twin serve", "PORT"),
            ("--chat-port", chat_port, "twin chat", "CHAT_PORT"),
        ):
            how = f"{option} N (make demo {var}=N), or --serve 0 to stop after the evaluation (DEMO_SERVE=0)"
            check_port_free(host, number, who, how)
    from twin.model.load import prefer_passive_omp_wait

    prefer_passive_omp_wait()  # the demo trains in this process
    opts = DemoOptions(
        workdir=workdir,
        sample=sample,
        me=me,
        include_groups=include_groups,
        fresh=fresh,
        serve=bool(serve),
        host=host,
        port=port,
        chat_port=chat_port,
    )
    run_demo(opts)
