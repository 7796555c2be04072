"""``twin drafts``: registered on the root ``twin`` app; imports nothing heavy at module level."""

from __future__ import annotations

from pathlib import Path

import typer

from twin.drafts.options import DEFAULT_SIGNATURE


def register(app: typer.Typer) -> None:
    app.command("drafts")(drafts_cmd)


def drafts_cmd(
    chat: list[str] = typer.Option(
        [],
        "--chat",
        help="A chat to answer: user id, @username or exact name (repeatable). A group only when named here.",
    ),
    recent: int | None = typer.Option(None, "--recent", help="Answer your N most recent one-to-one chats."),
    server: str | None = typer.Option(
        None,
        "--server",
        help="twin serve URL (default $TWIN_SERVER_URL or http://127.0.0.1:8000); token: $TWIN_API_TOKEN.",
    ),
    mode: str = typer.Option(
        "draft", "--mode", help="draft (the chat's draft), saved (Saved Messages) or send."
    ),
    debounce: float = typer.Option(20.0, "--debounce", help="Seconds of quiet after their last message."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print what would be written; write nothing."),
    i_understand_it_sends: bool = typer.Option(
        False, "--i-understand-it-sends", help="Required by --mode send."
    ),
    max_per_hour: int = typer.Option(4, "--max-per-hour", help="--mode send: messages per chat per hour."),
    signature: str = typer.Option(
        DEFAULT_SIGNATURE, "--signature", help="--mode send: appended to each message."
    ),
    adapter: str | None = typer.Option(
        None, "--adapter", help="Adapter name on the server (default: its default)."
    ),
    max_new_tokens: int | None = typer.Option(
        None, "--max-new-tokens", help="Reply length cap (server default)."
    ),
    temperature: float | None = typer.Option(
        None, "--temperature", help="Sampling temperature (server default; 0 = greedy)."
    ),
    gap_hours: float = typer.Option(24.0, "--gap-hours", help="Session gap, as in twin prepare."),
    region: str = typer.Option(
        "US,RU", "--region", help="Phone regions of the scrubber, as in twin prepare."
    ),
    session: Path | None = typer.Option(None, "--session", help="The session file of twin export telegram."),
    env_file: Path = typer.Option(Path(".env"), "--env-file", help="Where to read TELEGRAM_* from."),
    feedback_dir: Path = typer.Option(
        Path("data/feedback"),
        "--feedback-dir",
        help="Where what you did with each suggestion is kept (scrubbed).",
    ),
    no_feedback: bool = typer.Option(False, "--no-feedback", help="Keep no record of what you sent."),
    feedback_hours: float = typer.Option(
        6.0, "--feedback-hours", help="How long after a suggestion what you send still counts."
    ),
) -> None:
    """Your twin inside Telegram: writes its suggested reply into the chat's draft; you send it."""
    from twin.drafts.options import DraftsOptions, server_from_env
    from twin.drafts.run import run_drafts

    options = DraftsOptions(
        chats=chat, recent=recent, server=server_from_env(server), mode=mode, debounce=debounce,
        dry_run=dry_run, i_understand_it_sends=i_understand_it_sends, max_per_hour=max_per_hour,
        signature=signature, adapter=adapter, max_new_tokens=max_new_tokens, temperature=temperature,
        gap_hours=gap_hours, region=region, session=session, env_file=env_file,
        feedback_dir=None if no_feedback else feedback_dir, feedback_hours=feedback_hours,
    )  # fmt: skip
    try:
        run_drafts(options)
    except KeyboardInterrupt:
        typer.echo("stopped (Ctrl-C): nothing half-written", err=True)
