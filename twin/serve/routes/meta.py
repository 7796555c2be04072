"""``GET /healthz``, ``/adapters`` and ``/v1/models``: what the server holds and how busy it is."""

from __future__ import annotations

import dataclasses

from fastapi import APIRouter, Depends

from twin.serve.deps import Services, require_token, services
from twin.serve.schemas import AdapterOut, AdaptersResponse


def router() -> APIRouter:
    """Cheap reads of the server's state: ``async def``, run on the event loop (no thread-pool hop)."""
    r = APIRouter()

    @r.get("/healthz")
    async def healthz(s: Services = Depends(services)) -> dict:
        return {"status": "ok", "adapters": len(s.engine.names), "pending": s.gate.pending,
                "queue_size": s.gate.queue_size, "limits": dataclasses.asdict(s.limits)}  # fmt: skip

    @r.get("/adapters", dependencies=[Depends(require_token)], response_model=AdaptersResponse)
    async def adapters(s: Services = Depends(services)) -> AdaptersResponse:
        engine = s.engine
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

    @r.get("/v1/models", dependencies=[Depends(require_token)])
    async def models(s: Services = Depends(services)) -> dict:
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "twin"} for n in s.engine.names]
        return {"object": "list", "data": data}

    return r
