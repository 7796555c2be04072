"""`twin serve` as a real uvicorn process on loopback, talked to over HTTP (plus its CLI refusals)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import httpx
import pytest
from helpers.server import AUTH

from devkit.live_server import free_port, twin_process
from twin.errors import TwinError
from twin.serve.http import TOKEN_ENV

SECRET = "my-private-chat-text-XYZZY"

pytestmark = pytest.mark.slow  # starts a real `twin serve` process


def _twin(*args: str) -> list[str]:
    return [sys.executable, "-m", "twin.cli", *args]


@pytest.fixture(scope="module")
def live(twin_server):
    return twin_server  # the session's one `twin serve` process (conftest.py)


def test_real_server_over_http(live):
    assert httpx.get(live + "/healthz").json()["status"] == "ok"
    assert httpx.get(live + "/adapters").status_code == 401
    names = [a["name"] for a in httpx.get(live + "/adapters", headers=AUTH).json()["adapters"]]
    assert names == ["me", "base"]
    r = httpx.post(
        live + "/reply",
        json={"message": "hi there", "temperature": 0, "max_new_tokens": 8},
        headers=AUTH,
        timeout=60,
    )
    assert r.status_code == 200 and r.json()["adapter"] == "me"
    with httpx.stream("POST", live + "/reply/stream", json={"message": "hi there", "temperature": 0, "max_new_tokens": 8},
                      headers=AUTH, timeout=60) as s:  # fmt: skip
        lines = [ln for ln in s.iter_lines() if ln.startswith("data: ")]
    assert json.loads(lines[-1][6:])["reply"] == r.json()["reply"]


def test_loopback_server_refuses_a_rebound_host_and_has_no_cdn_docs(live):
    # `twin serve` binds 127.0.0.1 here: a request naming another host (DNS rebinding) gets 400.
    body = {"message": "hi there", "max_new_tokens": 2}
    r = httpx.post(
        live + "/reply", json=body, headers={**AUTH, "Host": "rebind.attacker.example"}, timeout=60
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "host"
    assert httpx.post(live + "/reply", json=body, headers=AUTH, timeout=60).status_code == 200
    assert httpx.get(live + "/docs").status_code == 404


def test_32_concurrent_clients_answered_or_cleanly_refused(live):
    def request(i: int) -> dict:
        return {"message": f"msg {i}", "max_new_tokens": 4, "seed": i}

    async def one(client: httpx.AsyncClient, i: int) -> httpx.Response:
        r = await client.post("/reply", json=request(i), headers=AUTH)
        if r.status_code == 503:
            assert int(r.headers["retry-after"]) >= 1
        return r

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=live, timeout=120) as client:
            return await asyncio.gather(*(one(client, i) for i in range(32)))

    answers = asyncio.run(main())
    codes = [r.status_code for r in answers]
    assert set(codes) <= {200, 503} and codes.count(200) >= 9  # every running slot + 8 queued at least
    assert httpx.get(live + "/healthz").json()["pending"] == 0
    # an answer given in the crowd is the one the same request gets alone (its seed, its 4 tokens)
    served = [(i, r.json()) for i, r in enumerate(answers) if r.status_code == 200]
    assert all(1 <= got["usage"]["completion_tokens"] <= 4 for _, got in served)
    for i, got in served[:3]:
        again = httpx.post(live + "/reply", json=request(i), headers=AUTH, timeout=60).json()
        assert (again["reply"], again["usage"]) == (got["reply"], got["usage"]), i


def test_cli_refuses_a_mismatched_adapter_in_one_line(tiny_base, tiny_adapter, tmp_path):
    from devkit.adapters import on_other_base

    bad = on_other_base(tiny_adapter, tmp_path / "other-base-adapter")
    out = subprocess.run(_twin("serve", "--base", str(tiny_base), "--adapter", str(bad), "--port", str(free_port())),
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 2
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "different base model" in errors[0]
    assert "Traceback" not in out.stderr


def test_cli_without_base_serves_the_base_recorded_in_the_adapter(tiny_adapter, live, tmp_path):
    """`twin serve --adapter me=DIR` alone, as a real process: it serves the base twin.json records,
    on the port asked for, bound to 127.0.0.1 only, and logs no request (no access log)."""
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}  # no token: loopback is open
    log = tmp_path / "serve.log"
    body = {"message": SECRET, "temperature": 0, "max_new_tokens": 8}
    with twin_process("serve", "--adapter", f"me={tiny_adapter}", "--threads", "1", health="/healthz",
                      env=env, output=log) as url:  # fmt: skip
        listed = httpx.get(url + "/adapters").json()
        assert listed["default"] == "me" and [a["name"] for a in listed["adapters"]] == ["me", "base"]
        got = httpx.post(url + "/reply", json=body, timeout=60).json()
        # the session's server was given --base explicitly: the same greedy reply means the same base
        want = httpx.post(live + "/reply", json=body, headers=AUTH, timeout=60).json()
        assert (got["reply"], got["usage"]) == (want["reply"], want["usage"])
        # bound to loopback: a rebound Host name is refused, and another loopback address finds no one
        rebound = httpx.post(
            url + "/reply", json=body, headers={"Host": "rebind.attacker.example"}, timeout=60
        )
        assert rebound.status_code == 400 and rebound.json()["error"]["param"] == "host"
        with pytest.raises(httpx.ConnectError):
            httpx.get(url.replace("127.0.0.1", "127.0.0.2") + "/healthz", timeout=5)
    text = log.read_text(encoding="utf-8", errors="replace")
    assert f"listening on {url}" in text  # the log is really captured...
    # ...and holds twin's own one-line summaries but no uvicorn access line, and never the message
    assert "/reply adapter=me" in text and "HTTP/1.1" not in text and SECRET not in text


def test_a_port_in_use_is_one_line_before_the_model_loads(tiny_base):
    """A second `twin serve` (or `twin chat`) on a busy port: exit 2 with one line naming the address
    and the way out, before loading anything; uvicorn's bare "[Errno 98]" came after the load and a
    false "listening" line (Streamlit's "Port ... is not available" after a false "chat page on")."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(_twin("serve", "--base", str(tiny_base), "--port", str(port)),
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        chat = subprocess.run(_twin("chat", "--port", str(port)), capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == [
        f"error: 127.0.0.1:{port} already in use (is a twin serve already running?); stop that server "
        "or pick another port: --port N (make serve PORT=N)"
    ]
    assert "listening" not in out.stdout + out.stderr
    assert chat.returncode == 2 and chat.stderr.strip().splitlines() == [
        f"error: 127.0.0.1:{port} already in use (is a twin chat already running?); stop that server "
        "or pick another port: --port N (make chat CHAT_PORT=N)"
    ]


@pytest.mark.parametrize(
    ("option", "value"),
    [("--device", "tpu"), ("--dtype", "fp8"), ("--quantize", "int4"), ("--quantize", "nf4"),
     ("--default-adapter", "nope")],
)  # fmt: skip
def test_a_bad_placement_option_is_one_line_before_anything_loads(tiny_base, option, value):
    """`--device tpu` was torch's traceback after the model loaded (exit 1); a bad --quantize came
    after the "--dtype auto -> ..." line had been logged as if the choice applied (so did an
    unknown --default-adapter)."""
    import torch

    if value == "nf4" and torch.cuda.is_available():
        pytest.skip("nf4 is refused only on a machine without CUDA")
    out = subprocess.run(_twin("serve", "--base", str(tiny_base), "--port", str(free_port()), option, value),
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {option}"), lines
    assert "--dtype auto" not in out.stdout + out.stderr


def test_memory_for_an_adapter_trained_without_it_is_one_line_before_anything_loads(
    tiny_base, random_lora_adapter
):
    """`--memory 3` on such an adapter was refused after the "--dtype auto -> ..." line, as if the
    load went on."""
    out = subprocess.run(_twin("serve", "--base", str(tiny_base), "--adapter", str(random_lora_adapter),
                               "--port", str(free_port()), "--memory", "3"),
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"error: {random_lora_adapter}: adapter trained without memory"
    )
    assert "--dtype auto" not in out.stdout + out.stderr


def test_a_missing_base_is_one_line_without_a_precision_line_for_it(tmp_path):
    """The "--dtype auto -> float32: ... weights fit (1.0 GiB ...)" line was logged for a directory
    that does not exist, before the error saying so."""
    out = subprocess.run(_twin("serve", "--base", str(tmp_path / "nope"), "--port", str(free_port())),
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[0].startswith(f"error: {tmp_path / 'nope'}: base model directory")
    assert "--dtype auto" not in out.stdout + out.stderr


@pytest.mark.parametrize("token", ["   ", "s3cret\n", " s3cret"])
def test_a_token_no_client_could_send_is_one_line_before_the_model_loads(tiny_base, token):
    """Spaces at a token's ends (a pasted value, only spaces) made every request a 401: clients send
    ``Bearer <token>`` and the server strips what follows the scheme."""
    import os
    import socket

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = str(free.getsockname()[1])
    env = {**os.environ, "TWIN_API_TOKEN": token}
    out = subprocess.run(_twin("serve", "--base", str(tiny_base), "--port", port), capture_output=True, text=True,
                         timeout=120, env=env)  # fmt: skip
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1 and "$TWIN_API_TOKEN" in lines[0], out.stderr
    assert ("only spaces" if not token.strip() else "starts or ends with spaces") in lines[0]
    assert token.strip() == "" or token.strip() not in out.stderr  # the secret is never printed


def test_cli_without_base_or_adapter_is_one_error():
    from typer.testing import CliRunner

    from twin.cli import app

    # Neither a base nor an adapter to read it from: a TwinError (the CLI prints it as one line).
    result = CliRunner().invoke(app, ["serve"])
    assert isinstance(result.exception, TwinError) and "give --base DIR" in str(result.exception)


def test_the_server_listens_with_its_loaded_heap_frozen_and_the_collector_on(
    tiny_base, tiny_adapter, monkeypatch
):
    """No full collection walks the imports and the model while they load, and none walks them again
    while the server answers (each took ~0.2 s with the GIL held): frozen once, collector back on."""
    import gc

    from twin.serve import cli

    seen = {}

    def listen(s, engine):  # where uvicorn would start answering
        seen.update(enabled=gc.isenabled(), frozen=gc.get_freeze_count(), model=engine.max_batch)

    loads = []
    load_engine = cli._load_engine
    monkeypatch.setattr(cli, "_load_engine", lambda s: loads.append(gc.isenabled()) or load_engine(s))
    monkeypatch.setattr(cli, "_listen", listen)
    settings = cli.ServeSettings(
        base=str(tiny_base), adapters=[f"twin={tiny_adapter}"], default_adapter=None, host="127.0.0.1",
        port=free_port(), quantize=None, dtype="float32", device="cpu", threads=None, queue_size=4,
        max_batch=2, max_batch_tokens=0, max_new_tokens=16, max_history=8, max_message_chars=100,
        max_body_bytes=10_000, memory=None,
    )  # fmt: skip
    before = gc.get_freeze_count()
    cli.serve(settings)
    assert loads == [False]  # the model loaded with the collector paused
    assert seen["enabled"] and seen["frozen"] > before + 10_000 and seen["model"] == 2
    assert gc.isenabled() and gc.get_freeze_count() == before  # the test process is left as it was
