"""The FastAPI app: ``POST /reply``, ``/reply/stream`` (SSE), ``/v1/chat/completions`` (OpenAI), health.

``create_app(engine, ...)`` builds an app around an already loaded :class:`~twin.serve.engine.Engine`
(so tests and the benchmark build apps without reloading the model). Errors have one JSON shape,
OpenAI's ``{"error": {"message", "type", "param", "code"}}``, and never contain chat text:
FastAPI's default validation handler echoes the offending ``input``, so it is replaced here.
"""

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

# Serving reads local directories only: no hub calls, no telemetry (set before transformers loads).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from twin.errors import TwinError
from twin.model.generate import Generation, GenParams
from twin.serve.engine import Adapter, Engine, Gate, Overloaded
from twin.serve.schemas import AdapterOut, AdaptersResponse, Limits, ReplyResponse, Usage, request_models

log = logging.getLogger(__name__)

TOKEN_ENV = "TWIN_API_TOKEN"


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, param: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.headers = status, message, param, headers or {}


_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
          413: "invalid_request_error", 422: "invalid_request_error", 503: "overloaded_error"}  # fmt: skip


def error_response(
    status: int, message: str, param: str | None = None, headers: dict | None = None, **extra: Any
):
    body = {"error": {"message": message, "type": _TYPES.get(status, "server_error"), "param": param,
                      "code": status, **extra}}  # fmt: skip
    return JSONResponse(body, status_code=status, headers=headers)


