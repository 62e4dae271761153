"""``GET /healthz``, ``GET /readyz`` and ``GET /metrics``: is the server up, and how busy."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from zeroshot_vision.server._context import ServerContext, context
from zeroshot_vision.server._metrics import CONTENT_TYPE

__all__ = ["healthz", "prometheus", "readyz", "router"]

router = APIRouter(tags=["health"])

Context = Annotated[ServerContext, Depends(context)]


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Alive: the process answers HTTP (on the event loop: no worker thread needed)."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(ctx: Context) -> JSONResponse:
    """Ready: the models are loaded and their threads run, the indexes are open."""
    ok = ctx.service.ready
    return JSONResponse(
        {"status": "ready" if ok else "not ready", "models": len(ctx.service.models)},
        status_code=200 if ok else 503,
    )


@router.get("/metrics", response_class=Response)
def prometheus(ctx: Context) -> Response:
    """Requests, latencies, batch sizes and queue depth, in the Prometheus format."""
    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE)
