"""The Streamlit chat page (web/app.py) with Streamlit's AppTest, against a real twin server on loopback."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from helpers.eval_samples import write_eval_samples

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "web" / "app.py"


@pytest.fixture(scope="module")
def engine(tiny_base, tiny_adapter):
    from twin.serve.engine import Engine

    return Engine(tiny_base, [("twin", tiny_adapter)])


@pytest.fixture(scope="module")
def server(engine):
    from devkit.live_server import serve_in_thread
    from twin.serve.app import create_app

    with serve_in_thread(create_app(engine, token="")) as url:
        yield url


def page(monkeypatch, url: str, token: str | None = None, query: dict | None = None):
    """The page as `twin chat --server URL` starts it (token from $TWIN_API_TOKEN), after its first run."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("TWIN_SERVER_URL", url)
    if token:
        monkeypatch.setenv("TWIN_API_TOKEN", token)
    else:
        monkeypatch.delenv("TWIN_API_TOKEN", raising=False)
    at = AppTest.from_file(str(PAGE), default_timeout=90)
    at.query_params.update(query or {})
    at.run()
    assert not at.exception, at.exception
    return at


class Recorder(http.server.BaseHTTPRequestHandler):
    """Another host on a real socket: answers like a twin server and records every request it gets."""

    seen: list[dict]

    def _answer(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> str:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        self.seen.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                          "body": body})  # fmt: skip
        return body

    def do_GET(self) -> None:  # noqa: N802
        self._record()
        if self.path == "/adapters":
            self._answer({"default": "other", "adapters": [{"name": "other", "template": "plain-v1",
                                                            "default": True}]})  # fmt: skip
        else:
            self._answer({"status": "ok"})

    def do_POST(self) -> None:  # noqa: N802
        self._record()
        self._answer({"reply": "from the other host", "adapter": "other", "latency_s": 0.01,
                      "tokens_per_s": 1.0, "usage": {"prompt_tokens": 1, "completion_tokens": 1}})  # fmt: skip

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def other_host():
    """(url, requests seen) of a listening HTTP server standing in for a host the page was linked to."""
    seen: list[dict] = []
    handler = type("Handler", (Recorder,), {"seen": seen})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", seen
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(scope="module")
def protected_server(engine):
    from devkit.live_server import serve_in_thread
    from twin.serve.app import create_app

    with serve_in_thread(create_app(engine, token="page-secret")) as url:
        yield url


def test_a_linked_server_gets_nothing_until_confirmed_and_never_the_token(
    protected_server, other_host, monkeypatch
):
    other, seen = other_host
    at = page(monkeypatch, protected_server, token="page-secret", query={"server": other})
    # The link's URL is shown, with a question; the page keeps talking to the launch server.
    assert at.sidebar.text_input(key="server").value == other
    assert any(other in w.value and "token never" in w.value for w in at.sidebar.warning)
    assert at.sidebar.selectbox(key="adapter").options == ["twin", "base"]
    at.chat_input[0].set_value("my secret plans for saturday").run()
    assert not at.exception and not at.error
    assert [t["role"] for t in at.session_state["turns"]] == ["them", "me"]
    assert at.session_state["turns"][1]["text"] != "from the other host"
    assert seen == []  # not one request: no token, no chat text, no /adapters call

    at.sidebar.button(key="confirm_server").click().run()
    assert not at.exception
    assert at.sidebar.selectbox(key="adapter").options == ["other"]
    at.chat_input[0].set_value("now it may see this").run()
    assert at.session_state["turns"][-1]["text"] == "from the other host"
    assert seen and all("authorization" not in r["headers"] for r in seen)
    assert not any("page-secret" in json.dumps(r) for r in seen)
    sent = [json.loads(r["body"]) for r in seen if r["path"] == "/reply"]
    assert sent[-1]["message"] == "now it may see this"


def test_a_server_typed_in_the_sidebar_needs_confirming_too(protected_server, other_host, monkeypatch):
    other, seen = other_host
    at = page(monkeypatch, protected_server, token="page-secret")
    assert at.sidebar.text_input(key="server").value == protected_server
    assert not at.sidebar.warning
    at.sidebar.text_input(key="server").set_value(other + "/").run()
    at.chat_input[0].set_value("still private").run()
    assert [t["role"] for t in at.session_state["turns"]] == ["them", "me"] and seen == []
    at.sidebar.button(key="confirm_server").click().run()
    at.chat_input[0].set_value("hello other").run()
    assert seen and all("authorization" not in r["headers"] for r in seen)
    # back to the launch server: the token goes with it again, and the chat carries on
    at.sidebar.text_input(key="server").set_value(protected_server).run()
    assert not at.sidebar.warning and not at.error
    at.chat_input[0].set_value("and back").run()
    assert not at.error and at.session_state["turns"][-1]["text"] != "from the other host"


