"""Alerts: the record, the tracker that opens, grows and closes them, asset incidents, their store, the sink."""

from vigil.alerts.asset_incidents import (
    DEFAULT_INCIDENT_WINDOW,
    INCIDENT_STATUSES,
    AssetIncident,
    AssetMap,
    IncidentCorrelator,
    IncidentEvent,
    device_asset,
    incident_id,
)
from vigil.alerts.model import MODALITIES, STATUSES, VERDICTS, Alert, AlertEvent, alert_id
from vigil.alerts.sink import AlertSink, IncidentPublisher, Publisher
from vigil.alerts.store import SCHEMA_VERSION, AlertStore, SqlAlertStore, merge_alert, open_store
from vigil.alerts.tracker import SINGLE_SENSOR_SHARE, AlertTracker, default_incident_type

__all__ = [
    "DEFAULT_INCIDENT_WINDOW",
    "INCIDENT_STATUSES",
    "MODALITIES",
    "SCHEMA_VERSION",
    "SINGLE_SENSOR_SHARE",
    "STATUSES",
    "VERDICTS",
    "Alert",
    "AlertEvent",
    "AlertSink",
    "AlertStore",
    "AlertTracker",
    "AssetIncident",
    "AssetMap",
    "IncidentCorrelator",
    "IncidentEvent",
    "IncidentPublisher",
    "Publisher",
    "SqlAlertStore",
    "alert_id",
    "default_incident_type",
    "device_asset",
    "incident_id",
    "merge_alert",
    "open_store",
]
