"""What the routes get injected: the app's services (engine, queue gate, caps, token) and helpers
that turn a request into the engine's terms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError

from twin.inference.generate import Conversation, GenParams
from twin.serve.engine import Adapter, ReplyEngine
from twin.serve.gate import Gate
from twin.serve.http import ApiError, check_token
from twin.serve.schemas import Limits


@dataclass
class Services:
    engine: ReplyEngine
    gate: Gate
    limits: Limits
    token: str | None  # None: no auth


@dataclass
class Job:
    """One reply to generate: what the engine needs, already validated."""

    adapter: Adapter
    conversation: Conversation
    params: GenParams


# The dependencies are ``async def``: FastAPI runs a plain ``def`` one in AnyIO's thread pool, a hand-off
# to another thread (and back) per request for a few attribute reads.
async def services(request: Request) -> Services:
    return request.app.state.services


async def require_token(request: Request, s: Services = Depends(services)) -> None:
    check_token(s.token, request.headers.get("authorization", ""))


def within_limits(req: Any, limits: Limits) -> None:
    """A 422 naming every field of ``req`` over this server's caps (``req.over_limits``)."""
    problems = req.over_limits(limits)
    if problems:
        raise RequestValidationError(
            [{"loc": ("body", *loc), "msg": problem, "type": "over_limit"} for loc, problem in problems]
        )


def adapter_for(engine: ReplyEngine, name: str | None, param: str) -> Adapter:
    adapter = engine.resolve(name)
    if adapter is None:
        raise ApiError(
            404, f"{param}: not a registered adapter; registered: {', '.join(engine.names)}", param=param
        )
    return adapter


def params_from(req: Any, max_new: int | None, extra_stops: tuple[str, ...] = ()) -> GenParams:
    """A request's sampling fields over the defaults of :class:`GenParams`."""
    d = GenParams()
    return GenParams(
        max_new_tokens=max_new or d.max_new_tokens,
        temperature=d.temperature if req.temperature is None else req.temperature,
        top_p=d.top_p if req.top_p is None else req.top_p,
        top_k=d.top_k if req.top_k is None else req.top_k,
        repetition_penalty=d.repetition_penalty if req.repetition_penalty is None else req.repetition_penalty,
        seed=req.seed,
        min_new_tokens=d.min_new_tokens
        if getattr(req, "min_new_tokens", None) is None
        else req.min_new_tokens,
        extra_stops=extra_stops,
    )
