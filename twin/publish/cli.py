"""``twin publish merge`` and ``twin publish gguf``: take the trained twin elsewhere.

``twin merge`` and ``twin export-gguf`` are the same commands under their older names (hidden from
``--help``). Nothing heavy is imported at module level: each command imports its implementation.
"""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    publish = typer.Typer(
        help="Take the twin elsewhere: merge the adapter into the base, then GGUF for llama.cpp/Ollama.",
        no_args_is_help=True,
    )
    publish.command("merge")(merge_cmd)
    publish.command("gguf")(gguf_cmd)
    app.add_typer(publish, name="publish")
    app.command("merge", hidden=True)(merge_cmd)
    app.command("export-gguf", hidden=True)(gguf_cmd)


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


def gguf_cmd(
    model: Path = typer.Option(..., "--model", help="Merged model dir (from `twin publish merge`)."),
    out: Path = typer.Option(..., "--out", help="Output dir for the .gguf and the Ollama Modelfile."),
    type_: str = typer.Option("f16", "--type", help="f16 or q8_0."),
    name: str | None = typer.Option(None, "--name", help="File/model name (default: the model dir's name)."),
) -> None:
    """Merged Falcon -> GGUF (f16/q8_0) + Ollama Modelfile with the twin's prompt template."""
    from twin.publish.gguf import export_gguf

    res = export_gguf(model, out, outtype=type_, name=name)
    typer.echo(f"gguf: {res['gguf']} ({res['tensors']} tensors, {res['outtype']})")
    typer.echo(f"Modelfile: {res['modelfile']}  ->  cd {out} && ollama create mytwin -f Modelfile")