def test_a_link_that_is_not_a_server_url_is_refused(server, monkeypatch):
    at = page(monkeypatch, server, query={"server": "![x](https://evil.example/p.png)"})
    assert "not a server URL" in at.sidebar.error[0].value and "evil" not in at.sidebar.error[0].value
    assert not at.sidebar.warning and all(b.key != "confirm_server" for b in at.sidebar.button)
    assert at.sidebar.selectbox(key="adapter").options == ["twin", "base"]  # still the launch server


def test_sixty_exchanges_all_answered(server, monkeypatch):
    """The server takes at most 100 history turns (stated in /healthz); the page sends the newest that fit."""
    limits = httpx.get(server + "/healthz").json()["limits"]
    assert limits["max_history"] == 100
    at = page(monkeypatch, server)
    at.sidebar.slider(key="temperature").set_value(0.0)
    at.sidebar.slider(key="max_tokens").set_value(8)
    for i in range(60):
        at.chat_input[0].set_value(f"message number {i}").run()
        assert not at.exception and not at.error, (i, at.error)
    turns = at.session_state["turns"]
    assert len(turns) == 120 and [t["role"] for t in turns] == ["them", "me"] * 60


def test_page_follows_the_caps_the_server_states(engine, monkeypatch):
    from devkit.live_server import serve_in_thread
    from twin.serve.app import create_app
    from twin.serve.schemas import Limits

    app = create_app(engine, token="", limits=Limits(max_history=3, max_new_tokens=8, max_message_chars=40))
    with serve_in_thread(app) as url:
        at = page(monkeypatch, url)  # max tokens slider at 64: over the server's cap of 8
        for text in ("one", "two", "three"):
            at.chat_input[0].set_value(text).run()
            assert not at.error, at.error
        assert len(at.session_state["turns"]) == 6
        at.chat_input[0].set_value("x" * 41).run()
        assert "at most 40" in at.error[0].value


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
    from devkit.live_server import free_port

    at = page(monkeypatch, f"http://127.0.0.1:{free_port()}")
    assert at.error and "make serve" in at.error[0].value
    at.chat_input[0].set_value("hello?").run()
    assert not at.exception
    assert any("make serve" in e.value for e in at.error)
    assert [t["role"] for t in at.session_state["turns"]] == ["them"]  # kept, for a retry


def test_a_page_opened_before_the_server_follows_its_caps_once_it_is_up(engine, monkeypatch):
    """The page asked /healthz at the first message, found no server and kept twin serve's defaults for
    the session: once `make serve` was up with a lower cap, every request was refused (422)."""
    from devkit.live_server import free_port, serve_in_thread
    from twin.serve.app import create_app
    from twin.serve.schemas import Limits

    port = free_port()
    at = page(monkeypatch, f"http://127.0.0.1:{port}")  # max tokens slider at 64
    at.chat_input[0].set_value("hello?").run()
    assert any("make serve" in e.value for e in at.error)
    app = create_app(engine, token="", limits=Limits(max_new_tokens=8))
    with serve_in_thread(app, port=port):
        next(b for b in at.sidebar.button if b.label.startswith("Regenerate")).click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
    assert [t["role"] for t in at.session_state["turns"]] == ["them", "me"]


def test_protected_server_needs_the_token(engine, monkeypatch):
    from devkit.live_server import serve_in_thread
    from twin.serve.app import create_app

    with serve_in_thread(create_app(engine, token="page-secret")) as url:
        at = page(monkeypatch, url)
        assert at.error and "TWIN_API_TOKEN" in at.error[0].value
        monkeypatch.setenv("TWIN_API_TOKEN", "page-secret")
        at.run()
        assert not at.error and at.sidebar.selectbox(key="adapter").options == ["twin", "base"]
        at.chat_input[0].set_value("hi").run()
        assert [t["role"] for t in at.session_state["turns"]] == ["them", "me"]


@pytest.mark.slow
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