class BodyLimit:
    """Pure ASGI middleware: refuse a request body over ``max_bytes`` with 413, before parsing it.

    Checks ``Content-Length`` up front; a chunked body is read (at most ``max_bytes`` + one chunk,
    the cap is small) and replayed to the app, so the limit holds however the body is sent.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = error_response(413, f"request body is over the {self.max_bytes}-byte limit")
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await too_big(scope, receive, send)
            return
        chunks, seen, more = [], 0, True
        while more:
            msg = await receive()
            if msg["type"] != "http.request":  # client went away
                return
            chunks.append(msg.get("body", b""))
            seen += len(chunks[-1])
            more = msg.get("more_body", False)
            if seen > self.max_bytes:
                await too_big(scope, receive, send)
                return
        replay: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replayed() -> Message:
            return replay.pop() if replay else await receive()

        await self.app(scope, replayed, send)


def _field(loc: tuple | list) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def create_app(
    engine: Engine,
    *,
    limits: Limits | None = None,
    queue_size: int = 32,
    token: str | None = None,
    gate: Gate | None = None,
) -> FastAPI:
    """The twin API around a loaded engine. ``token`` (default: $TWIN_API_TOKEN) turns on bearer auth."""
    limits = limits or Limits()
    token = (token if token is not None else os.environ.get(TOKEN_ENV)) or None  # "" = no auth
    gate = gate or Gate(queue_size=queue_size)
    ReplyRequest, ChatCompletionRequest = request_models(limits)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        gate.shutdown()

    app = FastAPI(title="twin", version="1", docs_url="/docs", redoc_url=None, lifespan=lifespan)
    app.state.engine, app.state.gate, app.state.limits = engine, gate, limits
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Our own message per problem: field + what is wrong, never the value that was sent.
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(400, "the request body is not valid JSON", "body")
        fields = [
            {"field": _field(e.get("loc", ())), "problem": str(e.get("msg", "invalid"))} for e in errors
        ]
        message = "; ".join(f"{f['field']}: {f['problem']}" for f in fields)
        return error_response(422, message, fields[0]["field"] if fields else None, fields=fields)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.param, exc.headers)

    @app.exception_handler(TwinError)
    async def _twin_error(request: Request, exc: TwinError) -> JSONResponse:
        # Raised for a request the model cannot serve (e.g. max_new_tokens past its context size);
        # these messages name parameters and files, never chat text.
        return error_response(400, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        log.error("request failed: %s", type(exc).__name__)  # no message: it may quote chat text
        return error_response(500, "internal error while generating; see the server log")

    def require_token(request: Request) -> None:
        if token is None:
            return
        got = request.headers.get("authorization", "")
        scheme, _, value = got.partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(value.strip().encode(), token.encode()):
            raise ApiError(401, f"missing or wrong bearer token (the server has ${TOKEN_ENV} set)",
                           headers={"WWW-Authenticate": "Bearer"})  # fmt: skip

    auth = [Depends(require_token)]

    def adapter_for(name: str | None, param: str) -> Adapter:
        adapter = engine.resolve(name)
        if adapter is None:
            raise ApiError(
                404, f"{param}: not a registered adapter; registered: {', '.join(engine.names)}", param=param
            )
        return adapter

    def params_from(req: Any, max_new: int | None, extra_stops: tuple[str, ...] = ()) -> GenParams:
        d = GenParams()
        return GenParams(
            max_new_tokens=max_new or d.max_new_tokens,
            temperature=d.temperature if req.temperature is None else req.temperature,
            top_p=d.top_p if req.top_p is None else req.top_p,
            top_k=d.top_k if req.top_k is None else req.top_k,
            repetition_penalty=d.repetition_penalty
            if req.repetition_penalty is None
            else req.repetition_penalty,
            seed=req.seed,
            extra_stops=extra_stops,
        )

    def reserve() -> None:
        try:
            gate.reserve()
        except Overloaded as e:
            log.warning("queue full (%d pending): 503", gate.pending)
            raise ApiError(503, "the twin is busy with other requests; retry after the given seconds",
                           headers={"Retry-After": str(e.retry_after)}) from None  # fmt: skip

    def timed(job: Callable[..., Generation]) -> Callable[..., Generation]:
        """``job`` that records how long it waited for the worker (call right before submitting)."""
        submitted = time.perf_counter()

        def waited(*args: Any, **kwargs: Any) -> Generation:
            wait = time.perf_counter() - submitted
            gen = job(*args, **kwargs)
            gen.queue_seconds = wait
            return gen

        return waited

    async def run(job: Callable[..., Generation]) -> Generation:
        reserve()
        return await asyncio.wrap_future(gate.submit(timed(job)))

    def stream(job: Callable[..., Generation], render: Callable[[str, Any], str]) -> StreamingResponse:
        """Run ``job(on_delta, cancel)`` on the worker; ``render(kind, value)`` makes each SSE frame."""
        reserve()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()

        def put(item: tuple[str, Any]) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the event loop is gone (server shutting down)
                cancel.set()

        job = timed(job)
        future = gate.submit(lambda: job(lambda d: put(("delta", d)), cancel))
        future.add_done_callback(lambda f: put(("done", f)))

        async def frames() -> AsyncIterator[str]:
            try:
                yield render("start", None)
                while True:
                    kind, value = await queue.get()
                    if kind == "delta":
                        yield render("delta", value)
                        continue
                    exc = value.exception()
                    if exc is not None:
                        log.error("streamed generation failed: %s", type(exc).__name__)
                        yield render("error", "internal error while generating; see the server log")
                    else:
                        yield render("done", value.result())
                    return
            finally:
                cancel.set()  # client gone: the worker stops at the next token

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(frames(), media_type="text/event-stream", headers=headers)

    def reply_body(gen: Generation, adapter: Adapter) -> dict:
        return ReplyResponse(
            reply=gen.text,
            adapter=adapter.name,
            usage=Usage(prompt_tokens=gen.prompt_tokens, completion_tokens=gen.completion_tokens),
            latency_s=round(gen.seconds, 4),
            tokens_per_s=round(gen.tokens_per_s, 2),
            queue_s=round(gen.queue_seconds, 4),
            finish_reason="length" if gen.stopped_by == "length" else "stop",
        ).model_dump()

    def log_done(route: str, adapter: Adapter, gen: Generation) -> None:
        log.info("%s adapter=%s prompt=%d completion=%d %.2fs (%s)", route, adapter.name,
                 gen.prompt_tokens, gen.completion_tokens, gen.seconds, gen.stopped_by)  # fmt: skip

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok", "adapters": len(engine.names), "pending": gate.pending,
                "queue_size": gate.queue_size, "limits": dataclasses.asdict(limits)}  # fmt: skip

    @app.get("/adapters", dependencies=auth, response_model=AdaptersResponse)
    def adapters() -> AdaptersResponse:
        return AdaptersResponse(
            default=engine.default,
            adapters=[
                AdapterOut(
                    name=a.name,
                    template=a.template,
                    default=a.name == engine.default,
                    created=a.created,
                    base_model_type=engine.base_model_type,
                )  # fmt: skip
                for a in engine.adapters.values()
            ],
        )

    def reply_job(req: Any, adapter: Adapter) -> Callable[..., Generation]:
        history = [t.model_dump() for t in req.history]
        params = params_from(req, req.max_new_tokens)
        return lambda on_delta=None, cancel=None: engine.run(
            adapter, history, req.message, req.contact, params, on_delta, cancel
        )

    @app.post("/reply", dependencies=auth, response_model=ReplyResponse)
    async def reply(req: ReplyRequest) -> dict:  # type: ignore[valid-type]
        adapter = adapter_for(req.adapter, "adapter")
        gen = await run(reply_job(req, adapter))
        log_done("/reply", adapter, gen)
        return reply_body(gen, adapter)

    @app.post("/reply/stream", dependencies=auth)
    async def reply_stream(req: ReplyRequest) -> StreamingResponse:  # type: ignore[valid-type]
        adapter = adapter_for(req.adapter, "adapter")

        def render(kind: str, value: Any) -> str:
            if kind == "start":
                return f"event: start\ndata: {json.dumps({'adapter': adapter.name})}\n\n"
            if kind == "delta":
                return f"event: token\ndata: {json.dumps({'text': value}, ensure_ascii=False)}\n\n"
            if kind == "error":
                return f"event: error\ndata: {json.dumps({'error': {'message': value, 'code': 500}})}\n\n"
            log_done("/reply/stream", adapter, value)
            return f"event: done\ndata: {json.dumps(reply_body(value, adapter), ensure_ascii=False)}\n\n"

        return stream(reply_job(req, adapter), render)

    @app.get("/v1/models", dependencies=auth)
    def models() -> dict:
        return {"object": "list",
                "data": [{"id": n, "object": "model", "created": 0, "owned_by": "twin"} for n in engine.names]}  # fmt: skip

    @app.post("/v1/chat/completions", dependencies=auth)
    async def chat_completions(req: ChatCompletionRequest) -> Any:  # type: ignore[valid-type]
        adapter = adapter_for(req.model, "model")
        # OpenAI roles -> twin's: the user is "them" (the contact), the assistant is "me" (the twin).
        turns = [m for m in req.messages if m.role in ("user", "assistant")]
        *earlier, last = turns
        if len(earlier) > limits.max_history:
            raise ApiError(422, f"messages: more than {limits.max_history} earlier turns", param="messages")
        history = [{"role": "them" if m.role == "user" else "me", "text": m.text()} for m in earlier]
        params = params_from(req, req.max_completion_tokens or req.max_tokens, req.stops())
        message, contact = last.text(), last.name

        def job(on_delta=None, cancel=None) -> Generation:
            return engine.run(adapter, history, message, contact, params, on_delta, cancel)

        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())

        def finish(gen: Generation) -> str:
            return "length" if gen.stopped_by == "length" else "stop"

        if not req.stream:
            gen = await run(job)
            log_done("/v1/chat/completions", adapter, gen)
            return {
                "id": cid, "object": "chat.completion", "created": created, "model": adapter.name,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": gen.text},
                             "finish_reason": finish(gen)}],
                "usage": {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens,
                          "total_tokens": gen.prompt_tokens + gen.completion_tokens},
            }  # fmt: skip

        def chunk(delta: dict, finish_reason: str | None = None, **extra: Any) -> str:
            body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": adapter.name,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}], **extra}  # fmt: skip
            return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

        def render(kind: str, value: Any) -> str:
            if kind == "start":
                return chunk({"role": "assistant", "content": ""})
            if kind == "delta":
                return chunk({"content": value})
            if kind == "error":
                return f"data: {json.dumps({'error': {'message': value, 'code': 500}})}\n\ndata: [DONE]\n\n"
            log_done("/v1/chat/completions", adapter, value)
            usage = {"prompt_tokens": value.prompt_tokens, "completion_tokens": value.completion_tokens,
                     "total_tokens": value.prompt_tokens + value.completion_tokens}  # fmt: skip
            return chunk({}, finish(value), usage=usage) + "data: [DONE]\n\n"

        return stream(job, render)

    return app
