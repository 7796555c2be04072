"""The twin API on the tiny Falcon + real LoRA adapters, through FastAPI's TestClient."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from twin.errors import TwinError

SECRET = "my-private-chat-text-XYZZY"


@pytest.fixture(scope="module")
def client(engine):
    from twin.serve.app import create_app
    from twin.serve.schemas import Limits

    app = create_app(engine, limits=Limits(max_history=4, max_new_tokens=64, max_body_bytes=8000), token="")
    with TestClient(app) as c:
        yield c


def body(**kw):
    return {"message": "are you coming tonight?", "history": [{"role": "them", "text": "hey"}], **kw}


def sse(lines) -> list[tuple[str, dict | str]]:
    """``[(event, data)]`` from SSE lines (``data: [DONE]`` kept as the string)."""
    events, event = [], "message"
    for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            raw = line[6:]
            events.append((event, raw if raw == "[DONE]" else json.loads(raw)))
            event = "message"
    return events


def assert_own_speed(data: dict) -> None:
    """The speed reported is the reply's own: its tokens over its generation time. Both figures are
    rounded (latency to 0.1 ms, speed to 0.01), so the speed lies within what the rounding allows."""
    tokens, latency = data["usage"]["completion_tokens"], data["latency_s"]
    assert tokens >= 1 and latency > 0
    low, high = tokens / (latency + 5e-5) - 0.005, tokens / max(latency - 5e-5, 1e-9) + 0.005
    assert low <= data["tokens_per_s"] <= high, (tokens, latency, data["tokens_per_s"])


def test_health_and_adapters(client):
    assert client.get("/healthz").json()["status"] == "ok"
    data = client.get("/adapters").json()
    assert data["default"] == "twin"
    assert [a["name"] for a in data["adapters"]] == ["twin", "other", "base"]
    assert all(a["template"] == "plain-v1" for a in data["adapters"])
    assert "path" not in json.dumps(data)  # filesystem paths stay on the server
    assert [m["id"] for m in client.get("/v1/models").json()["data"]] == ["twin", "other", "base"]


def test_reply_shape_and_determinism(client):
    r = client.post("/reply", json=body(temperature=0, seed=1, max_new_tokens=12))
    assert r.status_code == 200, r.text
    data = r.json()
    assert set(data) >= {"reply", "adapter", "usage", "latency_s", "tokens_per_s", "queue_s"}
    assert data["adapter"] == "twin"
    assert data["usage"]["prompt_tokens"] > 20 and 1 <= data["usage"]["completion_tokens"] <= 12
    assert_own_speed(data)
    again = client.post("/reply", json=body(temperature=0, seed=1, max_new_tokens=12)).json()
    assert again["reply"] == data["reply"]
    sampled = [
        client.post("/reply", json=body(temperature=1.0, seed=5, max_new_tokens=12)).json()["reply"]
        for _ in range(2)
    ]
    assert sampled[0] == sampled[1]


def test_reply_matches_generate_on_the_same_prompt(client, engine):
    """The server renders the prompt exactly as generate.build_reply_prompt does (training's template)."""
    from twin.inference.generate import Conversation, GenParams, build_reply_prompt, generate, speaker_stops

    adapter = engine.adapters["twin"]
    engine.model.set_adapter("twin")
    prompt = build_reply_prompt(
        adapter.meta,
        engine.tokenizer,
        Conversation([{"role": "them", "text": "hey"}], "are you coming tonight?"),
    )
    with engine.lock:
        want = generate(
            engine.model,
            engine.tokenizer,
            prompt,
            GenParams(max_new_tokens=10, temperature=0, extra_stops=speaker_stops()),
        )
    got = client.post("/reply", json=body(temperature=0, max_new_tokens=10)).json()
    assert got["reply"] == want.text
    assert got["usage"] == {"prompt_tokens": want.prompt_tokens, "completion_tokens": want.completion_tokens}


def test_adapters_are_isolated_under_concurrency(client, engine):
    """Interleaved requests for different adapters get exactly what each gets alone."""
    reqs = [
        body(adapter=name, temperature=1.0, seed=s, max_new_tokens=8)
        for name in ("twin", "other", "base")
        for s in (0, 1)
    ]
    alone = [client.post("/reply", json=r).json() for r in reqs]
    assert [a["adapter"] for a in alone] == ["twin", "twin", "other", "other", "base", "base"]
    assert len({a["reply"] for a in alone}) == 6  # each adapter and seed its own reply: a mix-up shows
    engine.scheduler.peak_batch = 0
    with ThreadPoolExecutor(6) as pool:
        together = list(pool.map(lambda r: client.post("/reply", json=r).json(), reqs * 2))
    for i, got in enumerate(together):
        want = alone[i % len(reqs)]
        assert (got["adapter"], got["reply"], got["usage"]) == (want["adapter"], want["reply"], want["usage"])
    # Six clients at once shared decode steps (continuous batching), each with its own adapter.
    assert engine.scheduler.peak_batch >= 2
    assert all(g["queue_s"] >= 0 for g in alone + together)


def test_stream_sends_tokens_then_done(client):
    with client.stream("POST", "/reply/stream", json=body(temperature=1.0, seed=2, max_new_tokens=16)) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse(r.iter_lines())
    assert events[0] == ("start", {"adapter": "twin"})
    kinds = [e for e, _ in events]
    assert kinds[-1] == "done" and set(kinds[1:-1]) <= {"token"}
    done = events[-1][1]
    assert "".join(d["text"] for e, d in events if e == "token") == done["reply"]
    plain = client.post("/reply", json=body(temperature=1.0, seed=2, max_new_tokens=16)).json()
    assert plain["reply"] == done["reply"] and plain["usage"] == done["usage"]
    assert done["queue_s"] >= 0
    assert_own_speed(done)


def test_openai_chat_completions(client):
    msgs = [
        {"role": "system", "content": "ignored: the adapter's own template applies"},
        {"role": "user", "content": "hey"},
        {"role": "assistant", "content": "hi!"},
        {"role": "user", "content": [{"type": "text", "text": "are you coming tonight?"}]},
    ]
    r = client.post(
        "/v1/chat/completions", json={"model": "other", "messages": msgs, "temperature": 0, "max_tokens": 10}
    )
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["object"] == "chat.completion" and data["model"] == "other"
    choice = data["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] in ("stop", "length")
    # user -> them, assistant -> me: the same reply as /reply with that history.
    hist = [{"role": "them", "text": "hey"}, {"role": "me", "text": "hi!"}]
    twin = client.post(
        "/reply", json=body(history=hist, adapter="other", temperature=0, max_new_tokens=10)
    ).json()
    assert choice["message"]["content"] == twin["reply"]
    assert data["usage"]["completion_tokens"] == twin["usage"]["completion_tokens"]
    assert (
        data["usage"]["total_tokens"] == data["usage"]["prompt_tokens"] + data["usage"]["completion_tokens"]
    )

    with client.stream(
        "POST",
        "/v1/chat/completions",
        json={"model": "other", "messages": msgs, "temperature": 0, "max_tokens": 10, "stream": True},
    ) as r:
        assert r.status_code == 200
        events = sse(r.iter_lines())
    assert events[-1] == ("message", "[DONE]")
    chunks = [d for _, d in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == twin["reply"]
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert not any("usage" in c for c in chunks)  # not asked for: OpenAI sends none

    asking = {"model": "other", "messages": msgs, "temperature": 0, "max_tokens": 10, "stream": True,
              "stream_options": {"include_usage": True}}  # fmt: skip
    with client.stream("POST", "/v1/chat/completions", json=asking) as r:
        *asked, done = [d for _, d in sse(r.iter_lines())]
    # as OpenAI: every chunk's usage null, then one more with empty choices and the usage
    assert done == "[DONE]" and all(c["usage"] is None for c in asked[:-1])
    assert (
        asked[-1]["choices"] == []
        and asked[-1]["usage"]["completion_tokens"] == twin["usage"]["completion_tokens"]
    )


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({"history": [], "x": SECRET}, 422, "message"),
        (body(message=""), 422, "message"),
        (body(message="\x00 \r\n\x0b"), 422, "message"),  # nothing left once cleaned as prepare cleans
        (body(message=SECRET * 300), 422, "message"),
        (body(history=[{"role": "boss", "text": SECRET}]), 422, "history.0.role"),
        (body(history=[{"role": "them"}]), 422, "history.0.text"),
        (body(history=[{"role": "them", "text": SECRET}] * 5), 422, "history"),
        (body(max_new_tokens=65), 422, "max_new_tokens"),
        (body(max_new_tokens=0), 422, "max_new_tokens"),
        (body(temperature=3), 422, "temperature"),
        (body(top_p=0), 422, "top_p"),
        (body(top_k=-1), 422, "top_k"),
        (body(repetition_penalty=9), 422, "repetition_penalty"),
        (body(seed=-1), 422, "seed"),
        (body(adapter="../../etc/passwd"), 422, "adapter"),
        (body(unknown=SECRET), 422, "unknown"),
        (body(adapter="nope"), 404, "adapter"),
        ([SECRET], 422, "body"),
    ],
)
def test_bad_input_names_the_field_and_never_echoes(client, payload, status, field):
    r = client.post("/reply", json=payload)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["param"] == field and field in err["message"]
    assert SECRET not in r.text and "input" not in r.json()["error"]


def test_openai_bad_input(client):
    user = {"role": "user", "content": SECRET}
    cases = [
        ({"messages": []}, 422, "messages"),
        ({"messages": [user, {"role": "assistant", "content": SECRET}]}, 422, "messages"),
        ({"messages": [{"role": "tool", "content": SECRET}, user]}, 422, "messages.0.role"),
        ({"messages": [user], "max_tokens": 1000}, 422, "max_tokens"),
        ({"messages": [user], "model": "nope"}, 404, "model"),
        ({"messages": [user], "n": 2}, 422, "n"),
        ({"messages": [{"role": "user", "content": "\x07\r\n", "name": SECRET}]}, 422, "messages"),
        ({"messages": [user], "contact": SECRET * 10}, 422, "contact"),
    ]
    for payload, status, field in cases:
        r = client.post("/v1/chat/completions", json=payload)
        assert r.status_code == status, (payload, r.text)
        assert r.json()["error"]["param"] == field
        assert SECRET not in r.text


def test_malformed_json_and_body_cap(client):
    r = client.post(
        "/reply",
        content=b'{"message": "' + SECRET.encode() + b'"',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400 and SECRET not in r.text
    big = json.dumps(body(message="x" * 9000)).encode()
    r = client.post("/reply", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "8000" in r.json()["error"]["message"]
    # A chunked body (no Content-Length) is counted as it arrives.
    r = client.post(
        "/reply", content=iter([big[:5000], big[5000:]]), headers={"content-type": "application/json"}
    )
    assert r.status_code == 413


def test_bearer_token(engine):
    from twin.serve.app import create_app

    with TestClient(create_app(engine, token="s3cret")) as c:
        assert c.get("/healthz").status_code == 200  # liveness stays open, it reveals nothing
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            r = c.post("/reply", json=body(max_new_tokens=2), headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert c.get("/adapters", headers=headers).status_code == 401
            assert (
                c.post(
                    "/v1/chat/completions",
                    json={"messages": [{"role": "user", "content": "x"}]},
                    headers=headers,
                ).status_code
                == 401
            )
        ok = {"Authorization": "Bearer s3cret"}
        assert c.post("/reply", json=body(max_new_tokens=2), headers=ok).status_code == 200
        assert c.get("/adapters", headers=ok).status_code == 200


def test_token_from_environment(engine, monkeypatch):
    from twin.serve.app import create_app

    monkeypatch.setenv("TWIN_API_TOKEN", "from-env")
    with TestClient(create_app(engine)) as c:
        assert c.get("/adapters").status_code == 401
        assert c.get("/adapters", headers={"Authorization": "Bearer from-env"}).status_code == 200


def test_full_queue_is_503_with_retry_after(engine):
    from twin.serve.app import create_app

    app = create_app(engine, queue_size=1)
    gate = app.state.services.gate
    assert gate.slots == engine.max_batch
    with TestClient(app) as c:
        for _ in range(gate.queue_size + gate.slots):  # every place taken
            gate.reserve()
        try:
            for path, payload in (
                ("/reply", body()),
                ("/reply/stream", body()),
                ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
            ):
                r = c.post(path, json=payload)
                assert r.status_code == 503, r.text
                assert int(r.headers["retry-after"]) >= 1
                assert r.json()["error"]["type"] == "overloaded_error"
        finally:
            for _ in range(gate.queue_size + gate.slots):
                gate.release()
        assert c.post("/reply", json=body(max_new_tokens=2)).status_code == 200
        assert gate.pending == 0


def test_mismatched_base_is_refused(tiny_base, tiny_adapter, tmp_path):
    from devkit.adapters import on_other_base
    from twin.serve.engine import Engine

    bad = on_other_base(tiny_adapter, tmp_path / "wrong-base")
    with pytest.raises(TwinError, match="trained on a different base model"):
        Engine(tiny_base, [str(bad)])


def test_adapter_names_and_quantize(tiny_base, tiny_adapter):
    from twin.serve.engine import Engine, parse_adapter_specs

    assert parse_adapter_specs([str(tiny_adapter), f"b={tiny_adapter}"]) == [
        (tiny_adapter.name, tiny_adapter),
        ("b", tiny_adapter),
    ]
    with pytest.raises(TwinError, match="used twice"):
        parse_adapter_specs([f"a={tiny_adapter}", f"a={tiny_adapter}"])
    with pytest.raises(TwinError, match="reserved"):
        parse_adapter_specs([f"base={tiny_adapter}"])
    with pytest.raises(TwinError, match="needs a CUDA GPU"):
        Engine(tiny_base, [str(tiny_adapter)], quantize="nf4", device="cpu")
    with pytest.raises(TwinError, match="unknown"):
        Engine(tiny_base, [str(tiny_adapter)], quantize="int3")


def test_cancel_stops_generation_at_the_next_token(engine):
    """What a disconnected streaming client triggers: the worker stops instead of finishing the reply."""
    from twin.inference.generate import Conversation, GenParams

    cancel = threading.Event()
    seen: list[str] = []

    def on_delta(d: str) -> None:
        seen.append(d)
        cancel.set()

    gen = engine.run(
        engine.adapters["other"],
        Conversation([], "hi"),
        GenParams(max_new_tokens=200, temperature=1.0, seed=0, min_new_tokens=200),
        on_delta,
        cancel,
    )
    assert gen.stopped_by == "cancelled" and len(seen) == 1
    assert gen.completion_tokens < 200 and gen.text == seen[0]


def test_default_adapter_choice(engine, tiny_base, tiny_adapter):
    from twin.serve.app import create_app
    from twin.serve.engine import Engine

    with pytest.raises(TwinError, match="--default-adapter nope: not registered"):
        Engine(tiny_base, [("twin", tiny_adapter)], default="nope")
    bare = Engine(tiny_base, [("twin", tiny_adapter)], default="base")
    with TestClient(create_app(bare, token="")) as c:
        assert c.get("/adapters").json()["default"] == "base"
        assert c.post("/reply", json=body(max_new_tokens=2)).json()["adapter"] == "base"


def test_disconnected_stream_client_stops_its_generation(engine, caplog):
    """Over real HTTP: a client that hangs up mid-stream frees the worker at the next token."""
    import logging

    import httpx

    from devkit.live_server import serve_in_thread
    from twin.serve.app import create_app

    caplog.set_level(logging.INFO, logger="twin.inference.batch")
    app = create_app(engine, token="")
    with serve_in_thread(app) as url:
        payload = body(adapter="base", max_new_tokens=500, temperature=1.0, seed=0)
        with httpx.stream("POST", url + "/reply/stream", json=payload, timeout=60) as r:
            for line in r.iter_lines():
                if line.startswith("event: token"):
                    break  # hang up after the first token
        _wait_until_freed(app)
    _assert_cancelled_early(caplog, of=500)


def _wait_until_freed(app, timeout: float = 60) -> None:
    """The client is gone: its place in the queue comes back within ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while app.state.services.gate.pending and time.monotonic() < deadline:
        time.sleep(0.05)
    assert app.state.services.gate.pending == 0


def _assert_cancelled_early(caplog, of: int) -> None:
    """The engine logged the cancellation, before the reply's ``of`` tokens were made."""
    cancelled = [r for r in caplog.records if "generation cancelled" in r.getMessage()]
    assert cancelled and cancelled[0].args[0] < of


def test_bound_to_loopback_other_host_names_are_refused(engine):
    # DNS rebinding: a page whose domain now resolves to 127.0.0.1 posts from the visitor's browser.
    from twin.serve.app import create_app

    app = create_app(engine, token="", loopback_hosts=["twin.lan"])
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        msg = {"message": "hi", "max_new_tokens": 2}
        for host in (
            "rebind.attacker.example",
            "rebind.attacker.example:8000",
            "127.0.0.1.nip.io",
            "localhost.evil",
        ):
            r = c.post("/reply", json=msg, headers={"host": host})
            assert r.status_code == 400 and r.json()["error"]["param"] == "host", host
            assert "--allow-host" in r.json()["error"]["message"]
        assert c.get("/healthz", headers={"host": "rebind.attacker.example"}).status_code == 400
        for host in (
            "127.0.0.1:8000",
            "localhost:8000",
            "LOCALHOST",
            "[::1]:8000",
            "127.0.0.2",
            "twin.lan:8000",
        ):
            assert c.get("/healthz", headers={"host": host}).status_code == 200, host
        assert c.post("/reply", json=msg, headers={"host": "localhost:8000"}).status_code == 200


def test_docs_are_off_unless_asked_for(engine):
    # /docs makes the browser fetch Swagger UI from a CDN: not by default.
    from twin.serve.app import create_app

    with TestClient(create_app(engine, token="")) as c:
        assert c.get("/docs").status_code == 404
        assert c.get("/openapi.json").status_code == 200  # the schema itself is local
    with TestClient(create_app(engine, token="", docs=True)) as c:
        assert c.get("/docs").status_code == 200


def test_min_new_tokens_forces_the_reply_length(client):
    # A greedy reply that ends early (EOS or a stop string) is what min_new_tokens is for: EOS stays
    # blocked until that many tokens, so a forced reply that no stop string cuts runs to the length.
    free = client.post("/reply", json=body(temperature=0, max_new_tokens=48)).json()
    forced = client.post("/reply", json=body(temperature=0, max_new_tokens=48, min_new_tokens=48)).json()
    assert free["usage"]["completion_tokens"] < 48, "the unforced reply should end early for this test"
    assert forced["usage"]["completion_tokens"] == 48 and forced["finish_reason"] == "length", forced
    r = client.post("/reply", json=body(max_new_tokens=8, min_new_tokens=9))
    assert r.status_code == 400 and "min_new_tokens" in r.json()["error"]["message"], r.text
    r = client.post("/reply", json=body(min_new_tokens=-1))
    assert r.status_code == 422 and r.json()["error"]["param"] == "min_new_tokens", r.text


def test_routes_and_their_dependencies_run_on_the_event_loop():
    """Every route and dependency is ``async def``: FastAPI runs a plain ``def`` one in AnyIO's thread
    pool, a hand-off to another thread and back on every request."""
    import inspect

    from twin.serve import deps
    from twin.serve.routes import meta, openai, reply

    endpoints = {r.path: r.endpoint for m in (meta, reply, openai) for r in m.router().routes}
    assert set(endpoints) >= {"/healthz", "/adapters", "/v1/models", "/reply", "/reply/stream"}
    for fn in [*endpoints.values(), deps.services, deps.require_token]:
        assert inspect.iscoroutinefunction(fn), fn


def test_a_relay_hands_over_bursts_in_order_and_the_end_at_once():
    """Deltas put from another thread while a burst is held back ride with it; the reply's end
    (``final``) is handed over at once, without waiting out the interval."""
    import asyncio
    import time

    from twin.serve.bridge import Relay

    async def run() -> tuple[list, list, float]:
        relay = Relay(asyncio.get_running_loop(), every=30.0)
        relay.put(0)
        first = await relay.take()  # the first burst is never held back
        worker = threading.Thread(target=lambda: [relay.put(i) for i in range(1, 50)])
        worker.start()
        worker.join()
        threading.Timer(0.2, lambda: relay.put("end", final=True)).start()
        t0 = time.perf_counter()
        second = await relay.take()  # held back (30 s) until the end arrives
        return first, second, time.perf_counter() - t0

    first, second, waited = asyncio.run(run())
    assert first == [0]
    assert second == [*range(1, 50), "end"]
    assert waited < 10


def test_a_reply_client_that_hangs_up_cancels_its_generation(engine, caplog):
    """Over real HTTP, non-streaming: the client leaves mid-reply and the engine drops the row."""
    import logging

    import httpx

    from devkit.live_server import serve_in_thread
    from twin.serve.app import create_app

    caplog.set_level(logging.INFO, logger="twin.inference.batch")
    app = create_app(engine, token="")
    payload = body(adapter="base", max_new_tokens=500, temperature=1.0, seed=0)  # ~300 tokens, >1 s
    with serve_in_thread(app) as url:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url + "/reply", json=payload, timeout=httpx.Timeout(60, read=0.1))
        _wait_until_freed(app)
    _assert_cancelled_early(caplog, of=500)


def test_a_stream_whose_generation_fails_ends_with_an_error_frame_after_its_tokens(engine):
    """The model fails mid-reply (a forward hook raises at the 6th pass): the deltas already made
    go out, then one ``error`` frame, and the place in the queue is freed."""
    from twin.serve.app import create_app

    calls = []

    def fail_later(_module, _args, _kwargs):
        calls.append(1)
        if len(calls) == 6:
            raise RuntimeError("boom")

    app = create_app(engine, token="")
    payload = body(adapter="base", max_new_tokens=40, min_new_tokens=40, temperature=1.0, seed=0)
    handle = engine.model.register_forward_pre_hook(fail_later, with_kwargs=True)
    try:
        with TestClient(app) as c, c.stream("POST", "/reply/stream", json=payload) as r:
            events = sse(r.iter_lines())
    finally:
        handle.remove()
    kinds = [e for e, _ in events]
    assert kinds[0] == "start" and kinds[-1] == "error" and kinds.count("error") == 1
    assert set(kinds[1:-1]) == {"token"}  # the prefill's token and 4 steps' went out first
    assert events[-1][1]["error"]["code"] == 500 and "boom" not in json.dumps(events[-1][1])
    assert app.state.services.gate.pending == 0
