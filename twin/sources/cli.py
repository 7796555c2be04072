"""``twin export telegram`` (telethon) and ``twin export desktop`` (Telegram Desktop JSON).

Nothing heavy is imported at module level: telethon loads only when ``export telegram`` runs.
Both commands write the same raw format (``twin/records.py``) under ``--out``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

log = logging.getLogger(__name__)


def register(app: typer.Typer) -> None:
    export = typer.Typer(
        help="Get your chats out of Telegram into data/raw (API or Desktop export).",
        no_args_is_help=True,
    )
    app.add_typer(export, name="export")
    export.command("desktop")(desktop_cmd)
    export.command("telegram")(telegram_cmd)


def desktop_cmd(
    path: Path = typer.Argument(..., help="Telegram Desktop export: result.json (one chat or the account)."),
    out: Path = typer.Option(Path("data/raw"), "--out", help="Raw data root."),
    me: str | None = typer.Option(
        None, "--me", help="Who you are: numeric user id, 'user123', or your exact display name."
    ),
    tz: str | None = typer.Option(
        None,
        "--tz",
        help="Zone of the export's local 'date' fields, used only when 'date_unixtime' is missing "
        "(e.g. Europe/Berlin; default: this machine's zone).",
    ),
    include_groups: bool = typer.Option(False, "--include-groups", help="Also import group chats."),
    list_senders: bool = typer.Option(
        False, "--list-senders", help="Only list every sender (name as --me takes it, id, messages)."
    ),
) -> None:
    """Import a Telegram Desktop "Export chat history" JSON (no API keys needed)."""
    from twin.sources import telegram_desktop

    if list_senders:
        _print_senders(telegram_desktop.list_senders(path))
        return
    summary = telegram_desktop.import_desktop(path, out, me=me, include_groups=include_groups, tz=tz)
    _print_summary(summary)


def telegram_cmd(
    out: Path = typer.Option(Path("data/raw"), "--out", help="Raw data root."),
    limit_dialogs: int | None = typer.Option(
        None, "--limit-dialogs", min=1, help="Only the N most recent dialogs."
    ),
    since: str | None = typer.Option(
        None, "--since", help="Only messages on or after this date (YYYY-MM-DD, UTC)."
    ),
    include_groups: bool = typer.Option(False, "--include-groups", help="Also export group chats."),
    session: Path | None = typer.Option(
        None,
        "--session",
        help="Telethon session file (default ~/.config/twin/telegram.session, mode 0600).",
    ),
    env_file: Path = typer.Option(Path(".env"), "--env-file", help="Where to read TELEGRAM_* from."),
) -> None:
    """Pull your one-to-one chats through the Telegram API (telethon); incremental and resumable."""
    from twin.sources.telegram_api import export_telegram

    summary = export_telegram(
        out,
        limit_dialogs=limit_dialogs,
        since=since,
        include_groups=include_groups,
        session=session,
        env_file=env_file,
    )
    _print_summary(summary)


def _print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="export", show_header=False)
    for key, value in summary.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
        table.add_row(str(key), "-" if value is None else str(value))
    Console(stderr=True).print(table)


def _print_senders(senders: list[tuple[str, str, int]]) -> None:
    """One sender a line: ``--me`` value to paste (quoted for the shell), user id, message count."""
    from twin.sources.telegram_desktop import shell_word

    for name, uid, n in senders:
        print(f"--me {shell_word(name) if name else uid}\t{uid}\t{n} messages")
