"""``twin serve`` (FastAPI on uvicorn) and ``twin chat`` (the Streamlit page). Nothing heavy at import."""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from twin.checks import check_number, check_port, check_port_free
from twin.errors import TwinError

if TYPE_CHECKING:
    from twin.serve.engine import ReplyEngine

log = logging.getLogger(__name__)

SERVER_ENV = "TWIN_SERVER_URL"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def web_app_path() -> Path:
    """``web/app.py`` next to the ``twin`` package (the page ships in the repo, not the wheel)."""
    import twin

    page = Path(twin.__file__).resolve().parents[1] / "web" / "app.py"
    if not page.is_file():
        raise TwinError(f"{page}: the chat page is missing; run `twin chat` from a checkout of the twin repo")
    return page


def chat_command(server: str, port: int, host: str) -> list[str]:
    """The ``streamlit run`` command line: usage statistics off, headless, loopback unless told."""
    return [
        sys.executable, "-m", "streamlit", "run", str(web_app_path()),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--global.developmentMode", "false",
        "--", "--server", server,
    ]  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_cmd)
    app.command("chat")(chat_cmd)


@dataclass(frozen=True)
class ServeSettings:
    """What ``twin serve`` was asked for: its options, one field each."""

    base: str | None
    adapters: list[str]
    default_adapter: str | None
    host: str
    port: int
    quantize: str | None
    dtype: str
    device: str
    threads: int | None
    queue_size: int
    max_batch: int
    max_batch_tokens: int
    max_new_tokens: int
    max_history: int
    max_message_chars: int
    max_body_bytes: int
    memory: int | None
    allow_hosts: tuple[str, ...] = ()
    docs: bool = False
    backend: str | None = None


