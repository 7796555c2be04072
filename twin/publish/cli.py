"""``twin publish merge`` and ``twin publish gguf``: take the trained twin elsewhere.

``twin merge`` and ``twin export-gguf`` are the same commands under their older names (hidden from
``--help``). Nothing heavy is imported at module level: each command imports its implementation.
"""

from __future__ import annotations

import shlex
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
    model: Path | None = typer.Option(None, "--model", help="Merged model dir (from `twin publish merge`)."),
    out: Path = typer.Option(..., "--out", help="Output dir for the .gguf and the Ollama Modelfile."),
    type_: str = typer.Option("f16", "--type", help="f16, q8_0 or f32."),
    name: str | None = typer.Option(None, "--name", help="File/model name (default: the input dir's name)."),
    adapter_only: bool = typer.Option(
        False, "--adapter-only", help="Write the LoRA alone as a GGUF adapter (Ollama ADAPTER), no merge."
    ),
    adapter: Path | None = typer.Option(
        None, "--adapter", help="With --adapter-only: adapter dir from `twin train`."
    ),
    base: Path | None = typer.Option(
        None, "--base", help="With --adapter-only: base dir (default: twin.json's)."
    ),
    from_: str | None = typer.Option(
        None,
        "--from",
        help="With --adapter-only: the Modelfile's FROM (default: the base dir; or an Ollama tag).",
    ),
) -> None:
    """Merged Falcon/Llama/Qwen2 -> GGUF + Ollama Modelfile; or --adapter-only: the LoRA as a GGUF adapter."""
    from twin.errors import TwinError
    from twin.publish.gguf import export_adapter_gguf, export_gguf

    if adapter_only:
        if adapter is None:
            raise TwinError("--adapter-only needs --adapter DIR (the adapter dir written by `twin train`)")
        res = export_adapter_gguf(adapter, out, base=base, outtype=type_, name=name, source=from_)
    elif model is None:
        raise TwinError(
            "--model DIR is required (a `twin publish merge` output), or use --adapter-only --adapter DIR"
        )
    else:
        res = export_gguf(model, out, outtype=type_, name=name)
    typer.echo(f"gguf: {res['gguf']} ({res['tensors']} tensors, {res['outtype']})")
    # Quoted: the line is meant to be pasted into a shell, and a dir may have spaces in its name.
    typer.echo(
        f"Modelfile: {res['modelfile']}  ->  cd {shlex.quote(str(out))} && ollama create mytwin -f Modelfile"
    )
