"""From an HTTP request to the engine and back: a place in the queue, the wait, and the SSE stream.

The engine runs on its own thread; :func:`start` takes a place in the bounded queue (503 when it
is full) and hands the job over. :func:`complete` awaits the reply; :func:`stream` forwards text
deltas from the engine's thread to the event loop and renders them as server-sent events. A client
that goes away sets the job's ``cancel`` event, and the engine drops it at its next step.
"""

from __future__ import annotations

import asyncio
import logging
import math
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
        future = s.engine.submit(job.adapter, job.conversation, job.params, on_delta, cancel)
    except BaseException:
        s.gate.release()
        raise
    s.gate.track(future, cancel)
    return future


async def _watch_disconnect(request: Request, cancel: threading.Event) -> None:
    """Set ``cancel`` when the client hangs up: the body is read, so the connection's next ASGI
    message is ``http.disconnect`` (a wait on the receive channel, not a poll)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    cancel.set()


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


FLUSH_EVERY_S = 0.02  # a stream writes its frames at most this often (the last one at once)


class Relay:
    """Items from the engine's thread to one coroutine on the event loop, in bursts.

    :meth:`take` (on the loop) returns everything :meth:`put` (any thread) added since its last
    call, in order, and at most once every ``every`` seconds: it waits out the rest of the interval on
    a loop timer and then takes what came meanwhile. ``put`` wakes the loop only when ``take`` found
    nothing and waits, so while a small model decodes a token every few ms the engine's thread never
    wakes the event loop (nor hands it the GIL) per token; a slow one's tokens still go out one by one
    as they come. A ``final`` item (the reply's end) is taken at once. ``put`` returns False when the
    loop is gone (the server shutting down).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, every: float = FLUSH_EVERY_S) -> None:
        self.loop, self.every = loop, every
        self._lock = threading.Lock()
        self._items: list[Any] = []
        self._waiting = False  # take() found nothing and waits for the next put
        self._ready = asyncio.Event()
        self._final = False  # the last item is in (set on the loop)
        self._last = -math.inf  # loop time of the last burst taken

    def put(self, item: Any, final: bool = False) -> bool:
        with self._lock:
            self._items.append(item)
            wake, self._waiting = self._waiting, False
        try:
            if final:
                self.loop.call_soon_threadsafe(self._end)
            elif wake:
                self.loop.call_soon_threadsafe(self._ready.set)
        except RuntimeError:
            return False
        return True

    def _end(self) -> None:
        self._final = True
        self._ready.set()

    async def take(self) -> list[Any]:
        early = self._last + self.every - self.loop.time()
        if early > 0 and not self._final:  # let what comes meanwhile ride with this burst
            self._ready.clear()  # set by the timer, or at once by the end (_end)
            timer = self.loop.call_later(early, self._ready.set)
            await self._ready.wait()
            timer.cancel()
        while True:
            with self._lock:
                items, self._items = self._items, []
                self._waiting = not items
            if items:
                self._last = self.loop.time()
                return items
            self._ready.clear()  # a put's wake-up, if any, is scheduled after this (same loop)
            await self._ready.wait()


def stream(s: Services, job: Job, render: Callable[[str, Any], str]) -> StreamingResponse:
    """Generate ``job`` with text deltas; ``render(kind, value)`` makes each SSE frame
    (kinds: ``start``, ``delta`` with the text, ``done`` with the Generation, ``error``).

    Frames are written in bursts (:class:`Relay`): the deltas of up to ``FLUSH_EVERY_S`` together, as
    one chunk of ``token`` frames (each delta still its own frame); ``done`` goes out at once.
    """
    relay = Relay(asyncio.get_running_loop())
    cancel = threading.Event()

    def put(item: tuple[str, Any]) -> None:
        if not relay.put(item, final=item[0] == "done"):
            cancel.set()

    future = start(s, job, lambda d: put(("delta", d)), cancel)
    future.add_done_callback(lambda f: put(("done", f)))

    async def frames() -> AsyncIterator[str]:
        try:
            yield render("start", None)
            while True:
                burst = await relay.take()
                text = "".join(render("delta", value) for kind, value in burst if kind == "delta")
                if burst[-1][0] == "delta":
                    yield text
                    continue
                yield text + end_frame(burst[-1][1], render)
                return
        finally:
            cancel.set()  # client gone: the engine drops the job at its next step

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(frames(), media_type="text/event-stream", headers=headers)


def end_frame(future: Future, render: Callable[[str, Any], str]) -> str:
    """The stream's last frame: ``done`` with the Generation, or ``error``."""
    exc = future.exception()
    if isinstance(exc, ApiError):  # e.g. the --backend does not answer: said, and logged, where raised
        return render("error", exc.message)
    if exc is not None:
        log.error("streamed generation failed: %s", type(exc).__name__)
        return render("error", "internal error while generating; see the server log")
    return render("done", future.result())


def log_done(route: str, job: Job, gen: Generation) -> None:
    log.info("%s adapter=%s prompt=%d completion=%d %.2fs (%s)", route, job.adapter.name,
             gen.prompt_tokens, gen.completion_tokens, gen.seconds, gen.stopped_by)  # fmt: skip
