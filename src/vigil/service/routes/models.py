"""The served models: ``/models``, hot swap (``activate``, ``rollback``) and ``drift``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from vigil.service.routes.deps import READ, WRITE, RuntimeDep

__all__ = ["ActivateBody", "router"]

router = APIRouter(tags=["models"])


class ActivateBody(BaseModel):
    """The version to activate."""

    version: str = Field(min_length=1, max_length=64)


@router.get("/models", dependencies=[READ])
def list_models(runtime: RuntimeDep) -> dict[str, Any]:
    """Served models, the active version of each, and every stored version (for rollback)."""
    models = runtime.models()
    for model in models:
        model["versions"] = [info.to_dict() for info in runtime.registry.versions(model["name"])]
    return {"models": models}


@router.post("/models/{name}/activate", dependencies=[WRITE])
def activate(name: str, body: ActivateBody, runtime: RuntimeDep) -> dict[str, Any]:
    """Hot-swap a stored version in, without losing queued telemetry."""
    previous = runtime.activate(name, body.version, reason="activated through the API")
    return {"model": name, "version": body.version, "previous": previous}


@router.post("/models/{name}/rollback", dependencies=[WRITE])
def rollback(name: str, runtime: RuntimeDep) -> dict[str, Any]:
    """Go back to the version that was active before the current one."""
    return {"model": name, "version": runtime.rollback(name)}


@router.get("/models/{name}/drift", dependencies=[READ])
def drift(name: str, runtime: RuntimeDep) -> dict[str, Any]:
    """Whether recent scores still look like the training scores."""
    return {"model": name, **runtime.drift(name).to_dict()}
