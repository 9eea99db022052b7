"""The alert and feedback store: one implementation, on SQLAlchemy Core, for SQLite and PostgreSQL.

Every alert is upserted by its deterministic id, so replaying a stream updates rows instead of duplicating
them, and an operator's verdict (``confirmed`` / ``false_positive``) and notes are appended to the alert's
feedback history (:func:`merge_alert`: a verdict is never lost to a later tracker update). Refused
messages (dead letters) are kept beside the alerts, in the same transaction as the batch they came with,
and so are the asset incidents that the batch opened or changed (:mod:`vigil.alerts.asset_incidents`). An
alert may carry one image beside it (a camera alert's frame with its anomaly map, :meth:`SqlAlertStore.put_image`).

The embedded default is one SQLite file in WAL mode with ``synchronous=FULL``: ``NORMAL`` would survive a
crash of the process but can lose the last commits on power loss, and operators' verdicts cannot be
replayed from the telemetry the way alerts can. Writes happen per batch and per verdict, not per telemetry
point, so an fsync per commit is affordable. A write takes SQLite's write lock at once (``BEGIN
IMMEDIATE``), which serialises writers of several processes sharing the file.

PostgreSQL keeps the tables in one schema (``vigil`` by default; ``?schema=NAME`` in the URL picks another),
so several deployments, or test runs, can share a database; rows being merged are locked (``FOR UPDATE``).
A lost connection is replaced on the next call; the sink retries the batch meanwhile.

Both keep the same columns; times are ISO 8601 text on SQLite (it sorts in time order) and ``TIMESTAMPTZ``
on PostgreSQL, JSON is text on SQLite and ``JSONB`` on PostgreSQL.
"""

from __future__ import annotations

import builtins
import functools
import json
import math
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.pool import StaticPool

from vigil.alerts.asset_incidents import INCIDENT_STATUSES, AssetIncident
from vigil.alerts.model import STATUSES, VERDICTS, Alert
from vigil.errors import InvalidInputError, VigilError
from vigil.streaming.dead_letters import DEAD_LETTER_KINDS, DeadLetter
from vigil.times import format_time, parse_time

__all__ = ["MAX_IMAGE_BYTES", "SCHEMA_VERSION", "AlertStore", "SqlAlertStore", "merge_alert", "open_store"]

#: Version of the table layout: ``PRAGMA user_version`` on SQLite, the ``meta`` table on PostgreSQL.
#: Version 2 added the alerts' ``modality`` and the ``incidents`` table; a version-1 store gains both when
#: it is opened (its alerts' modality is ``""``: it was not recorded).
SCHEMA_VERSION = 2

#: ``PRAGMA application_id`` of a Vigil SQLite alert store ("VIGL"), so a foreign SQLite file is recognised.
APPLICATION_ID = 0x5649474C

_VERDICT_STATUSES = ("confirmed", "false_positive")

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

_IN_CHUNK = 500  # ids per IN (...) list, well inside SQLite's bound-parameter limit


class _Time(sa.types.TypeDecorator[datetime]):
    """A UTC time: ISO 8601 text with microseconds on SQLite, TIMESTAMPTZ on PostgreSQL."""

    impl = sa.Text
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True))
        return dialect.type_descriptor(sa.Text())

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        moment = parse_time(value, "time")
        return moment if dialect.name == "postgresql" else format_time(moment)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else parse_time(value, "stored time")


class _Json(sa.types.TypeDecorator[Any]):
    """JSON: text on SQLite, JSONB on PostgreSQL (values are checked for NaN before they get here)."""

    impl = sa.Text
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB())
        return dialect.type_descriptor(sa.Text())

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        return value if dialect.name == "postgresql" else json.dumps(value)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        return value if dialect.name == "postgresql" else json.loads(value)


_metadata = sa.MetaData()

