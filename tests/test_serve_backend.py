"""``twin serve --backend URL``: generation by an OpenAI-compatible /v1/completions server while twin
renders the prompt and keeps its routes, limits, auth and streaming. The real peer is llama.cpp's
server (llama-cpp-python's, on loopback) on the merged f32 GGUF of the twin's adapter: the same greedy
settings give the same reply text as twin's own engine on the same weights."""

from __future__ import annotations

import json
import os

import pytest

from twin.errors import TwinError
from twin.inference.generate import Conversation, GenParams, visible_text
from twin.serve.backend import ShownText, check_backend_url, completion_body

MESSAGES = ["are you coming tonight?", "did you see the game", "what time is dinner", "call me when you land"]


def test_backend_url_is_checked_before_anything_loads(tmp_path):
    from twin.serve.backend import RemoteEngine

    assert check_backend_url("http://127.0.0.1:8080/v1/") == "http://127.0.0.1:8080"
    with pytest.raises(TwinError, match="--backend ftp://x: must be an http"):
        RemoteEngine("ftp://x", tmp_path / "no-such-base")


def test_pieces_are_shown_as_twin_shows_a_reply():
    """Text arriving in pieces (as a backend streams it) gives the deltas twin's engine gives: the
    opening speaker label dropped, trailing space held back, nothing past a stop string."""
    stops = ("\nAlice:", "\nMe:")
    text = "Me: sure, at 7 \nsee you  \nAlice: ok"
    shown = ShownText(stops)
    deltas = [shown.add(ch) for ch in text] + [shown.add("", final=True)]
    want, stopped = visible_text(text, stops, final=True)
    assert "".join(deltas) == want == "sure, at 7 \nsee you" and stopped and shown.stopped


def test_the_request_carries_twin_sampling_settings():
    body = completion_body(
        "twin", "P", GenParams(max_new_tokens=9, temperature=0, top_k=0, seed=5), ("\nMe:",)
    )
    assert body["model"] == "twin" and body["max_tokens"] == 9 and body["temperature"] == 0
    assert body["top_k"] == 0 and body["min_p"] == 0.0 and body["stop"] == ["\nMe:"] and body["stream"]
    assert "seed" not in body  # greedy: a seed means nothing
    assert body["add_special_tokens"] is False


# ---------------------------------------------------------------- against a real llama.cpp server


@pytest.fixture(scope="module")
def llama_server(request, tmp_path_factory):
    pytest.importorskip(
        "llama_cpp.server",
        reason="llama-cpp-python[server] not installed (optional, builds from source: see the Makefile's llama-cpp)",
    )
    tiny_base, tiny_adapter = request.getfixturevalue("tiny_base"), request.getfixturevalue("tiny_adapter")
    from devkit.live_server import llama_cpp_process
    from twin.publish.gguf import export_gguf
    from twin.publish.merge import merge_adapter

    out = tmp_path_factory.mktemp("backend")
    merged = merge_adapter(tiny_base, tiny_adapter, out / "merged", dtype="float32")
    gguf = export_gguf(merged, out / "gguf", outtype="f32", name="twin")["gguf"]
    with llama_cpp_process(gguf, "twin") as (url, _proc):
        yield url


@pytest.fixture(scope="module")
def apps(llama_server, tiny_base, tiny_adapter):
    """A twin app on the backend and one on twin's own engine, same adapter, same limits."""
    from devkit.live_server import serve_in_thread
    from twin.serve.app import create_app
    from twin.serve.backend import RemoteEngine
    from twin.serve.engine import Engine

    remote = RemoteEngine(llama_server, tiny_base, [("twin", tiny_adapter)], max_batch=4)
    local = Engine(tiny_base, [("twin", tiny_adapter)], max_batch=4)
    with (
        serve_in_thread(create_app(remote, token="")) as r,
        serve_in_thread(create_app(local, token="")) as here,
    ):
        yield {"backend": r, "twin": here}


GREEDY = {"temperature": 0, "repetition_penalty": 1.0, "top_k": 0, "max_new_tokens": 24}  # top_k 0: off


