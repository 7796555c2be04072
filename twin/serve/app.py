"""The FastAPI app: ``POST /reply``, ``/reply/stream`` (SSE), ``/v1/chat/completions`` (OpenAI), health.

``create_app(engine, ...)`` builds an app around an already loaded :class:`~twin.serve.engine.ReplyEngine`
(so tests and the benchmark build apps without reloading the model): the services go to
``app.state`` and reach the routes by dependency injection, one router per concern
(``routes/meta.py``, ``routes/reply.py``, ``routes/openai.py``); error shapes, auth and the body cap
are in ``http.py``, the queue-to-SSE bridge in ``bridge.py``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

from fastapi import FastAPI

from twin.serve.deps import Services
from twin.serve.engine import ReplyEngine
from twin.serve.gate import Gate
from twin.serve.http import (
    TOKEN_ENV,
    ApiError,
    BodyLimit,
    CrashGuard,
    LoopbackHost,
    error_response,
    install_error_handlers,
)
from twin.serve.routes import meta, openai, reply
from twin.serve.schemas import Limits

__all__ = ["TOKEN_ENV", "ApiError", "create_app", "error_response"]


def create_app(
    engine: ReplyEngine,
    *,
    limits: Limits | None = None,
    queue_size: int = 32,
    token: str | None = None,
    gate: Gate | None = None,
    loopback_hosts: list[str] | None = None,
    docs: bool = False,
) -> FastAPI:
    """The twin API around a loaded engine. ``token`` (default: $TWIN_API_TOKEN) turns on bearer auth.

    ``loopback_hosts``: the server is bound to loopback, so only loopback ``Host`` headers and these
    extra names are served (DNS rebinding); None: no Host check (bound elsewhere, or a test client).
    ``docs``: FastAPI's ``/docs`` page, which makes the browser load Swagger UI from a CDN: off
    unless asked for (``twin serve --docs``); ``/openapi.json`` (local) is always there.
    """
    limits = limits or Limits()
    token = (token if token is not None else os.environ.get(TOKEN_ENV)) or None  # "" = no auth
    gate = gate or Gate(queue_size=queue_size, slots=engine.max_batch)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        gate.shutdown()

    app = FastAPI(
        title="twin", version="1", docs_url="/docs" if docs else None, redoc_url=None, lifespan=lifespan
    )
    app.state.services = Services(engine=engine, gate=gate, limits=limits, token=token)
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)
    app.add_middleware(CrashGuard)
    if loopback_hosts is not None:
        app.add_middleware(LoopbackHost, allowed=loopback_hosts)  # added last: runs first
    install_error_handlers(app)
    app.include_router(meta.router())
    app.include_router(reply.router())
    app.include_router(openai.router())
    return app