_alerts = sa.Table(
    "alerts",
    _metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("device", sa.Text, nullable=False),
    sa.Column("start_time", _Time, nullable=False),
    sa.Column("end_time", _Time, nullable=False),
    sa.Column("peak_time", _Time, nullable=False),
    sa.Column("score", sa.Double, nullable=False),
    sa.Column("threshold", sa.Double, nullable=False),
    sa.Column("model_version", sa.Text, nullable=False),
    sa.Column("top_features", _Json, nullable=False),  # [[feature, share], ...], largest first
    sa.Column("incident_type", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("n_points", sa.Integer, nullable=False),
    sa.Column("feedback", _Json, nullable=False),  # [{"time", "verdict", "note", "user"}, ...], oldest first
    sa.Column("explanation", sa.Text, nullable=False),
    sa.Column("modality", sa.Text, nullable=False, server_default=""),
    sa.CheckConstraint(f"status IN ({', '.join(repr(s) for s in STATUSES)})", name="alerts_status"),
    sa.Index("alerts_start", "start_time"),
    sa.Index("alerts_device_start", "device", "start_time"),
    sa.Index("alerts_status_start", "status", "start_time"),
)

_dead_letters = sa.Table(
    "dead_letters",
    _metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("received", _Time, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("device", sa.Text),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Index("dead_letters_received", "received"),
    sqlite_autoincrement=True,  # ids are never reused, so "newest first" is "largest id first"
)

_incidents = sa.Table(
    "incidents",
    _metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("asset", sa.Text, nullable=False),
    sa.Column("start_time", _Time, nullable=False),
    sa.Column("end_time", _Time, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("alert_ids", _Json, nullable=False),  # in the order of the alerts' start
    sa.Column("modalities", _Json, nullable=False),
    sa.Column("devices", _Json, nullable=False),
    sa.Column("merged_into", sa.Text, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.CheckConstraint(f"status IN ({', '.join(repr(s) for s in INCIDENT_STATUSES)})", name="incidents_status"),
    sa.Index("incidents_start", "start_time"),
    sa.Index("incidents_asset_start", "asset", "start_time"),
)

# What the runtime has processed (records received, scored, dead-lettered... by kind), added to at every flush,
# so that the counts of /metrics carry across restarts. A table any version-2 store gains when opened.
_counters = sa.Table(
    "counters",
    _metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

# One image per alert at most (a camera alert's frame with its anomaly map over it), kept apart from the alerts
# so that listing alerts never reads image bytes. Like the counters, a table any version-2 store gains when opened.
_alert_images = sa.Table(
    "alert_images",
    _metadata,
    sa.Column("alert_id", sa.Text, primary_key=True),
    sa.Column("media_type", sa.Text, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

#: The largest image :meth:`SqlAlertStore.put_image` takes: an overlay PNG is tens of kilobytes.
MAX_IMAGE_BYTES = 4 * 1024 * 1024
_IMAGE_TYPES = ("image/png", "image/jpeg")

# PostgreSQL only: SQLite keeps the version in PRAGMA user_version.
_meta = sa.Table(
    "meta",
    _metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)


def _span_filters(
    table: sa.Table,
    key: str,
    value: str | None,
    status: str | None,
    statuses: Sequence[str],
    since: datetime | None,
    until: datetime | None,
) -> list[Any]:
    """WHERE clauses of a listing of alerts or incidents: one device/asset, a status, overlap with a span."""
    clauses: list[Any] = []
    if value is not None:
        if not isinstance(value, str):
            msg = f"{key} must be a string, got {type(value).__name__}"
            raise InvalidInputError(msg)
        clauses.append(table.c[key] == value)
    if status is not None:
        if status not in statuses:
            msg = f"status must be one of {', '.join(statuses)}, got {status!r}"
            raise InvalidInputError(msg)
        clauses.append(table.c.status == status)
    if since is not None:
        clauses.append(table.c.end_time >= parse_time(since, "since"))
    if until is not None:
        clauses.append(table.c.start_time < parse_time(until, "until"))
    return clauses


class AlertStore(Protocol):
    """What the sink, the service, the dashboard and feedback need from an alert store."""

    def upsert(self, alert: Alert) -> Alert: ...

    def upsert_many(
        self,
        alerts: Sequence[Alert],
        dead_letters: Sequence[DeadLetter] = (),
        incidents: Sequence[AssetIncident] = (),
    ) -> list[Alert]: ...

    def get(self, alert_id: str) -> Alert | None: ...

    def get_many(self, alert_ids: Sequence[str]) -> list[Alert]: ...

    def get_incident(self, incident_id: str) -> AssetIncident | None: ...

    def list_incidents(
        self,
        asset: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> builtins.list[AssetIncident]: ...

    def count_incidents(
        self,
        asset: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int: ...

    def add_verdict(
        self, alert_id: str, verdict: str, note: str = "", user: str = "", *, time: datetime | None = None
    ) -> Alert: ...

    def count(
        self,
        device: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int: ...

    def list(
        self,
        device: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> builtins.list[Alert]: ...

    def add_dead_letters(self, dead_letters: Sequence[DeadLetter]) -> None: ...

    def list_dead_letters(
        self, kind: str | None = None, limit: int | None = 100, offset: int = 0
    ) -> builtins.list[DeadLetter]: ...

    def count_dead_letters(self, kind: str | None = None) -> int: ...

    def add_counts(self, counts: Mapping[str, int]) -> None: ...

    def counters(self) -> dict[str, int]: ...

    def put_image(self, alert_id: str, data: bytes, media_type: str = "image/png") -> None: ...

    def get_image(self, alert_id: str) -> tuple[str, bytes] | None: ...

    def close(self) -> None: ...


def _feedback_key(entry: dict[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True)


def merge_alert(stored: Alert | None, incoming: Alert) -> Alert:
    """Return what to store when ``incoming`` replaces ``stored`` (the row with the same id, or None).

    The tracker knows nothing of verdicts: a stored ``confirmed`` or ``false_positive`` status survives an
    incoming ``open`` or ``closed`` one, and feedback entries missing from the incoming alert are kept.
    """
    if stored is None:
        return incoming
    return _merge(stored.status, stored.feedback, incoming)


def _merge(status: str, feedback: list[dict[str, Any]], incoming: Alert) -> Alert:
    """:func:`merge_alert` from what it reads of the stored alert: its status and its feedback."""
    keep = status in _VERDICT_STATUSES and incoming.status not in _VERDICT_STATUSES
    if not feedback and not keep:
        return incoming
    seen = {_feedback_key(entry) for entry in feedback}
    merged = feedback + [e for e in incoming.feedback if _feedback_key(e) not in seen]
    return incoming.copy(status=status if keep else incoming.status, feedback=merged)


def _redact(url: str) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)


class SqlAlertStore:
    """Alerts, their feedback and dead letters in SQLite or PostgreSQL; safe to share between threads.

    Parameters
    ----------
    url : str or Path
        A SQLite file (a plain path, ``sqlite:///alerts.db`` relative or ``sqlite:////var/lib/a.db``
        absolute; created if missing, its folder must exist), ``":memory:"``, or
        ``postgresql://USER@HOST:PORT/DB`` (or ``postgres://``), optionally with ``?schema=NAME``.
    schema : str, optional
        PostgreSQL only: overrides the URL's schema; lower-case letters, digits and ``_``.
    connect_timeout : float
        PostgreSQL only: seconds to wait for the server.
    busy_timeout : float
        SQLite only: seconds a write waits for another process's lock before it fails (and is retried by
        the sink).

    Raises
    ------
    InvalidInputError
        The file cannot be opened, is not a SQLite database, belongs to another application, the server
        is unreachable, the schema name is bad, or the store was written by a newer Vigil.

    Examples
    --------
    >>> from vigil.alerts.tracker import AlertTracker
    >>> tracker = AlertTracker(model_version="ae-3")
    >>> with SqlAlertStore(":memory:") as store:
    ...     for event in tracker.update("pump2", 0.0, 4.2, 1.0, True, {"pump2.flow_m3h": 1.0}):
    ...         _ = store.upsert(event.alert)
    ...     alert = store.list(device="pump2")[0]
    ...     store.add_verdict(alert.id, "confirmed", note="seal leak", user="ana").status
    'confirmed'
    >>> alert.explanation
    'pump2.flow_m3h drove 100 % of the score (peak 4.2× threshold)'
    """

    def __init__(
        self,
        url: str | Path,
        *,
        schema: str | None = None,
        connect_timeout: float = 5.0,
        busy_timeout: float = 5.0,
    ) -> None:
        if not isinstance(url, str | Path):
            msg = f"url must be a str or Path, got {type(url).__name__}"
            raise InvalidInputError(msg)
        self._lock = threading.Lock()
        self._engine: sa.Engine | None = None
        self.schema: str | None
        self.path: str | None
        text = str(url)
        scheme, sep, rest = text.partition("://")
        if not sep or scheme == "sqlite":
            path = rest[1:] if sep else text  # sqlite:///a.db is relative, sqlite:////a.db absolute
            if not path:
                msg = f"{text!r} names no file: write sqlite:///alerts.db"
                raise InvalidInputError(msg)
            self.url, self.schema, self.path = f"sqlite:///{path}", None, path
            engine = self._sqlite_engine(path, busy_timeout)
        elif scheme in ("postgresql", "postgres"):
            parsed = sa.make_url(text).set(drivername="postgresql+psycopg")
            named = schema if schema is not None else parsed.query.get("schema", "vigil")
            if not isinstance(named, str) or not _SCHEMA_NAME.match(named):
                msg = f"schema must be lower-case letters, digits and '_', got {named!r}"
                raise InvalidInputError(msg)
            self.schema = named
            parsed = parsed.difference_update_query(["schema"])
            self.url, self.path = parsed.render_as_string(hide_password=False), None
            engine = sa.create_engine(
                parsed, pool_pre_ping=True, connect_args={"connect_timeout": max(1, round(connect_timeout))}
            ).execution_options(schema_translate_map={None: self.schema})
        else:
            msg = f"unsupported store URL scheme {scheme!r}: use sqlite:///FILE or postgresql://..."
            raise InvalidInputError(msg)
        self._engine = engine
        try:
            with self._transaction(write=True) as conn:
                if self.dialect == "sqlite":
                    self._setup_sqlite(conn)
                else:
                    self._setup_postgres(conn)
        except sa.exc.OperationalError as exc:
            self.close()
            msg = f"cannot connect to the alert store {self}: {exc.orig}"
            raise InvalidInputError(msg) from exc
        except sa.exc.DatabaseError as exc:
            self.close()
            msg = f"{self} is not a usable Vigil alert store: {exc.orig}"
            raise InvalidInputError(msg) from exc
        except BaseException:
            self.close()
            raise

    # -- setup --------------------------------------------------------------------------------------

    def _sqlite_engine(self, path: str, busy_timeout: float) -> sa.Engine:
        def connect() -> sqlite3.Connection:
            try:
                # isolation_level=None: the driver opens no transaction of its own; _begin below does.
                conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            except sqlite3.Error as exc:
                msg = f"cannot open the alert store {path!r}: {exc}"
                raise InvalidInputError(msg) from exc
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
                if path != ":memory:":
                    # WAL lets readers (the dashboard) run while the stream writes; it persists in the file.
                    conn.execute("PRAGMA journal_mode = WAL").fetchone()
                conn.execute("PRAGMA synchronous = FULL")
            except sqlite3.DatabaseError as exc:
                conn.close()
                msg = f"{path!r} is not a usable Vigil alert store: {exc}"
                raise InvalidInputError(msg) from exc
            return conn

        # One connection, used under the lock: what ":memory:" needs, and all that one process needs.
        engine = sa.create_engine("sqlite://", creator=connect, poolclass=StaticPool)

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            # IMMEDIATE takes the write lock at once, so two writing processes queue instead of deadlocking.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")

        return engine

    def _setup_sqlite(self, conn: sa.Connection) -> None:
        version = conn.exec_driver_sql("PRAGMA user_version").scalar_one()
        app_id = conn.exec_driver_sql("PRAGMA application_id").scalar_one()
        if version == 0 and app_id == 0:
            tables = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'").scalars().all()
            if tables:
                msg = f"{self.path!r} is a SQLite database of another application (tables: {', '.join(sorted(tables))})"
                raise InvalidInputError(msg)
            _metadata.create_all(conn, tables=[_alerts, _dead_letters, _incidents, _counters, _alert_images])
            conn.exec_driver_sql(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.exec_driver_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")
        elif app_id != APPLICATION_ID:
            msg = f"{self.path!r} is a SQLite database of another application (application_id={app_id})"
            raise InvalidInputError(msg)
        elif version > SCHEMA_VERSION:
            msg = (
                f"{self.path!r} has alert store schema version {version}; this Vigil reads versions up "
                f"to {SCHEMA_VERSION}: upgrade Vigil to open it"
            )
            raise InvalidInputError(msg)
        else:  # the dead letters came after version 1 without a bump: a version-1 file gains the table
            _metadata.create_all(conn, tables=[_dead_letters, _counters, _alert_images])
            if version < 2:
                self._upgrade_to_2(conn)
                conn.exec_driver_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _setup_postgres(self, conn: sa.Connection) -> None:
        # Two services starting together would race on CREATE ... IF NOT EXISTS: serialise them.
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(f"vigil-schema-{self.schema}"))))
        conn.execute(sa.schema.CreateSchema(str(self.schema), if_not_exists=True))
        version = None
        if sa.inspect(conn).has_table("meta", schema=self.schema):
            version = conn.execute(sa.select(_meta.c.value).where(_meta.c.key == "schema_version")).scalar()
        if version is not None and int(version) > SCHEMA_VERSION:
            msg = (
                f"schema {self.schema!r} has alert store version {version}; this Vigil reads versions up to "
                f"{SCHEMA_VERSION}: upgrade Vigil to open it"
            )
            raise InvalidInputError(msg)
        if version is not None and int(version) < 2:
            self._upgrade_to_2(conn)
        _metadata.create_all(conn, tables=[_meta, _alerts, _dead_letters, _incidents, _counters, _alert_images])
        if version is None:
            conn.execute(_meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
        elif int(version) < SCHEMA_VERSION:
            conn.execute(_meta.update().where(_meta.c.key == "schema_version").values(value=str(SCHEMA_VERSION)))

    def _upgrade_to_2(self, conn: sa.Connection) -> None:
        # Version 1 did not record where an alert came from: its alerts keep an empty modality rather
        # than a guess. Raw DDL does not go through the schema map, hence the explicit schema.
        alerts = "alerts" if self.dialect == "sqlite" else f'"{self.schema}".alerts'
        conn.exec_driver_sql(f"ALTER TABLE {alerts} ADD COLUMN modality TEXT NOT NULL DEFAULT ''")
        _metadata.create_all(conn, tables=[_incidents])

    # -- plumbing -----------------------------------------------------------------------------------

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return "sqlite" if self.path is not None else "postgresql"

    @contextmanager
    def _transaction(self, *, write: bool = False) -> Iterator[sa.Connection]:
        with self._lock:
            if self._engine is None:
                msg = f"the alert store {self} is closed"
                raise VigilError(msg)
            with self._engine.connect() as conn:
                if write:
                    conn.execution_options(write=True)
                with conn.begin():
                    yield conn

    @staticmethod
    def _row_to_alert(row: Any) -> Alert:
        return Alert(
            id=row.id,
            device=row.device,
            start=row.start_time,
            end=row.end_time,
            peak_time=row.peak_time,
            score=float(row.score),
            threshold=float(row.threshold),
            model_version=row.model_version,
            top_features=[(name, float(share)) for name, share in row.top_features],
            incident_type=row.incident_type,
            status=row.status,
            n_points=int(row.n_points),
            feedback=list(row.feedback),
            explanation=row.explanation,
            modality=row.modality,
        )

    @staticmethod
    def _row_to_incident(row: Any) -> AssetIncident:
        return AssetIncident(
            id=row.id,
            asset=row.asset,
            start=row.start_time,
            end=row.end_time,
            status=row.status,
            alert_ids=list(row.alert_ids),
            modalities=list(row.modalities),
            devices=list(row.devices),
            merged_into=row.merged_into,
            revision=int(row.revision),
        )

    @staticmethod
    def _incident_row(incident: AssetIncident) -> dict[str, Any]:
        if not isinstance(incident, AssetIncident):
            msg = f"expected an AssetIncident, got {type(incident).__name__}"
            raise InvalidInputError(msg)
        return {
            "id": incident.id,
            "asset": incident.asset,
            "start_time": incident.start,
            "end_time": incident.end,
            "status": incident.status,
            "alert_ids": [str(i) for i in incident.alert_ids],
            "modalities": [str(m) for m in incident.modalities],
            "devices": [str(d) for d in incident.devices],
            "merged_into": incident.merged_into,
            "revision": int(incident.revision),
        }

    @staticmethod
    def _alert_row(alert: Alert) -> dict[str, Any]:
        # Shares are floats (Alert makes them so): only a non-finite one, or the feedback, can fail as JSON.
        if alert.feedback or not all(math.isfinite(share) for _, share in alert.top_features):
            try:
                json.dumps([alert.top_features, alert.feedback], allow_nan=False)
            except (TypeError, ValueError) as exc:
                msg = f"alert {alert.id!r} cannot be stored as JSON: {exc}"
                raise InvalidInputError(msg) from exc
        return {
            "id": alert.id,
            "device": alert.device,
            "start_time": alert.start,
            "end_time": alert.end,
            "peak_time": alert.peak_time,
            "score": float(alert.score),
            "threshold": float(alert.threshold),
            "model_version": alert.model_version,
            "top_features": [[name, share] for name, share in alert.top_features],
            "incident_type": alert.incident_type,
            "status": alert.status,
            "n_points": int(alert.n_points),
            "feedback": alert.feedback,
            "explanation": alert.explanation,
            "modality": alert.modality,
        }

    def _letter_row(self, letter: DeadLetter) -> dict[str, Any]:
        if not isinstance(letter, DeadLetter):
            msg = f"expected a DeadLetter, got {type(letter).__name__}"
            raise InvalidInputError(msg)
        # PostgreSQL text cannot hold NUL; the excerpt shows where it was.
        payload = letter.payload.replace("\x00", "\ufffd") if self.dialect == "postgresql" else letter.payload
        return {
            "received": letter.received,
            "kind": letter.kind,
            "reason": letter.reason,
            "source": letter.source,
            "device": letter.device,
            "payload": payload,
        }

    @functools.cached_property
    def _upsert_statement(self) -> Any:
        # Built once: building an ON CONFLICT statement costs more than executing it for a few rows.
        insert = postgresql.insert(_alerts) if self.dialect == "postgresql" else sqlite_dialect.insert(_alerts)
        columns = {c.name: insert.excluded[c.name] for c in _alerts.columns if c.name != "id"}
        return insert.on_conflict_do_update(index_elements=[_alerts.c.id], set_=columns)

    @functools.cached_property
    def _incident_upsert_statement(self) -> Any:
        table = _incidents
        insert = postgresql.insert(table) if self.dialect == "postgresql" else sqlite_dialect.insert(table)
        columns = {c.name: insert.excluded[c.name] for c in table.columns if c.name != "id"}
        # Several sinks commit concurrently: a state older than the stored one never replaces it.
        return insert.on_conflict_do_update(
            index_elements=[table.c.id], set_=columns, where=table.c.revision < insert.excluded.revision
        )

    @staticmethod
    def _where(
        device: str | None, status: str | None, since: datetime | None, until: datetime | None
    ) -> builtins.list[Any]:
        return _span_filters(_alerts, "device", device, status, STATUSES, since, until)

    @staticmethod
    def _check_paging(limit: int | None, offset: int) -> None:
        for name, value in (("limit", limit), ("offset", offset)):
            if value is None and name == "limit":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                msg = f"{name} must be an integer >= 0, got {value!r}"
                raise InvalidInputError(msg)

    # -- alerts -------------------------------------------------------------------------------------

    def upsert(self, alert: Alert) -> Alert:
        """Insert the alert, or update the row with its id; return the alert as stored (see :func:`merge_alert`).

        Raises
        ------
        InvalidInputError
            ``alert`` is not an :class:`~vigil.alerts.model.Alert` or holds values JSON cannot store.
        """
        return self.upsert_many([alert])[0]

    def upsert_many(
        self,
        alerts: Sequence[Alert],
        dead_letters: Sequence[DeadLetter] = (),
        incidents: Sequence[AssetIncident] = (),
    ) -> builtins.list[Alert]:
        """Upsert alerts and incidents and add dead letters in one transaction (one fsync), or none of them.

        The sink calls this once per batch, so a batch's alerts, refused records and the incidents they
        changed are stored together. Each alert follows :meth:`upsert`'s rules; an id given twice is merged
        in order. An incident replaces the stored one only if its ``revision`` is higher. Returns the
        alerts as stored.
        """
        for alert in alerts:
            if not isinstance(alert, Alert):
                msg = f"upsert expects an Alert, got {type(alert).__name__}"
                raise InvalidInputError(msg)
            self._alert_row(alert)  # refuse what JSON cannot hold before anything is written
        letters = [self._letter_row(letter) for letter in dead_letters]
        ordered = sorted((self._incident_row(i) for i in incidents), key=lambda row: row["revision"])
        incident_rows = {row["id"]: row for row in ordered}  # of one id given twice, the newest
        ids = list(dict.fromkeys(alert.id for alert in alerts))
        merged: builtins.list[Alert] = []
        rows: dict[str, dict[str, Any]] = {}
        with self._transaction(write=True) as conn:
            # The merge reads only the stored status and feedback: the rest of a stored row is replaced.
            stored: dict[str, tuple[str, builtins.list[dict[str, Any]]]] = {}
            columns = (_alerts.c.id, _alerts.c.status, _alerts.c.feedback)
            for start in range(0, len(ids), _IN_CHUNK):
                query = sa.select(*columns).where(_alerts.c.id.in_(ids[start : start + _IN_CHUNK])).with_for_update()
                stored.update((row.id, (row.status, list(row.feedback))) for row in conn.execute(query))
            for incoming in alerts:
                before = stored.get(incoming.id)
                alert = incoming if before is None else _merge(before[0], before[1], incoming)
                stored[alert.id] = (alert.status, alert.feedback)
                merged.append(alert)
                rows[alert.id] = self._alert_row(alert)
            if rows:
                conn.execute(self._upsert_statement, [rows[i] for i in ids])
            if letters:
                conn.execute(_dead_letters.insert(), letters)
            if incident_rows:
                conn.execute(self._incident_upsert_statement, list(incident_rows.values()))
        return merged

    def get(self, alert_id: str) -> Alert | None:
        """Return the alert with this id, or None."""
        with self._transaction() as conn:
            row = conn.execute(sa.select(_alerts).where(_alerts.c.id == str(alert_id))).first()
        return None if row is None else self._row_to_alert(row)

    def get_many(self, alert_ids: Sequence[str]) -> builtins.list[Alert]:
        """Return the alerts with these ids that the store holds, in the order of ``alert_ids``."""
        ids = list(dict.fromkeys(str(i) for i in alert_ids))
        found: dict[str, Alert] = {}
        with self._transaction() as conn:
            for start in range(0, len(ids), _IN_CHUNK):
                query = sa.select(_alerts).where(_alerts.c.id.in_(ids[start : start + _IN_CHUNK]))
                found.update((row.id, self._row_to_alert(row)) for row in conn.execute(query))
        return [found[i] for i in ids if i in found]

    def add_verdict(
        self,
        alert_id: str,
        verdict: str,
        note: str = "",
        user: str = "",
        *,
        time: datetime | None = None,
    ) -> Alert:
        """Record an operator's verdict or note and return the updated alert.

        Parameters
        ----------
        alert_id : str
        verdict : {"confirmed", "false_positive", "note"}
            ``confirmed`` and ``false_positive`` set the status; ``note`` only adds to the history.
        note, user : str
            Free text and who gave the verdict.
        time : datetime, optional
            When the verdict was given; now (UTC) if None.

        Raises
        ------
        InvalidInputError
            An unknown verdict, a non-string note or user, or no alert with this id.
        """
        if verdict not in VERDICTS:
            msg = f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}"
            raise InvalidInputError(msg)
        for name, value in (("note", note), ("user", user)):
            if not isinstance(value, str):
                msg = f"{name} must be a string, got {type(value).__name__}"
                raise InvalidInputError(msg)
        moment = datetime.now(UTC) if time is None else parse_time(time, "time")
        with self._transaction(write=True) as conn:
            query = sa.select(_alerts).where(_alerts.c.id == str(alert_id)).with_for_update()
            row = conn.execute(query).first()
            if row is None:
                msg = f"no alert with id {alert_id!r} in the alert store {self}"
                raise InvalidInputError(msg)
            alert = self._row_to_alert(row)
            alert.feedback.append({"time": format_time(moment), "verdict": verdict, "note": note, "user": user})
            if verdict != "note":
                alert.status = verdict
            update = _alerts.update().where(_alerts.c.id == alert.id)
            conn.execute(update.values(status=alert.status, feedback=alert.feedback))
        return alert

    def count(
        self,
        device: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        """Count the alerts that :meth:`list` would return without a limit."""
        query = sa.select(sa.func.count()).select_from(_alerts).where(*self._where(device, status, since, until))
        with self._transaction() as conn:
            return int(conn.execute(query).scalar_one())

    def list(
        self,
        device: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> builtins.list[Alert]:
        """Return alerts, newest start first.

        Parameters
        ----------
        device, status : str, optional
            Keep only this device / this status.
        since, until : datetime, optional
            Keep alerts that overlap ``[since, until)``: still flagged at or after ``since``
            (``end >= since``) and started before ``until``.
        limit : int or None
            At most this many alerts; None for all.
        offset : int
            Skip this many alerts first (for paging).

        Raises
        ------
        InvalidInputError
            An unknown status, a naive datetime, or a negative limit or offset.
        """
        self._check_paging(limit, offset)
        query = (
            sa.select(_alerts)
            .where(*self._where(device, status, since, until))
            .order_by(_alerts.c.start_time.desc(), _alerts.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        with self._transaction() as conn:
            return [self._row_to_alert(row) for row in conn.execute(query)]

    # -- asset incidents ----------------------------------------------------------------------------

    @staticmethod
    def _incident_where(
        asset: str | None, status: str | None, since: datetime | None, until: datetime | None
    ) -> builtins.list[Any]:
        return _span_filters(_incidents, "asset", asset, status, INCIDENT_STATUSES, since, until)

    def get_incident(self, incident_id: str) -> AssetIncident | None:
        """Return the incident with this id, or None."""
        with self._transaction() as conn:
            row = conn.execute(sa.select(_incidents).where(_incidents.c.id == str(incident_id))).first()
        return None if row is None else self._row_to_incident(row)

    def list_incidents(
        self,
        asset: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> builtins.list[AssetIncident]:
        """Return asset incidents, newest start first, filtered as :meth:`list` filters alerts."""
        self._check_paging(limit, offset)
        query = (
            sa.select(_incidents)
            .where(*self._incident_where(asset, status, since, until))
            .order_by(_incidents.c.start_time.desc(), _incidents.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        with self._transaction() as conn:
            return [self._row_to_incident(row) for row in conn.execute(query)]

    def count_incidents(
        self,
        asset: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        """Count the incidents that :meth:`list_incidents` would return without a limit."""
        where = self._incident_where(asset, status, since, until)
        query = sa.select(sa.func.count()).select_from(_incidents).where(*where)
        with self._transaction() as conn:
            return int(conn.execute(query).scalar_one())

    # -- dead letters -------------------------------------------------------------------------------

    def add_dead_letters(self, dead_letters: Sequence[DeadLetter]) -> None:
        """Store refused messages with their reasons (see :mod:`vigil.streaming.dead_letters`)."""
        self.upsert_many([], dead_letters)

    @staticmethod
    def _kind_where(kind: str | None) -> builtins.list[Any]:
        if kind is None:
            return []
        if kind not in DEAD_LETTER_KINDS:
            msg = f"kind must be one of {', '.join(DEAD_LETTER_KINDS)}, got {kind!r}"
            raise InvalidInputError(msg)
        return [_dead_letters.c.kind == kind]

    def list_dead_letters(
        self, kind: str | None = None, limit: int | None = 100, offset: int = 0
    ) -> builtins.list[DeadLetter]:
        """Return dead letters, newest first, optionally of one ``kind`` only."""
        self._check_paging(limit, offset)
        query = (
            sa.select(_dead_letters)
            .where(*self._kind_where(kind))
            .order_by(_dead_letters.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        with self._transaction() as conn:
            rows = conn.execute(query).all()
        return [
            DeadLetter(
                id=r.id,
                received=r.received,
                kind=r.kind,
                reason=r.reason,
                source=r.source,
                device=r.device,
                payload=r.payload,
            )
            for r in rows
        ]

    def count_dead_letters(self, kind: str | None = None) -> int:
        """Count the stored dead letters (of one ``kind`` if given)."""
        query = sa.select(sa.func.count()).select_from(_dead_letters).where(*self._kind_where(kind))
        with self._transaction() as conn:
            return int(conn.execute(query).scalar_one())

    def add_counts(self, counts: Mapping[str, int]) -> None:
        """Add ``counts`` (name to a whole number ≥ 0) to the stored counters, in one transaction."""
        rows = []
        for name, value in counts.items():
            whole = isinstance(value, int) and not isinstance(value, bool)
            if not isinstance(name, str) or not name or not whole or value < 0:
                msg = f"a counter is a non-empty name and a whole number >= 0, got {name!r}: {value!r}"
                raise InvalidInputError(msg)
            if value:
                rows.append({"name": name, "value": value})
        if not rows:
            return
        insert = postgresql.insert(_counters) if self.dialect == "postgresql" else sqlite_dialect.insert(_counters)
        statement = insert.on_conflict_do_update(
            index_elements=[_counters.c.name], set_={"value": _counters.c.value + insert.excluded.value}
        )
        with self._transaction(write=True) as conn:
            conn.execute(statement, rows)

    def counters(self) -> dict[str, int]:
        """Every stored counter, by name."""
        with self._transaction() as conn:
            rows = conn.execute(sa.select(_counters.c.name, _counters.c.value))
            return {str(name): int(value) for name, value in rows}

    # -- images -------------------------------------------------------------------------------------

    def put_image(self, alert_id: str, data: bytes, media_type: str = "image/png") -> None:
        """Keep one image beside alert ``alert_id`` (replacing the one it had), whether or not it is stored yet.

        Raises
        ------
        InvalidInputError
            Empty or larger than :data:`MAX_IMAGE_BYTES`, or not PNG/JPEG.
        """
        if not isinstance(data, bytes | bytearray) or not data or len(data) > MAX_IMAGE_BYTES:
            size = len(data) if isinstance(data, bytes | bytearray) else type(data).__name__
            msg = f"the image of alert {alert_id!r} must be 1 to {MAX_IMAGE_BYTES} bytes, got {size}"
            raise InvalidInputError(msg)
        if media_type not in _IMAGE_TYPES:
            msg = f"the image of alert {alert_id!r} must be one of {', '.join(_IMAGE_TYPES)}, got {media_type!r}"
            raise InvalidInputError(msg)
        row = {"alert_id": alert_id, "media_type": media_type, "data": bytes(data)}
        dialect = postgresql if self.dialect == "postgresql" else sqlite_dialect
        insert = dialect.insert(_alert_images)
        statement = insert.on_conflict_do_update(
            index_elements=[_alert_images.c.alert_id],
            set_={"media_type": insert.excluded.media_type, "data": insert.excluded.data},
        )
        with self._transaction(write=True) as conn:
            conn.execute(statement, [row])

    def get_image(self, alert_id: str) -> tuple[str, bytes] | None:
        """The media type and bytes of alert ``alert_id``'s image, or None when it has none."""
        query = sa.select(_alert_images.c.media_type, _alert_images.c.data).where(_alert_images.c.alert_id == alert_id)
        with self._transaction() as conn:
            row = conn.execute(query).first()
        return None if row is None else (str(row[0]), bytes(row[1]))

    # -- lifecycle ----------------------------------------------------------------------------------

    @property
    def journal_mode(self) -> str | None:
        """SQLite's journal mode (``"wal"`` for a file, ``"memory"`` for ``":memory:"``); None on PostgreSQL."""
        if self.dialect != "sqlite":
            return None
        with self._transaction() as conn:
            return str(conn.exec_driver_sql("PRAGMA journal_mode").scalar_one())

    def drop(self) -> None:
        """Delete everything this store holds: its schema on PostgreSQL, its tables on SQLite."""
        with self._transaction(write=True) as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.schema.DropSchema(str(self.schema), cascade=True, if_exists=True))
            else:
                _metadata.drop_all(conn, tables=[_alerts, _dead_letters, _incidents, _counters, _alert_images])

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._engine is None

    def close(self) -> None:
        """Close the connections; calling it again does nothing."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __str__(self) -> str:
        if self.path is not None:
            return repr(self.path)
        return f"{_redact(self.url)} (schema {self.schema})"

    def __repr__(self) -> str:
        if self.path is not None:
            return f"SqlAlertStore({self.path!r})"
        return f"SqlAlertStore({_redact(self.url)!r}, schema={self.schema!r})"


def open_store(url: str | Path) -> SqlAlertStore:
    """Open the alert store named by ``url``, creating a SQLite file's folder if missing.

    ``sqlite:///alerts.db`` is a file relative to the working directory, ``sqlite:////var/lib/a.db`` an
    absolute one, and a URL without a scheme a plain path; ``postgresql://USER@HOST:PORT/DB?schema=NAME``
    (or ``postgres://``) opens PostgreSQL.

    Examples
    --------
    >>> store = open_store("sqlite:///:memory:")
    >>> store.dialect
    'sqlite'
    >>> store.close()
    >>> open_store("mysql://db/alerts")
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidInputError: unsupported store URL scheme 'mysql': use sqlite:///FILE or postgresql://...
    """
    scheme, sep, rest = str(url).partition("://")
    if sep and scheme == "sqlite" and rest[1:] not in ("", ":memory:"):
        Path(rest[1:]).parent.mkdir(parents=True, exist_ok=True)
    return SqlAlertStore(url)
