"""HTTP plumbing shared by the routes: one error shape, the body-size and Host middlewares, bearer auth.

Errors have one JSON shape, OpenAI's ``{"error": {"message", "type", "param", "code"}}``, and
never contain chat text: FastAPI's default validation handler echoes the offending ``input``, so
it is replaced here.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from twin.errors import TwinError

log = logging.getLogger("twin.serve.app")

TOKEN_ENV = "TWIN_API_TOKEN"


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, param: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.headers = status, message, param, headers or {}


_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
          413: "invalid_request_error", 422: "invalid_request_error", 503: "overloaded_error"}  # fmt: skip


def error_response(
    status: int, message: str, param: str | None = None, headers: dict | None = None, **extra: Any
) -> JSONResponse:
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


class LoopbackHost:
    """Pure ASGI middleware for a server bound to loopback: refuse (400) a ``Host`` that is not loopback.

    A web page can point its own domain at 127.0.0.1 (DNS rebinding) and then post to the server
    from the visitor's browser, same-origin as far as the browser knows; its requests still carry
    that domain in ``Host``. Loopback addresses, ``localhost`` and the names in ``allowed``
    (``--allow-host``) pass; a request without ``Host`` (not a browser) too.
    """

    def __init__(self, app: ASGIApp, allowed: Iterable[str] = ()) -> None:
        self.app = app
        self.allowed = {"localhost", *(h.strip().lower().rstrip(".") for h in allowed)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = dict(scope.get("headers") or []).get(b"host")
            if host is not None and not self.allows(host.decode("latin-1")):
                refuse = error_response(
                    400,
                    "Host header names neither this machine's loopback nor an allowed name; "
                    "start twin serve with --allow-host NAME to accept it",
                    "host",
                )
                await refuse(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def allows(self, host: str) -> bool:
        name = host_name(host)
        if name in self.allowed:
            return True
        try:
            return ipaddress.ip_address(name).is_loopback
        except ValueError:
            return False


def host_name(host: str) -> str:
    """``Host`` without its port, lowercased: ``[::1]:8000`` -> ``::1``, ``LocalHost:80`` -> ``localhost``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def _field(loc: tuple | list) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    # Our own message per problem: field + what is wrong, never the value that was sent.
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "the request body is not valid JSON", "body")
    fields = [{"field": _field(e.get("loc", ())), "problem": str(e.get("msg", "invalid"))} for e in errors]
    message = "; ".join(f"{f['field']}: {f['problem']}" for f in fields)
    return error_response(422, message, fields[0]["field"] if fields else None, fields=fields)


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.message, exc.param, exc.headers)


async def _twin_error(request: Request, exc: TwinError) -> JSONResponse:
    # Raised for a request the model cannot serve (e.g. max_new_tokens past its context size);
    # these messages name parameters and files, never chat text.
    return error_response(400, str(exc))


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))


async def _crash(request: Request, exc: Exception) -> JSONResponse:
    log.error("request failed: %s", where(exc))  # no message: it may quote chat text
    return error_response(500, "internal error while generating; see the server log")


def where(exc: BaseException) -> str:
    """``TypeError at twin/x.py:12 in f``: the exception's type and innermost frame, never its message."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    return f"{type(exc).__name__} at {last.filename}:{last.lineno} in {last.name}"


class CrashGuard:
    """Pure ASGI middleware: an exception no handler took is one log line (:func:`where`) and a 500.

    Starlette's outermost middleware answers it with the ``Exception`` handler and then raises it
    again, so uvicorn printed "Exception in ASGI application" and the whole traceback, the
    exception's message included (which may quote chat text), for every such request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as e:
            log.error("request failed: %s", where(e))
            if not started:  # else the client sees the response cut short
                await error_response(500, "internal error while generating; see the server log")(
                    scope, receive, send
                )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(TwinError, _twin_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _crash)


def check_token(token: str | None, authorization: str) -> None:
    """Raise 401 unless ``authorization`` is ``Bearer <token>`` (no check when ``token`` is None)."""
    if token is None:
        return
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(value.strip().encode(), token.encode()):
        raise ApiError(401, f"missing or wrong bearer token (the server has ${TOKEN_ENV} set)",
                       headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
