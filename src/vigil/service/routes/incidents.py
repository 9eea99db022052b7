"""The asset incidents endpoints: ``GET /incidents`` and ``GET /incidents/{id}``, with their evidence.

An incident (:mod:`vigil.alerts.asset_incidents`) names its alerts by id; both endpoints return it with
those alerts as the store holds them now (their status and operators' verdicts included), each with its
modality and what drove it, so that an operator sees the telemetry deviation, the network attack and the
camera finding of one asset side by side.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from vigil.alerts import Alert, AssetIncident
from vigil.service.routes.deps import READ, Limit, Offset, Since, StoreDep, Until, time_param

__all__ = ["router"]

router = APIRouter(tags=["incidents"], dependencies=[READ])

_SUMMARY_FIELDS = (
    *("id", "device", "modality", "start", "end"),
    *("score", "threshold", "incident_type", "status", "explanation"),
)


def _with_evidence(incident: AssetIncident, alerts: dict[str, Alert], *, full: bool) -> dict[str, Any]:
    members = [alerts[i] for i in incident.alert_ids if i in alerts]
    if full:
        evidence = [a.to_dict() for a in members]
    else:
        evidence = [{k: v for k, v in a.to_dict().items() if k in _SUMMARY_FIELDS} for a in members]
    # An alert still being committed by another source's batch is named but not yet readable.
    missing = [i for i in incident.alert_ids if i not in alerts]
    return {**incident.to_dict(), "alerts": evidence, "missing_alerts": missing}


@router.get("/incidents")
def list_incidents(
    store: StoreDep,
    asset: Annotated[str | None, Query(max_length=128)] = None,
    status: Annotated[str | None, Query(max_length=32, description="open, closed or merged")] = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Asset incidents, newest first, each with a summary of its alerts (device, modality, what drove it)."""
    start, end = time_param(since, "since"), time_param(until, "until")
    incidents = store.list_incidents(asset=asset, status=status, since=start, until=end, limit=limit, offset=offset)
    total = store.count_incidents(asset=asset, status=status, since=start, until=end)
    alerts = {a.id: a for a in store.get_many([i for incident in incidents for i in incident.alert_ids])}
    return {"total": total, "incidents": [_with_evidence(i, alerts, full=False) for i in incidents]}


@router.get("/incidents/{incident_id}")
def get_incident(incident_id: str, store: StoreDep) -> dict[str, Any]:
    """One incident with all its evidence: every member alert in full (modality, features, explanation)."""
    incident = store.get_incident(incident_id)
    if incident is None:
        raise HTTPException(status_code=404, detail=f"no incident with id {incident_id!r}")
    alerts = {a.id: a for a in store.get_many(incident.alert_ids)}
    return _with_evidence(incident, alerts, full=True)
