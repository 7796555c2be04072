"""``twin drafts``: registered on the root ``twin`` app; imports nothing heavy at module level.

The options are declared once below, grouped by what they decide, so the command itself reads as its
two steps: gather them into :class:`~twin.drafts.options.DraftsOptions`, then run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from twin.drafts.options import DEFAULT_SIGNATURE

if TYPE_CHECKING:
    from twin.drafts.options import DraftsOptions


def register(app: typer.Typer) -> None:
    app.command("drafts")(drafts_cmd)


# which chats, which server
_CHAT = typer.Option(
    [], "--chat", help="A chat to answer: user id, @username or exact name (repeatable). A group only when named here."
)  # fmt: skip
_RECENT = typer.Option(None, "--recent", help="Answer your N most recent one-to-one chats.")
_SERVER = typer.Option(
    None, "--server", help="twin serve URL (default $TWIN_SERVER_URL or http://127.0.0.1:8000); token: $TWIN_API_TOKEN."
)  # fmt: skip
_ADAPTER = typer.Option(None, "--adapter", help="Adapter name on the server (default: its default).")
# where the suggestion goes, and when
_MODE = typer.Option("draft", "--mode", help="draft (the chat's draft), saved (Saved Messages) or send.")
_DEBOUNCE = typer.Option(20.0, "--debounce", help="Seconds of quiet after their last message.")
_DRY_RUN = typer.Option(False, "--dry-run", help="Print what would be written; write nothing.")
# --mode send's guard rails
_I_UNDERSTAND = typer.Option(False, "--i-understand-it-sends", help="Required by --mode send.")
_MAX_PER_HOUR = typer.Option(4, "--max-per-hour", help="--mode send: messages per chat per hour.")
_SIGNATURE = typer.Option(DEFAULT_SIGNATURE, "--signature", help="--mode send: appended to each message.")
# the reply, and the conversation cut as twin prepare cuts it
_MAX_NEW_TOKENS = typer.Option(None, "--max-new-tokens", help="Reply length cap (server default).")
_TEMPERATURE = typer.Option(None, "--temperature", help="Sampling temperature (server default; 0 = greedy).")
_GAP_HOURS = typer.Option(24.0, "--gap-hours", help="Session gap, as in twin prepare.")
_REGION = typer.Option("US,RU", "--region", help="Phone regions of the scrubber, as in twin prepare.")
# the Telegram login
_SESSION = typer.Option(None, "--session", help="The session file of twin export telegram.")
_ENV_FILE = typer.Option(Path(".env"), "--env-file", help="Where to read TELEGRAM_* from.")
# what you did with each suggestion
_FEEDBACK_DIR = typer.Option(
    Path("data/feedback"),
    "--feedback-dir",
    help="Where what you did with each suggestion is kept (scrubbed).",
)
_NO_FEEDBACK = typer.Option(False, "--no-feedback", help="Keep no record of what you sent.")
_FEEDBACK_HOURS = typer.Option(
    6.0, "--feedback-hours", help="How long after a suggestion what you send still counts."
)


def drafts_cmd(
    chat: list[str] = _CHAT,
    recent: int | None = _RECENT,
    server: str | None = _SERVER,
    mode: str = _MODE,
    debounce: float = _DEBOUNCE,
    dry_run: bool = _DRY_RUN,
    i_understand_it_sends: bool = _I_UNDERSTAND,
    max_per_hour: int = _MAX_PER_HOUR,
    signature: str = _SIGNATURE,
    adapter: str | None = _ADAPTER,
    max_new_tokens: int | None = _MAX_NEW_TOKENS,
    temperature: float | None = _TEMPERATURE,
    gap_hours: float = _GAP_HOURS,
    region: str = _REGION,
    session: Path | None = _SESSION,
    env_file: Path = _ENV_FILE,
    feedback_dir: Path = _FEEDBACK_DIR,
    no_feedback: bool = _NO_FEEDBACK,
    feedback_hours: float = _FEEDBACK_HOURS,
) -> None:
    """Your twin inside Telegram: writes its suggested reply into the chat's draft; you send it."""
    from twin.drafts.options import DraftsOptions, server_from_env

    options = DraftsOptions(
        chats=chat, recent=recent, server=server_from_env(server), mode=mode, debounce=debounce,
        dry_run=dry_run, i_understand_it_sends=i_understand_it_sends, max_per_hour=max_per_hour,
        signature=signature, adapter=adapter, max_new_tokens=max_new_tokens, temperature=temperature,
        gap_hours=gap_hours, region=region, session=session, env_file=env_file,
        feedback_dir=None if no_feedback else feedback_dir, feedback_hours=feedback_hours,
    )  # fmt: skip
    _run(options)


def _run(options: DraftsOptions) -> None:
    """Watch the chats until Ctrl-C, which ends the command quietly (every write is atomic)."""
    from twin.drafts.run import run_drafts

    try:
        run_drafts(options)
    except KeyboardInterrupt:
        typer.echo("stopped (Ctrl-C): nothing half-written", err=True)
