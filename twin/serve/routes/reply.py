"""``POST /reply`` and ``/reply/stream`` (SSE): twin's own API."""

# No `from __future__ import annotations`: FastAPI reads the request model class from the signature.
import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from twin.inference.generate import Generation
from twin.serve import bridge
from twin.serve.deps import Job, Services, adapter_for, params_from, require_token, services, within_limits
from twin.serve.schemas import ReplyRequest, ReplyResponse, Usage


def reply_body(gen: Generation, job: Job) -> dict:
    return ReplyResponse(
        reply=gen.text,
        adapter=job.adapter.name,
        usage=Usage(prompt_tokens=gen.prompt_tokens, completion_tokens=gen.completion_tokens),
        latency_s=round(gen.seconds, 4),
        tokens_per_s=round(gen.tokens_per_s, 2),
        queue_s=round(gen.queue_seconds, 4),
        finish_reason="length" if gen.stopped_by == "length" else "stop",
    ).model_dump()


def job_from(s: Services, req: ReplyRequest) -> Job:
    within_limits(req, s.limits)
    return Job(
        adapter_for(s.engine, req.adapter, "adapter"),
        req.conversation(),
        params_from(req, req.max_new_tokens),
    )


def sse_render(job: Job):
    """SSE frames of ``/reply/stream``: ``start``, ``token`` per delta, then ``done`` (or ``error``)."""

    def render(kind: str, value: Any) -> str:
        if kind == "start":
            return f"event: start\ndata: {json.dumps({'adapter': job.adapter.name})}\n\n"
        if kind == "delta":
            return f"event: token\ndata: {json.dumps({'text': value}, ensure_ascii=False)}\n\n"
        if kind == "error":
            return f"event: error\ndata: {json.dumps({'error': {'message': value, 'code': 500}})}\n\n"
        bridge.log_done("/reply/stream", job, value)
        return f"event: done\ndata: {json.dumps(reply_body(value, job), ensure_ascii=False)}\n\n"

    return render


def router() -> APIRouter:
    r = APIRouter(dependencies=[Depends(require_token)])

    @r.post("/reply", response_model=ReplyResponse)
    async def reply(req: ReplyRequest, request: Request, s: Services = Depends(services)) -> dict:
        job = job_from(s, req)
        gen = await bridge.complete(s, job, request)
        bridge.log_done("/reply", job, gen)
        return reply_body(gen, job)

    @r.post("/reply/stream")
    async def reply_stream(req: ReplyRequest, s: Services = Depends(services)) -> StreamingResponse:
        job = job_from(s, req)
        return bridge.stream(s, job, sse_render(job))

    return r
