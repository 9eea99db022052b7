"""``GET /health`` and ``GET /metrics`` (Prometheus), open to all: what a load balancer and a scraper read."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from vigil.service.prometheus import CONTENT_TYPE, render_metrics
from vigil.service.routes.deps import RuntimeDep, State

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get("/health")
def health(state: State) -> JSONResponse:
    """200 while the runtime runs ("ok", or "degraded" with the reasons), 503 once it stopped; the queue
    depth, served versions and transport status."""
    runtime = state.runtime
    reasons = runtime.health() if runtime.running else ["the runtime is not running"]
    content: dict[str, Any] = {
        "status": "stopped" if not runtime.running else "degraded" if reasons else "ok",
        "reasons": reasons,
        "queue_depth": runtime.queue_depth,
        "models": {m["name"]: m["version"] for m in runtime.models()},
    }
    if state.status is not None:
        content.update(state.status())
    return JSONResponse(status_code=200 if runtime.running else 503, content=content)


@router.get("/metrics")
def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus metrics."""
    return Response(content=render_metrics(runtime), media_type=CONTENT_TYPE)
