"""Live servers for tests and benchmarks: a twin app in a thread, or a real `twin` process."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0, proc: Any = None) -> None:
    """Poll ``url`` until it answers (any status); raise if it does not within ``timeout``."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the process serving {url} exited with status {proc.returncode}")
        try:
            httpx.get(url, timeout=2.0)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


@contextlib.contextmanager
def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """Serve ``app`` on ``host:port`` (a free port by default) while the block runs; yields the base URL."""
    import uvicorn

    port = port or free_port(host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    url = f"http://{host}:{port}"
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on {url}")
            time.sleep(0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def twin_process(
    command: str,
    *args: str,
    health: str,
    env: dict | None = None,
    timeout: float = 120.0,
    output: Path | None = None,
) -> Iterator[str]:
    """Run ``twin COMMAND ARGS --port <free port>`` on loopback; yield its URL once ``health`` answers.

    The process is stopped (SIGTERM, then SIGKILL after 20 s) when the block ends, however it ends.
    ``output``: a file that receives its stdout and stderr (discarded by default).
    """
    port = free_port()
    cmd = [sys.executable, "-m", "twin.cli", command, *args, "--port", str(port)]
    with _serving(cmd, port, health, env=env, timeout=timeout, output=output) as (url, _proc):
        yield url


@contextlib.contextmanager
def llama_cpp_process(
    gguf: Any,
    alias: str,
    *,
    threads: int = 1,
    n_ctx: int = 1024,
    lora: Any = None,
    timeout: float = 120.0,
    n_batch: int | None = None,
) -> Iterator[tuple[str, Any]]:
    """llama-cpp-python's OpenAI-compatible server on loopback serving ``gguf`` as model ``alias``
    (with the LoRA GGUF ``lora`` applied, when given); yields ``(url, process)``, stopped when the block ends.
    ``n_batch``: its prompt batch and micro-batch (llama.cpp's default 512 reserves a compute buffer
    for 512 tokens' logits: ~300 MiB at a 151,936-token vocabulary)."""
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", alias,
           "--host", "127.0.0.1", "--port", str(port), "--n_threads", str(threads),
           "--n_threads_batch", str(threads), "--n_ctx", str(n_ctx), "--verbose", "False"]  # fmt: skip
    if lora is not None:
        cmd += ["--lora_path", str(lora)]
    if n_batch is not None:
        cmd += ["--n_batch", str(n_batch), "--n_ubatch", str(n_batch)]
    with _serving(cmd, port, "/v1/models", timeout=timeout) as served:
        yield served


@contextlib.contextmanager
def _serving(
    cmd: list[str],
    port: int,
    health: str,
    *,
    env: dict | None = None,
    timeout: float = 120.0,
    output: Path | None = None,
) -> Iterator[tuple[str, Any]]:
    """Start ``cmd`` (a server on ``port``), yield ``(url, process)`` once ``health`` answers; stop it
    (SIGTERM, then SIGKILL after 20 s) when the block ends, however it ends. ``output``: a file for
    its stdout and stderr (discarded by default)."""
    with open(output, "wb") if output is not None else contextlib.nullcontext(subprocess.DEVNULL) as sink:
        err = subprocess.STDOUT if output is not None else sink
        proc = subprocess.Popen(cmd, env=env, stdout=sink, stderr=err)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(url + health, timeout=timeout, proc=proc)
            yield url, proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
