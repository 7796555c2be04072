"""The server's admission gate: how many requests it holds (decoding + waiting), the 503s beyond.

HTTP-layer policy, kept out of the engine: the engine decodes what it is given; the gate decides
what an HTTP client may hand it and when to say "retry later".
"""

from __future__ import annotations

import math
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field


class Overloaded(Exception):
    def __init__(self, retry_after: int):
        super().__init__("the server is busy")
        self.retry_after = retry_after


@dataclass
class Gate:
    """How many requests the server holds: ``slots`` decoding at once (the engine's batch, a capacity)
    + ``queue_size`` waiting.

    One more is refused with :class:`Overloaded`, whose ``retry_after`` estimates (from recent
    latencies) when a place frees up. A place is released when its reply's future is done, however
    it ended (reply, error, client gone), so a cancelled request never keeps its place.
    """

    queue_size: int = 32
    slots: int = 1  # generation slots: requests the engine decodes together (its max batch)
    _pending: int = 0
    _latency: float = 1.0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cancels: set = field(default_factory=set)

    @property
    def pending(self) -> int:
        return self._pending

    def reserve(self) -> None:
        """Claim a place (decoding or waiting) or raise :class:`Overloaded`."""
        with self._lock:
            if self._pending >= self.queue_size + self.slots:
                waves = math.ceil((self._pending + 1) / self.slots)
                raise Overloaded(max(1, math.ceil(waves * self._latency)))
            self._pending += 1

    def release(self, seconds: float | None = None) -> None:
        with self._lock:
            self._pending = max(0, self._pending - 1)
            if seconds is not None:  # smoothed service time: what Retry-After is estimated from
                self._latency = 0.8 * self._latency + 0.2 * seconds

    def track(self, future: Future, cancel: threading.Event) -> None:
        """Release the place taken with :meth:`reserve` when ``future`` is done."""
        with self._lock:
            self._cancels.add(cancel)

        def done(f: Future) -> None:
            with self._lock:
                self._cancels.discard(cancel)
            gen = None if f.cancelled() or f.exception() else f.result()
            self.release(gen.seconds if gen is not None else None)

        future.add_done_callback(done)

    def shutdown(self) -> None:
        """The app is stopping: every request it still holds is cancelled (the engine may live on)."""
        with self._lock:
            cancels = list(self._cancels)
        for c in cancels:
            c.set()