@pytest.mark.slow
def test_backend_replies_equal_twins_own_engine(apps):
    import httpx

    history = [{"role": "them", "text": "hey"}, {"role": "me", "text": "hi, what's up"}]
    for i, message in enumerate(MESSAGES):
        body = {"message": message, "history": history[: i % 3], "contact": "Alice", **GREEDY}
        got = {k: httpx.post(url + "/reply", json=body, timeout=120).json() for k, url in apps.items()}
        assert got["backend"]["reply"] == got["twin"]["reply"], (message, got)
        assert got["backend"]["usage"]["prompt_tokens"] == got["twin"]["usage"]["prompt_tokens"]
        assert got["backend"]["adapter"] == "twin"
        # Same tokens, not just the same text: llama.cpp stopped where twin's engine stopped.
        assert got["backend"]["usage"]["completion_tokens"] == got["twin"]["usage"]["completion_tokens"]
        assert got["backend"]["finish_reason"] == got["twin"]["finish_reason"]


@pytest.mark.slow
def test_backend_streams_and_speaks_openai(apps):
    import httpx

    body = {"message": MESSAGES[0], **GREEDY}
    whole = httpx.post(apps["backend"] + "/reply", json=body, timeout=120).json()["reply"]
    deltas, done = [], None
    with httpx.stream("POST", apps["backend"] + "/reply/stream", json=body, timeout=120) as r:
        event = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "token":
                deltas.append(json.loads(line[6:])["text"])
            elif line.startswith("data: ") and event == "done":
                done = json.loads(line[6:])
    assert "".join(deltas) == whole == done["reply"]
    chat = {"model": "twin", "messages": [{"role": "user", "content": MESSAGES[0]}], "temperature": 0,
            "repetition_penalty": 1.0, "max_tokens": 24}  # fmt: skip
    got = {k: httpx.post(u + "/v1/chat/completions", json=chat, timeout=120).json() for k, u in apps.items()}
    assert (
        got["backend"]["choices"][0]["message"]["content"] == got["twin"]["choices"][0]["message"]["content"]
    )
    r = httpx.post(apps["backend"] + "/reply", json={**body, "adapter": "nope"}, timeout=30)
    assert r.status_code == 404  # twin's own checks still answer before the backend is asked


def test_remote_and_local_engines_render_and_cut_the_same_prompt(engine):
    """Both engines are a ReplyEngine: the same adapters by name, the same prompt ids (cut to the room
    the reply leaves in the base's positions) and stops, and the same refusal when nothing fits."""
    from twin.serve.backend import RemoteEngine
    from twin.serve.engine import ReplyEngine

    pairs = [(n, a.path) for n, a in engine.adapters.items() if a.path is not None]
    remote = RemoteEngine("http://127.0.0.1:9", engine.base_path, pairs, max_batch=2)
    assert isinstance(remote, ReplyEngine) and isinstance(engine, ReplyEngine)
    assert remote.names == engine.names and remote.default == engine.default
    history = [{"role": "them" if i % 2 else "me", "text": f"message number {i} " * 20} for i in range(40)]
    params = GenParams(max_new_tokens=900, temperature=0)
    for name in ("twin", "base"):
        mine = engine.prompt_ids(engine.resolve(name), Conversation(history, "and now?", "Alice"), params)
        theirs = remote.prompt_ids(remote.resolve(name), Conversation(history, "and now?", "Alice"), params)
        assert mine == theirs
        assert len(mine[1]) <= engine.positions - 900 and "\nAlice:" in mine[0].extra_stops
    with pytest.raises(TwinError, match="below the model's"):
        remote.prompt_ids(
            remote.resolve(None), Conversation([], "hi"), GenParams(max_new_tokens=engine.positions)
        )


# ---------------------------------------------------------------- a backend that is down or misnamed


