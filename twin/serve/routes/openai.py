"""``POST /v1/chat/completions``: the OpenAI-compatible endpoint (plain JSON or SSE chunks).

OpenAI roles map to twin's: the user is "them" (the contact), the assistant is "me" (the twin). With
``"group": true`` the chat is a group called ``contact`` and each user message's ``name`` says who
wrote it (:meth:`ChatCompletionRequest.conversation`, the group prompt ``/reply`` builds).
"""

# No `from __future__ import annotations`: FastAPI reads the request model class from the signature.
import json
import time
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request

from twin.inference.generate import Generation
from twin.serve import bridge
from twin.serve.deps import Job, Services, adapter_for, params_from, require_token, services, within_limits
from twin.serve.http import ApiError
from twin.serve.schemas import ChatCompletionRequest


def job_from(s: Services, req: ChatCompletionRequest) -> Job:
    within_limits(req, s.limits)
    if len(req.turns()) - 1 > s.limits.max_history:
        raise ApiError(422, f"messages: more than {s.limits.max_history} earlier turns", param="messages")
    return Job(
        adapter=adapter_for(s.engine, req.model, "model"),
        conversation=req.conversation(),
        params=params_from(req, req.max_completion_tokens or req.max_tokens, req.stops()),
    )


def finish_reason(gen: Generation) -> str:
    return "length" if gen.stopped_by == "length" else "stop"


def usage(gen: Generation) -> dict:
    return {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens,
            "total_tokens": gen.prompt_tokens + gen.completion_tokens}  # fmt: skip


def completion_body(cid: str, created: int, job: Job, gen: Generation) -> dict:
    return {
        "id": cid, "object": "chat.completion", "created": created, "model": job.adapter.name,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": gen.text},
                     "finish_reason": finish_reason(gen)}],
        "usage": usage(gen),
    }  # fmt: skip


def chunk_render(cid: str, created: int, job: Job, include_usage: bool = False):
    """SSE chunks as OpenAI streams them: role, content deltas, the finish, then with ``include_usage``
    a chunk with empty ``choices`` and the usage (every other chunk's ``usage`` null), ``[DONE]``."""
    extra = {"usage": None} if include_usage else {}

    def chunk(delta: dict, reason: str | None = None) -> str:
        body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": job.adapter.name,
                "choices": [{"index": 0, "delta": delta, "finish_reason": reason}], **extra}  # fmt: skip
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    def usage_chunk(gen: Generation) -> str:
        body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": job.adapter.name,
                "choices": [], "usage": usage(gen)}  # fmt: skip
        return f"data: {json.dumps(body)}\n\n"

    def render(kind: str, value: Any) -> str:
        if kind == "start":
            return chunk({"role": "assistant", "content": ""})
        if kind == "delta":
            return chunk({"content": value})
        if kind == "error":
            return f"data: {json.dumps({'error': {'message': value, 'code': 500}})}\n\ndata: [DONE]\n\n"
        bridge.log_done("/v1/chat/completions", job, value)
        return (
            chunk({}, finish_reason(value))
            + (usage_chunk(value) if include_usage else "")
            + "data: [DONE]\n\n"
        )

    return render


def router() -> APIRouter:
    r = APIRouter(dependencies=[Depends(require_token)])

    @r.post("/v1/chat/completions")
    async def chat_completions(
        req: ChatCompletionRequest, request: Request, s: Services = Depends(services)
    ) -> Any:
        job = job_from(s, req)
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if req.stream:
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return bridge.stream(s, job, chunk_render(cid, created, job, include_usage))
        gen = await bridge.complete(s, job, request)
        bridge.log_done("/v1/chat/completions", job, gen)
        return completion_body(cid, created, job, gen)

    return r
