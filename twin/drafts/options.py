"""What ``twin drafts`` was asked to do, and the refusals checked before anything connects."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from twin.checks import check_number
from twin.errors import TwinError

Mode = Literal["draft", "saved", "send"]
MODES: tuple[str, ...] = ("draft", "saved", "send")
DEFAULT_SERVER = "http://127.0.0.1:8000"
DEFAULT_SIGNATURE = " — my twin"


@dataclass
class DraftsOptions:
    chats: list[str] = field(default_factory=list)  # --chat: user id, @username or exact name
    recent: int | None = None  # --recent N: the N most recent one-to-one chats
    server: str = DEFAULT_SERVER
    token: str | None = None  # $TWIN_API_TOKEN
    adapter: str | None = None
    mode: Mode = "draft"
    debounce: float = 20.0  # seconds of quiet after their last message
    dry_run: bool = False
    i_understand_it_sends: bool = False
    max_per_hour: int = 4  # --mode send: messages per chat per hour
    signature: str = DEFAULT_SIGNATURE
    chars_per_second: float = 8.0  # --mode send: typing speed the delay is computed from
    max_typing_s: float = 20.0
    max_new_tokens: int | None = None
    temperature: float | None = None  # None: the server's default sampling
    history_messages: int = 50  # messages read back from Telegram per suggestion
    context_chars: int = 1024  # history budget sent to the server (the prepare default: 256 tokens x 4)
    gap_hours: float = 24.0  # the prepare stage's session gap
    region: str = "US,RU"  # the scrubber's phone regions
    session: Path | None = None
    env_file: Path | None = Path(".env")
    retry_initial_s: float = 2.0  # server down: first retry after this, doubling up to retry_max_s
    retry_max_s: float = 60.0
    server_timeout_s: float = 300.0
    feedback_dir: Path | None = Path("data/feedback")  # None: --no-feedback
    feedback_hours: float = 6.0  # a suggestion's window for what you send (or their next message)


def server_from_env(server: str | None) -> str:
    return (server or os.environ.get("TWIN_SERVER_URL") or DEFAULT_SERVER).rstrip("/")


def check_options(o: DraftsOptions) -> None:
    """Refuse, in one line, what ``twin drafts`` must not start with (before any login or network)."""
    if o.mode not in MODES:
        raise TwinError(f"--mode {o.mode!r}: choose one of {', '.join(MODES)}")
    if not o.chats and o.recent is None:
        raise TwinError(
            "choose the chats: --chat NAME (repeatable: user id, @username or exact name) or --recent N"
        )
    if o.recent is not None and o.recent < 1:
        raise TwinError(f"--recent must be at least 1, got {o.recent}")
    check_number("--debounce", o.debounce, low=0, high=86400)
    check_number("--max-new-tokens", o.max_new_tokens, low=1)
    check_number("--temperature", o.temperature, low=0)
    check_number("--gap-hours", o.gap_hours, above=0)
    check_number("--feedback-hours", o.feedback_hours, above=0)
    if not o.server.startswith(("http://", "https://")):
        raise TwinError(f"--server {o.server!r}: give the twin server's URL, e.g. {DEFAULT_SERVER}")
    check_region(o.region)
    if o.mode == "send":
        check_send(o)


def check_region(region: str) -> None:
    import phonenumbers

    parts = [p.strip().upper() for p in region.split(",") if p.strip()]
    bad = [p for p in parts if p not in phonenumbers.SUPPORTED_REGIONS]
    if not parts or bad:
        raise TwinError(
            f"--region {region!r}: use ISO codes such as US or US,RU (as in `twin prepare --region`)"
        )


def check_send(o: DraftsOptions) -> None:
    if not o.i_understand_it_sends:
        raise TwinError("--mode send sends messages in your name: add --i-understand-it-sends to confirm")
    if not o.chats or o.recent is not None:
        raise TwinError(
            "--mode send answers only chats named with --chat (at least one; --recent is not allowed)"
        )
    if o.max_per_hour < 1:
        raise TwinError(
            f"--mode send needs a rate limit: --max-per-hour must be at least 1, got {o.max_per_hour}"
        )
    if o.chars_per_second <= 0:
        raise TwinError(f"--chars-per-second must be above 0, got {o.chars_per_second}")
