"""From an HTTP request to the engine and back: a place in the queue, the wait, and the SSE stream.

The engine runs on its own thread; :func:`start` takes a place in the bounded queue (503 when it
is full) and hands the job over. :func:`complete` awaits the reply; :func:`stream` forwards text
deltas from the engine's thread to the event loop and renders them as server-sent events. A client
that goes away sets the job's ``cancel`` event, and the engine drops it at its next step.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from typing import Any

from starlette.requests import Request
from starlette.responses import StreamingResponse

from twin.inference.generate import Generation
from twin.serve.deps import Job, Services
from twin.serve.gate import Overloaded
from twin.serve.http import ApiError

log = logging.getLogger("twin.serve.app")

DISCONNECT_POLL_S = 0.25  # how often a waiting non-streaming request checks that its client is there


def reserve(s: Services) -> None:
    try:
        s.gate.reserve()
    except Overloaded as e:
        log.warning("queue full (%d pending): 503", s.gate.pending)
        raise ApiError(503, "the twin is busy with other requests; retry after the given seconds",
                       headers={"Retry-After": str(e.retry_after)}) from None  # fmt: skip


def start(
    s: Services,
    job: Job,
    on_delta: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
) -> Future:
    """Queue ``job`` (or answer 503); the future's result is its :class:`Generation`.

    The place in the queue is released when the future is done, however the job ended.
    """
    reserve(s)
    cancel = cancel or threading.Event()
    try:
        future = s.engine.submit(
            job.adapter, job.history, job.message, job.contact, job.params, on_delta, cancel
        )
    except BaseException:
        s.gate.release()
        raise
    s.gate.track(future, cancel)
    return future


async def _watch_disconnect(request: Request, cancel: threading.Event) -> None:
    while not cancel.is_set():
        if await request.is_disconnected():
            cancel.set()
            return
        await asyncio.sleep(DISCONNECT_POLL_S)


async def complete(s: Services, job: Job, request: Request) -> Generation:
    """The whole reply; a client that hangs up meanwhile cancels it (queued or decoding)."""
    cancel = threading.Event()
    future = start(s, job, cancel=cancel)
    watcher = asyncio.create_task(_watch_disconnect(request, cancel))
    try:
        return await asyncio.wrap_future(future)
    finally:
        watcher.cancel()
        cancel.set()  # no-op once done; if this task was cancelled, the engine drops the job


def stream(s: Services, job: Job, render: Callable[[str, Any], str]) -> StreamingResponse:
    """Generate ``job`` with text deltas; ``render(kind, value)`` makes each SSE frame
    (kinds: ``start``, ``delta`` with the text, ``done`` with the Generation, ``error``)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    cancel = threading.Event()

    def put(item: tuple[str, Any]) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the event loop is gone (server shutting down)
            cancel.set()

    future = start(s, job, lambda d: put(("delta", d)), cancel)
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
            cancel.set()  # client gone: the engine drops the job at its next step

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(frames(), media_type="text/event-stream", headers=headers)


def log_done(route: str, job: Job, gen: Generation) -> None:
    log.info("%s adapter=%s prompt=%d completion=%d %.2fs (%s)", route, job.adapter.name,
             gen.prompt_tokens, gen.completion_tokens, gen.seconds, gen.stopped_by)  # fmt: skip
