"""The devices seen: ``/devices``, a device's timeline, and its feedback threshold (with undo)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from vigil.service.routes.deps import READ, WRITE, RuntimeDep

__all__ = ["UndoBody", "router"]

router = APIRouter(tags=["devices"])


class UndoBody(BaseModel):
    """Who undoes a device's threshold change, and optionally which change is meant (refused unless the latest)."""

    user: str = Field(default="", max_length=200)
    change: int | None = Field(default=None, ge=1)


def _unknown(device: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"no served model knows device {device!r}")


@router.get("/devices", dependencies=[READ])
def devices(runtime: RuntimeDep) -> dict[str, Any]:
    """Devices seen since the service started, with their last score."""
    return {"devices": runtime.devices()}


@router.get("/devices/{device}/timeline", dependencies=[READ])
def timeline(device: str, runtime: RuntimeDep) -> dict[str, Any]:
    """The device's recent scores and thresholds, oldest first, and its recent alerts."""
    points = runtime.timeline(device)
    alerts = runtime.store.list(device=device, limit=50)
    return {"device": device, "points": points, "alerts": [a.to_dict() for a in alerts]}


@router.get("/devices/{device}/threshold", dependencies=[READ])
def device_threshold(device: str, runtime: RuntimeDep) -> dict[str, Any]:
    """The device's threshold set by feedback, its model's, the bounds, the guard, and every change."""
    view = runtime.device_threshold(device)
    if view is None:
        raise _unknown(device)
    return view


@router.post("/devices/{device}/threshold/undo", dependencies=[WRITE])
def undo_threshold(device: str, runtime: RuntimeDep, body: UndoBody | None = None) -> dict[str, Any]:
    """Restore the value before the device's latest threshold change still in force; 422 if there is none."""
    body = body or UndoBody()
    change = runtime.undo_threshold(device, who=body.user, change_id=body.change)
    if change is None:
        raise _unknown(device)
    return {"change": change.to_dict(), "threshold": runtime.device_threshold(device)}
