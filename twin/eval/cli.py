"""``twin eval``: base model vs twin on val.jsonl. Nothing heavy imported at module level."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_cmd)


def eval_cmd(
    adapter: Path = typer.Option(..., "--adapter", help="Adapter dir written by `twin train`."),
    base: Path | None = typer.Option(None, "--base", help="Base model dir (default: the one in twin.json)."),
    data: Path = typer.Option(
        Path("data/processed"), "--data", help="Dir with val.jsonl (from `twin prepare`)."
    ),
    run: str | None = typer.Option(None, "--run", help="Run name: report goes to <out-dir>/runs/<run>/."),
    out_dir: Path = typer.Option(Path("checkpoints"), "--out-dir"),
    max_examples: int | None = typer.Option(
        200, "--max-examples", help="Val examples to generate for (contact-balanced sample)."
    ),
    samples: int = typer.Option(20, "--samples", help="Rows in the side-by-side table."),
    seed: int = typer.Option(0, "--seed"),
    temperature: float = typer.Option(0.7, "--temperature", help="0 = greedy."),
    max_new_tokens: int = typer.Option(48, "--max-new-tokens"),
    memory: int | None = typer.Option(
        None, "--memory", min=0, help="Past exchanges per prompt (default: as trained, from twin.json)."
    ),
    set_: list[str] | None = typer.Option(None, "--set", help="Override any eval setting: key=value."),
) -> None:
    """Base model vs twin on val.jsonl: loss, perplexity, BLEU/ROUGE, style -> report.html."""
    from twin.model.load import prefer_passive_omp_wait

    prefer_passive_omp_wait()
    from twin.checks import check_run_name
    from twin.config import deep_merge, load_config, parse_overrides
    from twin.eval.run import EvalConfig, run_eval

    opts = {
        "adapter": str(adapter),
        "base": str(base) if base else None,
        "data": str(data),
        "run": run,
        "out_dir": str(out_dir),
        "max_examples": max_examples,
        "samples": samples,
        "seed": seed,
        "temperature": temperature,
        "max_new_tokens": max_new_tokens,
        "memory": memory,
    }
    cfg = load_config(EvalConfig, None, deep_merge(opts, parse_overrides(set_)))
    # the report goes to runs/<run>/ (default: the adapter dir's name): never outside runs/
    check_run_name(cfg.run or Path(cfg.adapter).name, "--run" if cfg.run else "--adapter's name (give --run)")
    result = run_eval(cfg, announce=False)  # the lines below say it once
    out = Path(cfg.out_dir) / "runs" / result["run"]
    lb, lt = result["loss"]["base"], result["loss"]["twin"]
    typer.echo(
        f"loss base {lb['loss']:.3f} (ppl {lb['perplexity']:.1f}) -> twin {lt['loss']:.3f} (ppl {lt['perplexity']:.1f}); "
        f"BLEU-4 {result['overlap']['base']['bleu4']:.2f} -> {result['overlap']['twin']['bleu4']:.2f}"
    )
    from twin.eval.verdict import acceptance_rate, headline

    typer.echo(headline(result, acceptance_rate(result)))
    typer.echo(f"report: {out / 'report.html'}")