def test_blind_tab_without_eval_says_run_make_eval(server, tmp_path, monkeypatch):
    monkeypatch.setenv("TWIN_RUNS_DIR", str(tmp_path / "runs"))
    at = page(monkeypatch, server)
    assert any("make eval" in i.value for i in at.info)
    assert not at.error


def test_blind_tab_rounds_go_to_blind_jsonl(protected_server, processed_dir, tmp_path, monkeypatch):
    from twin.eval.blind import blind_score

    runs = tmp_path / "runs"
    rows = write_eval_samples(runs, "twin", processed_dir)
    monkeypatch.setenv("TWIN_RUNS_DIR", str(runs))
    at = page(monkeypatch, protected_server, token="page-secret")  # the token rules hold here too
    assert at.selectbox(key="blind_run").value == "twin"  # the run named like the chosen adapter
    at.sidebar.slider(key="temperature").set_value(0.0)
    at.sidebar.slider(key="max_tokens").set_value(16)
    at.number_input(key="blind_rounds").set_value(3)
    at.button(key="blind_start").click().run()
    assert not at.exception and not at.error
    wanted = {"real": "real", "twin": None, "unsure": "unsure"}
    shown = []
    for choice in wanted:
        rnd = at.session_state["blind"]["round"]
        row, twin_side = rows[rnd["prompt"]], "B" if rnd["real"] == "A" else "A"
        assert rnd["replies"][rnd["real"]] == row["real"]
        # the twin's side is the server's live answer to that prompt, with the page's settings
        direct = httpx.post(protected_server + "/reply", headers={"Authorization": "Bearer page-secret"},
                            json={"message": row["message"], "history": row["context"], "contact": row["contact"],
                                  "temperature": 0.0, "top_p": 0.9, "max_new_tokens": 16, "adapter": "twin"},
                            timeout=60).json()  # fmt: skip
        assert rnd["replies"][twin_side] == direct["reply"]
        texts = [t.value for t in at.text]
        assert any(t.endswith(": " + row["message"]) for t in texts) and row["real"] in texts
        pick = {"real": rnd["real"], "twin": twin_side, "unsure": "unsure"}[choice]
        shown.append((rnd["prompt"], rnd["real"], pick))
        at.button(key=f"blind_pick_{pick}").click().run()
        assert not at.exception and not at.error
    assert "twin's reply for yours 1 times" in at.success[0].value

    path = runs / "twin" / "blind.jsonl"
    saved = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["prompt"], r["real"], r["pick"]) for r in saved] == shown
    assert all(r["run"] == "twin" and r["adapter"] == "twin" and r["seconds"] >= 0 for r in saved)
    assert len({r["prompt"] for r in saved}) == 3
    # ids and sides only: none of the chat text of those prompts is in the file
    raw = path.read_text()
    for r in saved:
        row = rows[r["prompt"]]
        for text in [row["message"], row["real"], *(t["text"] for t in row["context"])]:
            assert len(text) < 6 or text not in raw
    score = blind_score(path)
    assert score["rounds"] == 3 and score["rate"] == 0.5  # one twin pick + half of one "can't tell"


def test_blind_tab_needs_the_server_and_never_shows_the_stored_reply(processed_dir, tmp_path, monkeypatch):
    from devkit.live_server import free_port

    runs = tmp_path / "runs"
    write_eval_samples(runs, "me", processed_dir)
    monkeypatch.setenv("TWIN_RUNS_DIR", str(runs))
    at = page(monkeypatch, f"http://127.0.0.1:{free_port()}")
    at.button(key="blind_start").click().run()
    assert not at.exception
    assert any("make serve" in e.value for e in at.error)
    assert at.session_state["blind"]["round"] is None and at.button(key="blind_retry")
    assert not any(t.value == "t" for t in at.text)  # the stored `twin` field is never a stand-in
    assert not (runs / "me" / "blind.jsonl").exists()


@pytest.mark.parametrize("server", ["127.0.0.1:8000", "localhost", "htp://127.0.0.1:8000"])
def test_twin_chat_refuses_a_server_that_is_not_a_url_in_one_line(server):
    """`twin chat --server 127.0.0.1:8000` started the page, which then said it could not reach the
    server and to run `make serve`: wrong advice, the server was up and the URL lacked its scheme."""
    from devkit.live_server import free_port

    cmd = [sys.executable, "-m", "twin.cli", "chat", "--server", server, "--port", str(free_port())]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"error: --server {server}: give the server's URL, e.g. http://127.0.0.1:8000"
    ]
