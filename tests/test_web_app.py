"""The Streamlit chat page (web/app.py) with Streamlit's AppTest, against a real twin server on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "web" / "app.py"


@pytest.fixture(scope="module")
def engine(tiny_base, tiny_adapter):
    from twin.serve.engine import Engine

    return Engine(tiny_base, [("twin", tiny_adapter)])


@pytest.fixture(scope="module")
def server(engine):
    from live_server import serve_in_thread

    from twin.serve.app import create_app

    with serve_in_thread(create_app(engine, token="")) as url:
        yield url


def page(monkeypatch, url: str):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("TWIN_SERVER_URL", url)
    monkeypatch.delenv("TWIN_API_TOKEN", raising=False)
    at = AppTest.from_file(str(PAGE), default_timeout=90)
    at.run()
    assert not at.exception, at.exception
    return at


def test_chat_round_trip(server, monkeypatch):
    at = page(monkeypatch, server)
    assert at.sidebar.text_input(key="server").value == server
    assert at.sidebar.selectbox(key="adapter").options == ["twin", "base"]
    assert at.sidebar.selectbox(key="adapter").value == "twin"
    assert not at.error
    at.sidebar.slider(key="temperature").set_value(0.0)
    at.sidebar.slider(key="max_tokens").set_value(16)
    at.chat_input[0].set_value("are you coming to dinner?").run()
    assert not at.exception and not at.error
    turns = at.session_state["turns"]
    assert [t["role"] for t in turns] == ["them", "me"]
    # The page sent the sidebar's settings: same reply as asking the API directly.
    direct = httpx.post(
        server + "/reply",
        json={
            "message": "are you coming to dinner?",
            "history": [],
            "temperature": 0.0,
            "top_p": 0.9,
            "max_new_tokens": 16,
            "adapter": "twin",
        },  # fmt: skip
        timeout=60,
    ).json()
    assert turns[1]["text"] == direct["reply"]
    assert any("tokens/s" in c.value for c in at.caption)

    at.chat_input[0].set_value("ok see you").run()
    assert [t["role"] for t in at.session_state["turns"]] == ["them", "me", "them", "me"]

    regen = next(b for b in at.sidebar.button if b.label.startswith("Regenerate"))
    regen.click().run()
    assert [t["role"] for t in at.session_state["turns"]] == ["them", "me", "them", "me"]
    clear = next(b for b in at.sidebar.button if b.label.startswith("Clear"))
    clear.click().run()
    assert at.session_state["turns"] == []


def test_server_down_says_what_to_run(monkeypatch):
    from live_server import free_port

    at = page(monkeypatch, f"http://127.0.0.1:{free_port()}")
    assert at.error and "make serve" in at.error[0].value
    at.chat_input[0].set_value("hello?").run()
    assert not at.exception
    assert any("make serve" in e.value for e in at.error)
    assert [t["role"] for t in at.session_state["turns"]] == ["them"]  # kept, for a retry


def test_protected_server_needs_the_token(engine, monkeypatch):
    from live_server import serve_in_thread

    from twin.serve.app import create_app

    with serve_in_thread(create_app(engine, token="page-secret")) as url:
        at = page(monkeypatch, url)
        assert at.error and "TWIN_API_TOKEN" in at.error[0].value
        monkeypatch.setenv("TWIN_API_TOKEN", "page-secret")
        at.run()
        assert not at.error and at.sidebar.selectbox(key="adapter").options == ["twin", "base"]
        at.chat_input[0].set_value("hi").run()
        assert [t["role"] for t in at.session_state["turns"]] == ["them", "me"]


def test_page_never_imports_torch():
    """Run the page's script bare (no server): it must not pull in torch or the model code."""
    code = (
        "import runpy, sys, logging; logging.disable(logging.WARNING)\n"
        f"runpy.run_path({str(PAGE)!r}, run_name='__main__')\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'twin.model') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    env = {**os.environ, "TWIN_SERVER_URL": "http://127.0.0.1:9"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, cwd=ROOT
    )
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


def test_twin_chat_command_line():
    from twin.serve.cli import chat_command

    cmd = chat_command("http://127.0.0.1:8000", 8599, "127.0.0.1")
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4] == str(PAGE)
    opts = dict(zip(cmd[5:-3:2], cmd[6:-3:2], strict=True))
    assert opts["--browser.gatherUsageStats"] == "false" and opts["--server.address"] == "127.0.0.1"
    assert opts["--server.port"] == "8599" and cmd[-3:] == ["--", "--server", "http://127.0.0.1:8000"]
    import tomllib

    cfg = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert cfg["browser"]["gatherUsageStats"] is False and cfg["server"]["address"] == "127.0.0.1"
