"""``twin model tiny|download``: get a base model. Nothing heavy imported at module level."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from twin.model.tiny import PRETRAIN_STEPS

log = logging.getLogger(__name__)


def register(app: typer.Typer) -> None:
    model_app = typer.Typer(
        help="Base models: build a tiny Falcon/Llama/Qwen2, or download one from the Hugging Face Hub.",
        no_args_is_help=True,
    )
    model_app.command("tiny")(tiny_cmd)
    model_app.command("download")(download_cmd)
    app.add_typer(model_app, name="model")


def tiny_cmd(
    out: Path | None = typer.Option(
        None, "--out", help="Output model dir (default: checkpoints/tiny-<arch>)."
    ),
    arch: str = typer.Option(
        "falcon", "--arch", help="falcon (Falcon-7B's), llama (Llama 3's) or qwen2 (Qwen2.5's) architecture."
    ),
    pretrain_steps: int = typer.Option(
        PRETRAIN_STEPS,
        "--pretrain-steps",
        min=0,
        help="Pretrain all params N steps on the contacts' side of your chats (0: random weights, "
        "whose replies are byte noise).",
    ),
    texts: Path | None = typer.Option(
        None,
        "--texts",
        help="Chat text: a prepare output dir (train.jsonl, PII scrubbed) "
        "(default: data/processed, else a built-in corpus; raw records are never used).",
    ),
    owner_replies: bool = typer.Option(
        False,
        "--with-owner-replies",
        help="Also pretrain on your own replies (the old corpus): a base that already writes like you, "
        "so `twin eval` no longer compares the twin with a base that has never seen you.",
    ),
    seed: int = typer.Option(0, "--seed"),
    vocab_size: int = typer.Option(2048, "--vocab-size", min=300),
    hidden_size: int = typer.Option(128, "--hidden-size", min=8),
    layers: int = typer.Option(4, "--layers", min=1),
    heads: int = typer.Option(4, "--heads", min=1),
) -> None:
    """Build a tiny base (Falcon-7B's, Llama 3's or Qwen2's architecture, toy size) + a BPE tokenizer on your chats.

    llama and qwen2 tokenizers carry their family's chat template, so training picks chat-v1.
    """
    from twin.model.load import prefer_passive_omp_wait

    prefer_passive_omp_wait()
    from twin.model.tiny import build_tiny

    docs, conversations, source = _pretraining_text(texts, arch, owner_replies)
    log.info("tokenizer and pretraining text: %d documents from %s", len(docs), source)
    path = build_tiny(
        out or Path(f"checkpoints/tiny-{arch}"),
        docs,
        arch=arch,
        pretrain_steps=pretrain_steps,
        seed=seed,
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_layers=layers,
        num_heads=heads,
        conversations=conversations,
    )
    typer.echo(f"tiny {arch} written to {path}")


def _pretraining_text(
    texts: Path | None, arch: str, owner_replies: bool
) -> tuple[list[str], list | None, str]:
    """The tiny base's text: (documents, chat-template conversations or None, where they came from)."""
    from twin.model.chat_templates import FAMILIES
    from twin.model.tiny import conversations_from_dir, fallback_texts, texts_from_dir

    family = FAMILIES.get(arch)
    plain = not (family and family.chat_template)  # plain-v1's wording: only for a base without one
    if texts is None and (Path("data/processed") / "train.jsonl").is_file():
        texts = Path("data/processed")
    if texts is None:  # never data/raw: the tokenizer and weights must not learn unscrubbed text
        return fallback_texts(), None, "the built-in corpus (`twin prepare` first to use your chats)"
    # the contacts' side only, unless --with-owner-replies; chat families also pretrain on the
    # conversations rendered in their chat template
    docs = texts_from_dir(texts, plain_prompts=plain, owner_replies=owner_replies)
    conversations = conversations_from_dir(texts, owner_replies=owner_replies)
    side = "with your replies" if owner_replies else "your contacts' side only"
    return docs, conversations, f"{texts} ({side})"


def download_cmd(
    repo_id: str = typer.Argument(..., help="Hub repo id, e.g. tiiuae/falcon-7b."),
    out: Path | None = typer.Option(None, "--out", help="Target dir (default: checkpoints/<repo id>)."),
    revision: str | None = typer.Option(None, "--revision", help="Branch, tag or commit."),
) -> None:
    """Download a base model from the Hugging Face Hub (needs internet)."""
    from twin.model.download import download

    path = download(repo_id, out, revision=revision)
    typer.echo(f"downloaded {repo_id} to {path}")
