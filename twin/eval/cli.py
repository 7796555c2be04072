"""Commands: ``twin eval``, ``twin merge``, ``twin export-gguf``, ``twin configs list|copy``, ``twin demo``.

Imports nothing heavy at module level (``twin --help`` stays fast): each command imports its
implementation when it runs.
"""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_cmd)
    app.command("merge")(merge_cmd)
    app.command("export-gguf")(export_gguf_cmd)
    configs = typer.Typer(
        help="List the bundled run recipes (pipelines/*.yaml) or copy one to edit.", no_args_is_help=True
    )
    configs.command("list")(configs_list_cmd)
    configs.command("copy")(configs_copy_cmd)
    app.add_typer(configs, name="configs")
    app.command("demo")(demo_cmd)


def eval_cmd(
    adapter: Path = typer.Option(..., "--adapter", help="Adapter dir written by `twin train`."),
    base: Path | None = typer.Option(None, "--base", help="Base model dir (default: the one in twin.json)."),
    data: Path = typer.Option(
        Path("data/processed"), "--data", help="Dir with val.jsonl (from `twin prepare`)."
    ),
    run: str | None = typer.Option(None, "--run", help="Run name: report goes to <out-dir>/runs/<run>/."),
    out_dir: Path = typer.Option(Path("checkpoints"), "--out-dir"),
    max_examples: int | None = typer.Option(100, "--max-examples", help="Val examples to generate for."),
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
    result = run_eval(cfg)
    out = Path(cfg.out_dir) / "runs" / result["run"]
    lb, lt = result["loss"]["base"], result["loss"]["twin"]
    typer.echo(
        f"loss base {lb['loss']:.3f} (ppl {lb['perplexity']:.1f}) -> twin {lt['loss']:.3f} (ppl {lt['perplexity']:.1f}); "
        f"BLEU-4 {result['overlap']['base']['bleu4']:.2f} -> {result['overlap']['twin']['bleu4']:.2f}"
    )
    typer.echo(f"report: {out / 'report.html'}")


def merge_cmd(
    adapter: Path = typer.Option(..., "--adapter", help="Adapter dir written by `twin train`."),
    out: Path = typer.Option(..., "--out", help="Output dir: a plain Hugging Face model."),
    base: Path | None = typer.Option(None, "--base", help="Base model dir (default: the one in twin.json)."),
    max_shard_size: str = typer.Option(
        "2GB", "--max-shard-size", help="Safetensors shard size, e.g. 500MB, 5GB."
    ),
    dtype: str = typer.Option("auto", "--dtype", help="auto (as the base), float32, bfloat16, float16."),
    force: bool = typer.Option(False, "--force", help="Replace a non-empty --out that twin did not write."),
) -> None:
    """Merge the adapter into the base: a model dir that loads with plain transformers."""
    from twin.publish.merge import merge_adapter

    path = merge_adapter(base, adapter, out, max_shard_size=max_shard_size, dtype=dtype, force=force)
    typer.echo(f"merged model: {path} (AutoModelForCausalLM.from_pretrained('{path}'))")


def export_gguf_cmd(
    model: Path = typer.Option(..., "--model", help="Merged model dir (from `twin merge`)."),
    out: Path = typer.Option(..., "--out", help="Output dir for the .gguf and the Ollama Modelfile."),
    type_: str = typer.Option("f16", "--type", help="f16 or q8_0."),
    name: str | None = typer.Option(None, "--name", help="File/model name (default: the model dir's name)."),
) -> None:
    """Merged Falcon -> GGUF (f16/q8_0) + Ollama Modelfile with the twin's prompt template."""
    from twin.publish.gguf import export_gguf

    res = export_gguf(model, out, outtype=type_, name=name)
    typer.echo(f"gguf: {res['gguf']} ({res['tensors']} tensors, {res['outtype']})")
    typer.echo(f"Modelfile: {res['modelfile']}  ->  cd {out} && ollama create mytwin -f Modelfile")


def configs_list_cmd() -> None:
    """Show the bundled recipes."""
    from twin.publish.configs import list_configs

    items = list_configs()
    if not items:
        typer.echo("no recipes found (expected pipelines/*.yaml)")
        return
    width = max(len(c["name"]) for c in items)
    for c in items:
        typer.echo(f"{c['name']:<{width}}  {c['description']}")
        typer.echo(f"{'':<{width}}  {c['path']}")


def configs_copy_cmd(
    name: str = typer.Argument(..., help="Recipe name from `twin configs list` (e.g. tiny, falcon-7b)."),
    path: Path = typer.Argument(..., help="Where to write the copy (a .yaml file or a directory)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Copy a bundled recipe to edit: twin train --config PATH."""
    from twin.publish.configs import copy_config

    out = copy_config(name, path, force=force)
    typer.echo(f"wrote {out}; train with: twin train --config {out}")


def demo_cmd(
    serve: int = typer.Option(
        1, "--serve", help="1: start the server and chat page at the end; 0: stop after eval."
    ),
    workdir: Path = typer.Option(Path("."), "--workdir", help="Where data/ and checkpoints/ go."),
    sample: Path | None = typer.Option(
        None, "--sample", help="Telegram Desktop result.json (default: the bundled sample)."
    ),
    fresh: bool = typer.Option(False, "--fresh", help="Redo every stage even if its outputs are current."),
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port", help="REST server port."),
    chat_port: int = typer.Option(8501, "--chat-port", help="Chat page port."),
) -> None:
    """The whole pipeline on the bundled sample: base, import, prepare, train, eval (+ serve)."""
    from twin.demo import DemoOptions, run_demo

    run_demo(
        DemoOptions(
            workdir=workdir,
            sample=sample,
            fresh=fresh,
            serve=bool(serve),
            host=host,
            port=port,
            chat_port=chat_port,
        )
    )
