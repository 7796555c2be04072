"""``twin drafts``: open the export's Telegram session, pick the chats, watch until stopped.

:func:`watch` takes any logged-in client with telethon's interface (the tests pass the fake one
from ``tests/helpers/fake_telethon.py``); :func:`run_drafts` is the command: credentials, session file,
the real telethon client, and the exit paths (Ctrl-C, revoked session).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twin.drafts.chats import Chat, resolve_chats
from twin.drafts.options import DraftsOptions, check_options
from twin.drafts.server import TwinServer, check_server
from twin.drafts.watcher import SESSION_GONE, Sleep, Stats, Watcher
from twin.errors import TwinError
from twin.feedback import check_dir
from twin.telegram import (
    Credentials,
    load_credentials,
    login,
    prepare_session,
    secure_session,
    session_file,
    telethon_client,
)

log = logging.getLogger(__name__)

ClientFactory = Callable[[Path, int, str], Any]


async def pick_chats(client: Any, options: DraftsOptions, sleep: Sleep) -> list[Chat]:
    from telethon.errors import FloodWaitError

    while True:
        try:
            return await resolve_chats(client, options.chats, options.recent)
        except FloodWaitError as e:
            log.warning("Telegram asks to wait %d s (flood limit) before listing your chats", e.seconds)
            await sleep(e.seconds + 1)


async def watch(
    client: Any,
    options: DraftsOptions,
    *,
    sleep: Sleep = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    out: Callable[[str], None] = print,
) -> Stats:
    """Watch the chosen chats of a logged-in ``client`` until it disconnects (or a fatal error)."""
    from telethon import events

    chats = await pick_chats(client, options, sleep)
    defaults = {
        "adapter": options.adapter,
        "max_new_tokens": options.max_new_tokens,
        "temperature": options.temperature,
    }
    server = TwinServer(options.server, options.token, options.server_timeout_s, defaults)
    watcher = Watcher(client, chats, server, options, sleep=sleep, clock=clock, out=out)
    # Both directions: theirs start suggestions, yours (from any device) are what you did with them.
    client.add_event_handler(watcher.on_event, events.NewMessage(chats=[c.peer_id for c in chats]))
    log.info("watching %d chat(s) (%s) in --mode %s%s, server %s; Ctrl-C to stop",
             len(chats), ", ".join(c.label() for c in chats), options.mode,
             " (dry run)" if options.dry_run else "", options.server)  # fmt: skip
    try:
        await watcher.until_stopped()
    finally:
        await watcher.close()
        log.info("stopped: %s", watcher.stats.summary())
    if watcher.fatal is not None:
        raise watcher.fatal
    return watcher.stats


async def _connect(client: Any, first_login: bool, phone: str | None, sleep: Sleep) -> None:
    if first_login:  # no session yet: the same interactive login as `twin export telegram`
        await login(client, phone, sleep)
        return
    try:
        await client.connect()
    except (OSError, ConnectionError) as e:
        raise TwinError(
            f"cannot reach Telegram ({type(e).__name__}); check the network and run again"
        ) from None
    if not await client.is_user_authorized():
        raise TwinError(SESSION_GONE)


async def _main(options: DraftsOptions, path: Path, factory: ClientFactory, creds: Credentials, **kw: Any):
    first_login = not path.is_file() or path.stat().st_size == 0
    client = factory(
        path, creds.api_id, creds.api_hash
    )  # built inside the running loop: telethon binds to it
    try:
        await _connect(client, first_login, creds.phone, kw.get("sleep", asyncio.sleep))
        secure_session(path)
        return await watch(client, options, **kw)
    finally:
        with contextlib.suppress(Exception):
            await client.disconnect()
        secure_session(path)


def _catch_up_client(session_path: Path, api_id: int, api_hash: str) -> Any:
    # catch_up: messages that arrived while the connection was lost are delivered after reconnecting.
    return telethon_client(session_path, api_id, api_hash, catch_up=True)


def run_drafts(
    options: DraftsOptions,
    *,
    client_factory: ClientFactory | None = None,
    sleep: Sleep = asyncio.sleep,
    out: Callable[[str], None] = print,
) -> Stats:
    """The command: refuse bad options, open the session of ``twin export telegram`` (or log in the same way), watch."""
    check_options(options)
    if options.feedback_dir is not None:
        check_dir(options.feedback_dir)  # 0700, or one line saying why not, before any login
    options.token = options.token if options.token is not None else os.environ.get("TWIN_API_TOKEN") or None
    check_server(options.server, options.token, options.adapter, options.max_new_tokens)
    creds = load_credentials(options.env_file)
    path = session_file(options.session)
    prepare_session(path)  # 0700 folder, 0600 file, as for the export
    return asyncio.run(_main(options, path, client_factory or _catch_up_client, creds, sleep=sleep, out=out))
