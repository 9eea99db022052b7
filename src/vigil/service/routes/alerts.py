"""The alerts an operator reads and judges: ``/alerts``, an alert, its image, its verdict, and ``/dead-letters``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from vigil.service.routes.deps import READ, WRITE, Limit, Offset, RuntimeDep, Since, StoreDep, Until, time_param
from vigil.streaming.dead_letters import DEAD_LETTER_KINDS

__all__ = ["VerdictBody", "router"]

router = APIRouter(tags=["alerts"])


class VerdictBody(BaseModel):
    """An operator's verdict on an alert."""

    verdict: Literal["confirmed", "false_positive", "note"]
    note: str = Field(default="", max_length=4000)
    user: str = Field(default="", max_length=200)


@router.get("/alerts", dependencies=[READ])
def list_alerts(
    store: StoreDep,
    device: Annotated[str | None, Query(max_length=128)] = None,
    status: Annotated[str | None, Query(max_length=32)] = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Alerts, newest first, that match every filter given."""
    start, end = time_param(since, "since"), time_param(until, "until")
    alerts = store.list(device=device, status=status, since=start, until=end, limit=limit, offset=offset)
    total = store.count(device=device, status=status, since=start, until=end)
    return {"total": total, "alerts": [alert.to_dict() for alert in alerts]}


@router.get("/alerts/{alert_id}", dependencies=[READ])
def get_alert(alert_id: str, store: StoreDep) -> dict[str, Any]:
    """One alert: its explanation, the features that drove it, and the feedback it received."""
    alert = store.get(alert_id)
    if alert is None:
        raise HTTPException(status_code=404, detail=f"no alert with id {alert_id!r}")
    return alert.to_dict()


@router.get(
    "/alerts/{alert_id}/image",
    dependencies=[READ],
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
def get_alert_image(alert_id: str, store: StoreDep) -> Response:
    """A camera alert's frame as the model read it, its anomaly map over it, a colour bar and the threshold
    (PNG); 404 for an alert without one (telemetry and network alerts, detectors that draw no map)."""
    image = store.get_image(alert_id)
    if image is None:
        detail = f"alert {alert_id!r} has no image: only camera alerts of a model with anomaly maps carry one"
        raise HTTPException(status_code=404, detail=detail)
    media_type, data = image
    # A camera alert's image is drawn once, when the frame is scored: the dashboard need not fetch it again.
    return Response(content=data, media_type=media_type, headers={"Cache-Control": "private, max-age=3600"})


@router.post("/alerts/{alert_id}/verdict", dependencies=[WRITE])
def post_verdict(alert_id: str, body: VerdictBody, runtime: RuntimeDep) -> dict[str, Any]:
    """Record a verdict; a false positive raises the device's threshold within bounds (``threshold_change``)."""
    if runtime.store.get(alert_id) is None:
        raise HTTPException(status_code=404, detail=f"no alert with id {alert_id!r}")
    alert = runtime.store.add_verdict(alert_id, body.verdict, note=body.note, user=body.user)
    change = runtime.apply_verdict(alert)
    return {
        "alert": alert.to_dict(),
        "device_threshold": None if change is None else change.new,
        "threshold_change": None if change is None else change.to_dict(),
    }


@router.get("/dead-letters", dependencies=[READ])
def list_dead_letters(
    store: StoreDep,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Refused messages and records, newest first, with their reasons, and how many of each kind are stored."""
    letters = store.list_dead_letters(kind=kind, limit=limit, offset=offset)
    # The kinds are a fixed, short list, so one count each tells an operator what goes wrong without paging.
    counts = {k: store.count_dead_letters(k) for k in DEAD_LETTER_KINDS}
    return {
        "total": store.count_dead_letters(kind),
        "by_kind": {k: n for k, n in counts.items() if n},
        "dead_letters": [d.to_dict() for d in letters],
    }
