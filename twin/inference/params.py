"""A request's sampling settings (:class:`GenParams`) and its finished reply (:class:`Generation`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from twin.errors import TwinError


@dataclass
class GenParams:
    """Sampling settings of one request. ``temperature == 0`` is greedy decoding."""

    max_new_tokens: int = 64
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 50
    repetition_penalty: float = 1.1
    seed: int | None = None
    # EOS is blocked for the first tokens: a reply is never empty (no training reply is).
    min_new_tokens: int = 1
    # Extra stop strings on top of the template's (e.g. speaker lines from ``speaker_stops``).
    extra_stops: tuple[str, ...] = ()

    def validate(self) -> GenParams:
        checks = (
            ("max_new_tokens", self.max_new_tokens >= 1, "an integer >= 1"),
            (
                "min_new_tokens",
                0 <= self.min_new_tokens <= self.max_new_tokens,
                "between 0 and max_new_tokens",
            ),
            ("temperature", self.temperature >= 0 and math.isfinite(self.temperature), "a number >= 0"),
            ("top_p", 0 < self.top_p <= 1, "a number in (0, 1]"),
            ("top_k", self.top_k >= 0, "an integer >= 0 (0 = off)"),
            ("repetition_penalty", self.repetition_penalty > 0, "a number > 0 (1 = off)"),
        )
        for name, ok, what in checks:
            if not ok:
                raise TwinError(f"generation parameter {name}={getattr(self, name)!r}: must be {what}")
        return self


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    stopped_by: str = "length"  # "eos", "stop" (a stop string) or "length" (max_new_tokens)
    queue_seconds: float = 0.0  # set by the server: time the request waited before generation began

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0
