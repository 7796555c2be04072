"""End to end in a real headless Chromium: the chat page against a running twin server.

Debian's ``chromium`` (``make browser`` installs it) driven by Playwright. The page runs as
``twin chat`` runs it (the test starts ``twin chat``) on a free loopback port; the twin
server runs on uvicorn on another. Skips, with the reason printed, only when Chromium is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devkit.live_server import serve_in_thread, twin_process

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("TWIN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip

pytestmark = pytest.mark.browser


def _skip(reason: str) -> None:
    print(f"SKIP test_browser: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def runs_dir(processed_dir, tmp_path_factory) -> Path:
    """A runs dir with one evaluated run, ``twin``, for the blind-test tab."""
    from helpers.eval_samples import write_eval_samples

    runs = tmp_path_factory.mktemp("runs")
    write_eval_samples(runs, "twin", processed_dir)
    return runs


@pytest.fixture(scope="module")
def chat_page(tiny_base, tiny_adapter, runs_dir):
    if not Path(CHROMIUM).is_file():
        _skip(f"no Chromium at {CHROMIUM}; install it with `make browser` (apt-get install chromium)")
    from twin.serve.app import create_app
    from twin.serve.engine import Engine

    app = create_app(Engine(tiny_base, [("twin", tiny_adapter)]), token="")
    with serve_in_thread(app) as server:
        env = {**os.environ, "TWIN_SERVER_URL": server, "TWIN_RUNS_DIR": str(runs_dir)}
        env.pop("TWIN_API_TOKEN", None)
        # Exactly what `make chat` runs (`twin chat` execs the `streamlit run` command line).
        with twin_process("chat", "--server", server, health="/_stcore/health", env=env, timeout=90) as url:
            yield url


@contextlib.contextmanager
def _page(url: str, height: int) -> Iterator[Any]:
    """A fresh Chromium tab on ``url`` (60 s default timeout); the browser closes afterwards."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": height})
            page.set_default_timeout(60_000)
            page.goto(url)
            yield page
        finally:
            browser.close()


def test_send_a_message_and_see_the_twins_reply(chat_page):
    from playwright.sync_api import expect

    with _page(chat_page, 900) as page:
        # The adapter picker filled from GET /adapters: the server is reachable.
        expect(page.get_by_text("Chat with your twin")).to_be_visible()
        expect(page.locator("section[data-testid='stSidebar']").get_by_text("twin").first).to_be_visible()
        box = page.get_by_placeholder("Write as them")
        box.fill("hey, are we still on for dinner tonight?")
        box.press("Enter")
        # streamlit-chat draws each bubble in its own component iframe: theirs, then the twin's.
        frames = page.locator("iframe[title='streamlit_chat.streamlit_chat']")
        expect(frames).to_have_count(2, timeout=90_000)
        theirs = page.frame_locator("iframe[title='streamlit_chat.streamlit_chat']").nth(0).locator(".chat")
        reply = page.frame_locator("iframe[title='streamlit_chat.streamlit_chat']").nth(1).locator(".chat")
        expect(theirs).to_contain_text("dinner tonight")
        expect(theirs).to_have_class("chat user")
        expect(reply).to_be_visible()
        expect(reply).not_to_have_class("chat user")  # the twin's side, not the typist's
        text = reply.inner_text().strip()
        assert text and "dinner tonight" not in text
        expect(page.get_by_text("tokens/s")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "browser_chat.png"), full_page=True)
    assert (ARTIFACTS / "browser_chat.png").stat().st_size > 10_000


def test_blind_test_tab_records_a_pick(chat_page, runs_dir):
    from playwright.sync_api import expect

    with _page(chat_page, 1100) as page:
        page.get_by_role("tab", name="Is it me?").click()
        page.get_by_role("button", name="Start the blind test").click()
        # the twin's reply comes live from the server; then both replies and the three choices
        expect(page.get_by_text("Which reply did you write?")).to_be_visible(timeout=90_000)
        expect(page.get_by_text("Round 1 of 16")).to_be_visible()
        page.get_by_role("button", name="A is mine").click()
        expect(page.get_by_text("Round 2 of 16")).to_be_visible(timeout=90_000)
        page.screenshot(path=str(ARTIFACTS / "browser_blind.png"), full_page=True)
    saved = [json.loads(line) for line in (runs_dir / "twin" / "blind.jsonl").read_text().splitlines()]
    assert len(saved) == 1 and saved[0]["pick"] == "A" and saved[0]["real"] in ("A", "B")
    assert saved[0]["run"] == "twin" and isinstance(saved[0]["prompt"], int)
