"""Alerts: the record, the tracker that opens, grows and closes them, their store, and the one sink."""

from vigil.alerts.model import STATUSES, VERDICTS, Alert, AlertEvent, alert_id
from vigil.alerts.sink import AlertSink, Publisher
from vigil.alerts.store import SCHEMA_VERSION, AlertStore, SqlAlertStore, merge_alert, open_store
from vigil.alerts.tracker import SINGLE_SENSOR_SHARE, AlertTracker, default_incident_type

__all__ = [
    "SCHEMA_VERSION",
    "SINGLE_SENSOR_SHARE",
    "STATUSES",
    "VERDICTS",
    "Alert",
    "AlertEvent",
    "AlertSink",
    "AlertStore",
    "AlertTracker",
    "Publisher",
    "SqlAlertStore",
    "alert_id",
    "default_incident_type",
    "merge_alert",
    "open_store",
]