def _canned_backend(answers: dict[str, tuple[int, str, bytes]]):
    """A local HTTP server answering each method (GET, POST) with one canned ``(status, type, body)``:
    the faulty backends a real one is not (a proxy's garbage, a server without the model)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            self.rfile.read(int(self.headers.get("content-length") or 0))
            status, kind, data = answers[self.command]
            self.send_response(status)
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def not_the_model():
    """An OpenAI-shaped server that serves a model named `other` only (404 for any other name), as
    llama.cpp's server started without the adapter's --model_alias does."""
    models = {"object": "list", "data": [{"id": "other", "object": "model"}]}
    missing = {"error": {"message": "model not found", "type": "invalid_request_error"}}
    server = _canned_backend({"GET": (200, "application/json", json.dumps(models).encode()),
                              "POST": (404, "application/json", json.dumps(missing).encode())})  # fmt: skip
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _backend_app(url, tiny_base, adapters):
    from twin.serve.app import create_app
    from twin.serve.backend import RemoteEngine

    return create_app(RemoteEngine(url, tiny_base, adapters, max_batch=2), token="")


def test_a_backend_that_does_not_answer_is_said_at_start_and_is_a_503_per_request(tiny_base, caplog):
    """It was a silent start, then a 500 "internal error" and uvicorn's traceback for every request."""
    import logging

    import httpx

    from devkit.live_server import free_port, serve_in_thread

    caplog.set_level(logging.INFO, logger="twin")
    down = f"http://127.0.0.1:{free_port()}"
    with serve_in_thread(_backend_app(down, tiny_base, [])) as url:
        assert f"the backend at {down} does not answer (ConnectError)" in caplog.text
        r = httpx.post(url + "/reply", json={"message": "hey"}, timeout=30)
        assert r.status_code == 503 and r.headers["retry-after"] == "5", r.text
        assert r.json()["error"]["message"].startswith(f"the generation backend at {down} does not answer")
        with httpx.stream("POST", url + "/reply/stream", json={"message": "hey"}, timeout=30) as s:
            frames = "".join(s.iter_text())
        assert "event: error" in frames and "does not answer (ConnectError)" in frames
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_backend_without_a_model_of_the_adapters_name_is_said_at_start_and_is_a_502(
    tiny_base, random_lora_adapter, not_the_model, caplog
):
    """It was a silent start, then a 400 (as if the request were at fault) and nothing in the log."""
    import logging

    import httpx

    from devkit.live_server import serve_in_thread

    caplog.set_level(logging.INFO, logger="twin")
    with serve_in_thread(_backend_app(not_the_model, tiny_base, [("me", random_lora_adapter)])) as url:
        assert f"the backend at {not_the_model} serves other, not me" in caplog.text
        r = httpx.post(url + "/reply", json={"message": "hey", "max_new_tokens": 4}, timeout=30)
    assert r.status_code == 502, r.text
    assert (
        "answered 404 for model 'me' (is a model of that name served there?)" in r.json()["error"]["message"]
    )
    assert "answered 404 for model 'me': 502" in caplog.text and "hey" not in caplog.text


@pytest.fixture
def garbled_backend():
    """An OpenAI-shaped server whose completion stream is not JSON (a broken proxy, a wrong port)."""
    server = _canned_backend({"GET": (200, "application/json", b'{"data": [{"id": "me"}]}'),
                              "POST": (200, "text/event-stream", b"data: <html>oops</html>\n\n")})  # fmt: skip
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_failed_request_is_one_log_line_without_uvicorns_traceback(
    tiny_base, random_lora_adapter, garbled_backend, tmp_path
):
    """A request that failed in twin was answered 500 and then uvicorn printed "Exception in ASGI
    application" with the whole traceback (exception messages included, which may quote chat text)."""
    import httpx

    from devkit.live_server import twin_process

    log = tmp_path / "serve.log"
    args = ("--backend", garbled_backend, "--base", str(tiny_base), "--adapter", f"me={random_lora_adapter}")
    with twin_process(
        "serve", *args, health="/healthz", env={**os.environ, "TWIN_API_TOKEN": ""}, output=log
    ) as url:
        r = httpx.post(url + "/reply", json={"message": "my secret plan"}, timeout=30)
        ok = httpx.get(url + "/healthz", timeout=30)
    assert r.status_code == 500 and r.json()["error"]["message"].startswith("internal error")
    assert ok.status_code == 200
    text = log.read_text()
    failed = [ln for ln in text.splitlines() if "request failed" in ln]
    assert len(failed) == 1 and "JSONDecodeError at " in failed[0], text
    assert "Traceback" not in text and "Exception in ASGI" not in text and "secret" not in text