def serve_cmd(
    base: str | None = typer.Option(
        None, "--base", help="Base model dir (default: the base recorded in the first adapter's twin.json)."
    ),
    adapter: list[str] = typer.Option(
        None, "--adapter", help="Adapter dir, or NAME=DIR (repeatable; the first is the default)."
    ),
    default_adapter: str | None = typer.Option(
        None, "--default-adapter", help="Adapter name used when a request names none ('base' = no adapter)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address (loopback by default)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    quantize: str | None = typer.Option(None, "--quantize", help="int8 | nf4 (bitsandbytes; CUDA only)."),
    dtype: str = typer.Option(
        "auto", "--dtype", help="auto (fastest for this machine) | float32 | bfloat16 | float16."
    ),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    threads: int | None = typer.Option(None, "--threads", help="torch CPU threads (default: torch's)."),
    queue_size: int = typer.Option(32, "--queue-size", help="Requests that may wait; more get 503."),
    max_batch: int = typer.Option(
        0,
        "--max-batch",
        help="Replies decoded together (1 = one at a time; 0: up to 32, as the free memory allows).",
    ),
    max_batch_tokens: int = typer.Option(
        0,
        "--max-batch-tokens",
        help="Cap on prompt + max_new_tokens over the batch (0: max-batch x context).",
    ),
    max_new_tokens: int = typer.Option(512, "--max-new-tokens", help="Cap on a request's max_new_tokens."),
    max_history: int = typer.Option(100, "--max-history", help="Cap on the number of history turns."),
    max_message_chars: int = typer.Option(4000, "--max-message-chars", help="Cap on one message's length."),
    max_body_bytes: int = typer.Option(262144, "--max-body-bytes", help="Cap on a request body's size."),
    memory: int | None = typer.Option(
        None, "--memory", min=0, help="Past exchanges per prompt (default: as trained, from twin.json)."
    ),
    allow_host: list[str] = typer.Option(
        None,
        "--allow-host",
        help="Bound to loopback, also accept this Host name (repeatable; e.g. an SSH-tunnel or /etc/hosts alias).",
    ),
    docs: bool = typer.Option(
        False, "--docs", help="Serve /docs (Swagger UI: the browser loads it from a CDN)."
    ),
    backend: str | None = typer.Option(
        None,
        "--backend",
        help="Generate on an OpenAI-compatible server (vLLM, llama.cpp, Ollama) at this URL; "
        "the adapter name is its model name. twin still renders prompts, checks limits and auth.",
    ),
) -> None:
    """Serve the twin over HTTP: POST /reply, /reply/stream, /v1/chat/completions (token: $TWIN_API_TOKEN)."""
    serve(ServeSettings(
        base=base, adapters=adapter or [], default_adapter=default_adapter, host=host, port=port,
        quantize=quantize, dtype=dtype, device=device, threads=threads, queue_size=queue_size,
        max_batch=max_batch, max_batch_tokens=max_batch_tokens, max_new_tokens=max_new_tokens,
        max_history=max_history, max_message_chars=max_message_chars, max_body_bytes=max_body_bytes,
        memory=memory, allow_hosts=tuple(allow_host or ()), docs=docs, backend=backend,
    ))  # fmt: skip


def serve(s: ServeSettings) -> None:
    """Check the settings, load the model and adapters, then answer HTTP until stopped."""
    import twin
    from twin.imports import gc_paused, resume_gc
    from twin.model.load import prefer_passive_omp_wait

    # Serving reads local directories only: no hub calls (set before transformers loads).
    twin.no_phone_home(offline=True)
    prefer_passive_omp_wait()
    _check_serve_options(s)
    # No full collections walking the imports and the model while they load (twin/imports.py), then
    # all of it frozen for the server's life: a full collection of the loaded tiny server took
    # 0.21-0.26 s with the GIL held (bench/RESULTS.md), a stall of every reply in flight.
    with gc_paused():
        if s.threads:
            import torch

            torch.set_num_threads(s.threads)
        engine = _load_engine(s)
        resume_gc()
        _listen(s, engine)


def _listen(s: ServeSettings, engine: ReplyEngine) -> None:
    """The app around the loaded engine, on ``s.host:s.port`` until stopped."""
    import uvicorn

    from twin.serve.app import create_app
    from twin.serve.schemas import Limits

    limits = Limits(
        max_body_bytes=s.max_body_bytes,
        max_history=s.max_history,
        max_message_chars=s.max_message_chars,
        max_new_tokens=s.max_new_tokens,
    )
    # Bound to loopback: refuse other Host names (a web page rebinding its domain to 127.0.0.1).
    hosts = list(s.allow_hosts) if is_loopback(s.host) else None
    api = create_app(engine, limits=limits, queue_size=s.queue_size, loopback_hosts=hosts, docs=s.docs)
    log.info("twin is listening on http://%s:%d (chat page: `make chat`)", s.host, s.port)
    # access_log off: URLs carry nothing private, but the server logs only what it chooses to.
    uvicorn.run(api, host=s.host, port=s.port, log_level="warning", access_log=False)


def _check_serve_options(s: ServeSettings) -> None:
    from twin.serve.http import TOKEN_ENV

    check_port("--port", s.port)
    check_port_free(s.host, s.port)
    for option, value in (
        ("--max-new-tokens", s.max_new_tokens),
        ("--max-history", s.max_history),
        ("--max-message-chars", s.max_message_chars),
        ("--max-body-bytes", s.max_body_bytes),
        ("--threads", s.threads),
    ):
        check_number(option, value, low=1)
    check_number("--max-batch", s.max_batch, low=0)
    check_number("--queue-size", s.queue_size, low=0)
    check_number("--max-batch-tokens", s.max_batch_tokens, low=0)
    if not s.backend:  # the backend does its own placement and precision: these are not used
        _check_placement(s)
    token = os.environ.get(TOKEN_ENV)
    if token and token != token.strip():  # a client's "Bearer <token>" can never carry those spaces
        raise TwinError(
            f"${TOKEN_ENV} {'is only spaces' if not token.strip() else 'starts or ends with spaces'}: "
            "no client could send it, every request would be refused; set it without them "
            "(or empty for no token on 127.0.0.1)"
        )
    if not is_loopback(s.host) and not token:
        log.warning(
            "binding %s without $%s: anyone who can reach this address can talk to your twin",
            s.host,
            TOKEN_ENV,
        )


def _check_placement(s: ServeSettings) -> None:
    """``--dtype``, ``--device`` and ``--quantize`` before the model loads: a typo was torch's
    traceback after the load (``--device tpu``, or ``cuda`` without a GPU) or an error after the
    ``--dtype auto`` line had been logged as if it applied."""
    from twin.model.load import DTYPE_CHOICES, check_quantize

    if s.dtype != "auto" and s.dtype.lower() not in DTYPE_CHOICES:
        raise TwinError(f"--dtype {s.dtype}: unknown; use auto, float32, bfloat16 or float16")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", s.device):
        raise TwinError(f"--device {s.device}: unknown; use auto, cpu, cuda or cuda:N")
    if s.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise TwinError(f"--device {s.device}: no CUDA GPU is available here; use --device cpu (or auto)")
    check_quantize(s.quantize, s.device, name="--quantize", instead="leave it out to serve on this machine")


def _load_engine(s: ServeSettings) -> ReplyEngine:
    """The base (``--dtype auto``: the fastest precision this machine runs well) with every adapter."""
    from twin.model.load import check_base_dir
    from twin.serve.engine import Engine, check_default, parse_adapter_specs

    pairs = parse_adapter_specs(s.adapters)
    check_default(s.default_adapter, pairs)  # before any line about the load
    _check_memory(pairs, s.memory)
    base_dir = _base_dir(s.base, s.adapters)
    if s.backend:  # generation elsewhere: only the tokenizer is loaded here
        from twin.serve.backend import REMOTE_MAX_BATCH, RemoteEngine

        return RemoteEngine(s.backend, base_dir, s.adapters, default=s.default_adapter,
                            max_batch=s.max_batch or REMOTE_MAX_BATCH, memory=s.memory)  # fmt: skip
    check_base_dir(base_dir)  # before the "--dtype auto" line, which reads its size
    dtype = s.dtype
    if dtype == "auto":
        from twin.model.precision import choose_precision

        choice = choose_precision(base_dir, "cpu" if s.device == "cpu" else "auto")
        (log.warning if choice.slow else log.info)("--dtype auto -> %s: %s", choice.dtype, choice.reason)
        dtype = choice.dtype
    return Engine(
        base_dir,
        s.adapters,
        default=s.default_adapter,
        dtype=dtype,
        quantize=s.quantize,
        device=s.device,
        max_batch=s.max_batch or None,
        max_batch_tokens=s.max_batch_tokens or None,
        memory=s.memory,
        longest_reply=s.max_new_tokens,
    )


def _check_memory(pairs: list[tuple[str, Path]], k: int | None) -> None:
    """``--memory K`` on an adapter trained without it: refused before the ``--dtype auto`` line, which
    read as if the load went on."""
    if not k:
        return
    from twin.adapter_meta import read_meta
    from twin.memory import check_memory_applies

    for _, path in pairs:
        check_memory_applies(path, read_meta(path), k)


def _base_dir(base: str | None, adapters: list[str] | None) -> str:
    """``--base``, else the base recorded in the first adapter's twin.json."""
    if base is not None:
        return base
    if not adapters:
        raise TwinError("give --base DIR, or an --adapter whose twin.json names its base")
    from twin.model.load import resolve_base
    from twin.serve.engine import parse_adapter_specs

    return str(resolve_base(parse_adapter_specs(adapters[:1])[0][1]))


def check_server_url(server: str) -> None:
    """``--server`` is an http(s) URL: ``127.0.0.1:8000`` without its scheme made the page say it cannot
    reach the server and to run `make serve`, while the server was up and the URL was at fault."""
    from urllib.parse import urlparse

    u = urlparse(server)
    if u.scheme not in ("http", "https") or not u.netloc or any(c.isspace() for c in server):
        raise TwinError(f"--server {server}: give the server's URL, e.g. http://127.0.0.1:8000")


def chat_cmd(
    server: str = typer.Option("http://127.0.0.1:8000", "--server", help="URL of a running `twin serve`."),
    port: int = typer.Option(8501, "--port", help="Port of the chat page."),
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address of the chat page."),
) -> None:
    """Open the chat page (Streamlit) talking to a running `twin serve`."""
    check_server_url(server)
    check_port("--port", port)
    check_port_free(
        host, port, "twin chat", "--port N (make chat CHAT_PORT=N)"
    )  # else a false "chat page on" line
    cmd = chat_command(server, port, host)
    env = {**os.environ, SERVER_ENV: server, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    log.info("chat page on http://%s:%d (talking to %s)", host, port, server)
    # The repo root: Streamlit reads .streamlit/config.toml from the working directory.
    os.chdir(web_app_path().parents[1])
    if hasattr(os, "execve"):
        # Become streamlit: signals (ctrl-C, a supervisor's SIGTERM) reach it directly, no orphan.
        os.execve(cmd[0], cmd, env)
    code = subprocess.call(cmd, env=env)
    if code:
        raise TwinError(
            f"streamlit exited with status {code}; is the port {port} free? try --port N", exit_code=code
        )
