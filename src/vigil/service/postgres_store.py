"""The alert and feedback store on PostgreSQL, behind the same interface as the SQLite AlertStore.

Tables live in one schema (``vigil`` by default; ``?schema=NAME`` in the URL picks another), so several
deployments — or test runs — can share a database. Writes use the same merge rule as SQLite
(:func:`vigil.streaming.alert_store.merge_alert`): a verdict is never lost to a later tracker update.
Each batch is one transaction; a lost connection is reopened on the next call, and the runtime retries
the batch meanwhile.
"""

from __future__ import annotations

import builtins
import json
import re
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from vigil.errors import InvalidInputError, VigilError
from vigil.service._optional import require
from vigil.streaming.alert_store import merge_alert
from vigil.streaming.alerts import STATUSES, VERDICTS, Alert, format_time, parse_time
from vigil.streaming.dead_letters import DEAD_LETTER_KINDS, DeadLetter

psycopg = require("psycopg")
from psycopg import sql  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

from vigil.streaming.alert_store import _COLUMNS as ALERT_COLUMNS  # noqa: E402

__all__ = ["SCHEMA_VERSION", "PostgresAlertStore"]

SCHEMA_VERSION = 1

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

_COLUMNS = ALERT_COLUMNS  # one column list for both stores

_DDL = """
CREATE TABLE IF NOT EXISTS {schema}.meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS {schema}.alerts (
    id            TEXT PRIMARY KEY,
    device        TEXT NOT NULL,
    start_time    TIMESTAMPTZ NOT NULL,
    end_time      TIMESTAMPTZ NOT NULL,
    peak_time     TIMESTAMPTZ NOT NULL,
    score         DOUBLE PRECISION NOT NULL,
    threshold     DOUBLE PRECISION NOT NULL,
    model_version TEXT NOT NULL,
    top_features  JSONB NOT NULL,
    incident_type TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ({statuses})),
    n_points      INTEGER NOT NULL,
    feedback      JSONB NOT NULL,
    explanation   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_start ON {schema}.alerts (start_time);
CREATE INDEX IF NOT EXISTS alerts_device_start ON {schema}.alerts (device, start_time);
CREATE INDEX IF NOT EXISTS alerts_status_start ON {schema}.alerts (status, start_time);
CREATE TABLE IF NOT EXISTS {schema}.dead_letters (
    id        BIGSERIAL PRIMARY KEY,
    received  TIMESTAMPTZ NOT NULL,
    kind      TEXT NOT NULL,
    reason    TEXT NOT NULL,
    source    TEXT NOT NULL,
    device    TEXT,
    payload   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_received ON {schema}.dead_letters (received)
"""


def _split_url(url: str) -> tuple[str, str]:
    """Take ``schema=`` out of the URL's query (libpq does not know it); return (url, schema)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((value for key, value in query if key == "schema"), "vigil")
    rest = urlencode([(key, value) for key, value in query if key != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresAlertStore:
    """Alerts, verdicts and dead letters in PostgreSQL; thread-safe, one connection.

    Parameters
    ----------
    url : str
        ``postgresql://USER@HOST:PORT/DB`` (libpq syntax), optionally with ``?schema=NAME``.
    schema : str, optional
        Overrides the URL's schema; lower-case letters, digits and ``_``.
    connect_timeout : float
        Seconds to wait for the server.

    Raises
    ------
    InvalidInputError
        A bad schema name, an unreachable server, or a schema written by a newer Vigil.
    """

    def __init__(self, url: str, *, schema: str | None = None, connect_timeout: float = 5.0) -> None:
        self.url, url_schema = _split_url(url)
        self.schema = schema if schema is not None else url_schema
        if not _SCHEMA_NAME.match(self.schema):
            msg = f"schema must be lower-case letters, digits and '_', got {self.schema!r}"
            raise InvalidInputError(msg)
        self.connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._closed = False
        self._conn: Any = None
        self._schema = sql.Identifier(self.schema)
        with self._lock:
            self._setup(self._connection())

    # -- plumbing ------------------------------------------------------------------------------------

    def _connection(self) -> Any:
        if self._closed:
            msg = f"the alert store {_redact(self.url)} is closed"
            raise VigilError(msg)
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
            try:
                self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=int(self.connect_timeout))
            except psycopg.OperationalError as exc:
                self._conn = None
                msg = f"cannot connect to the alert store {_redact(self.url)}: {exc}"
                raise InvalidInputError(msg) from exc
        return self._conn

    def _setup(self, conn: Any) -> None:
        statuses = ", ".join(f"'{s}'" for s in STATUSES)
        with conn.transaction():
            # Two services starting together would race on CREATE ... IF NOT EXISTS: serialise them.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"vigil-schema-{self.schema}",))
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(self._schema))
            for statement in _DDL.split(";"):
                if statement.strip():
                    text = statement.replace("{statuses}", statuses)
                    conn.execute(sql.SQL(text).format(schema=self._schema))
            row = conn.execute(
                sql.SQL("SELECT value FROM {}.meta WHERE key = 'schema_version'").format(self._schema)
            ).fetchone()
            if row is None:
                conn.execute(
                    sql.SQL("INSERT INTO {}.meta (key, value) VALUES ('schema_version', %s)").format(self._schema),
                    (str(SCHEMA_VERSION),),
                )
            elif int(row[0]) > SCHEMA_VERSION:
                msg = (
                    f"schema {self.schema!r} has alert store version {row[0]}; this Vigil reads versions up to "
                    f"{SCHEMA_VERSION}: upgrade Vigil to open it"
                )
                raise InvalidInputError(msg)

    def _table(self, name: str) -> Any:
        return sql.SQL("{}.{}").format(self._schema, sql.Identifier(name))

    @staticmethod
    def _row_to_alert(row: Sequence[Any]) -> Alert:
        data = dict(zip(_COLUMNS, row, strict=True))
        return Alert(
            id=data["id"],
            device=data["device"],
            start=data["start_time"],
            end=data["end_time"],
            peak_time=data["peak_time"],
            score=float(data["score"]),
            threshold=float(data["threshold"]),
            model_version=data["model_version"],
            top_features=[(name, float(share)) for name, share in data["top_features"]],
            incident_type=data["incident_type"],
            status=data["status"],
            n_points=int(data["n_points"]),
            feedback=list(data["feedback"]),
            explanation=data["explanation"],
        )

    @staticmethod
    def _alert_to_row(alert: Alert) -> tuple[Any, ...]:
        record = alert.to_dict()
        try:
            json.dumps(record["top_features"], allow_nan=False)
            json.dumps(record["feedback"], allow_nan=False)
        except (TypeError, ValueError) as exc:
            msg = f"alert {alert.id!r} cannot be stored as JSON: {exc}"
            raise InvalidInputError(msg) from exc
        return (
            alert.id,
            alert.device,
            alert.start,
            alert.end,
            alert.peak_time,
            float(alert.score),
            float(alert.threshold),
            alert.model_version,
            Jsonb(record["top_features"]),
            alert.incident_type,
            alert.status,
            int(alert.n_points),
            Jsonb(record["feedback"]),
            alert.explanation,
        )

    def _fetch(self, conn: Any, alert_id: str, *, lock: bool = False) -> Alert | None:
        query = sql.SQL("SELECT {} FROM {} WHERE id = %s" + (" FOR UPDATE" if lock else "")).format(
            sql.SQL(", ").join(map(sql.Identifier, _COLUMNS)), self._table("alerts")
        )
        row = conn.execute(query, (alert_id,)).fetchone()
        return None if row is None else self._row_to_alert(row)

    def _where(
        self, device: str | None, status: str | None, since: datetime | None, until: datetime | None
    ) -> tuple[Any, list[Any]]:
        clauses: list[Any] = []
        params: list[Any] = []
        if device is not None:
            if not isinstance(device, str):
                msg = f"device must be a string, got {type(device).__name__}"
                raise InvalidInputError(msg)
            clauses.append(sql.SQL("device = %s"))
            params.append(device)
        if status is not None:
            if status not in STATUSES:
                msg = f"status must be one of {', '.join(STATUSES)}, got {status!r}"
                raise InvalidInputError(msg)
            clauses.append(sql.SQL("status = %s"))
            params.append(status)
        if since is not None:
            clauses.append(sql.SQL("end_time >= %s"))
            params.append(parse_time(since, "since"))
        if until is not None:
            clauses.append(sql.SQL("start_time < %s"))
            params.append(parse_time(until, "until"))
        if not clauses:
            return sql.SQL(""), params
        return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses), params

    @staticmethod
    def _check_paging(limit: int | None, offset: int) -> None:
        for name, value in (("limit", limit), ("offset", offset)):
            if value is None and name == "limit":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                msg = f"{name} must be an integer >= 0, got {value!r}"
                raise InvalidInputError(msg)

    # -- public --------------------------------------------------------------------------------------

    def upsert(self, alert: Alert) -> Alert:
        """Insert or update one alert (see :meth:`upsert_many`)."""
        return self.upsert_many([alert])[0]

    def upsert_many(self, alerts: Sequence[Alert], dead_letters: Sequence[DeadLetter] = ()) -> builtins.list[Alert]:
        """Upsert alerts and add dead letters in one transaction; return the alerts as stored."""
        for alert in alerts:
            if not isinstance(alert, Alert):
                msg = f"upsert expects an Alert, got {type(alert).__name__}"
                raise InvalidInputError(msg)
        for letter in dead_letters:
            if not isinstance(letter, DeadLetter):
                msg = f"expected a DeadLetter, got {type(letter).__name__}"
                raise InvalidInputError(msg)
        columns = sql.SQL(", ").join(map(sql.Identifier, _COLUMNS))
        updates = sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(name)) for name in _COLUMNS if name != "id"
        )
        insert = sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT (id) DO UPDATE SET {}").format(
            self._table("alerts"), columns, sql.SQL(", ").join(sql.Placeholder() * len(_COLUMNS)), updates
        )
        stored = []
        with self._lock:
            conn = self._connection()
            with conn.transaction():
                for incoming in alerts:
                    alert = merge_alert(self._fetch(conn, incoming.id, lock=True), incoming)
                    conn.execute(insert, self._alert_to_row(alert))
                    stored.append(alert)
                if dead_letters:
                    with conn.cursor() as cursor:
                        cursor.executemany(
                            sql.SQL(
                                "INSERT INTO {} (received, kind, reason, source, device, payload) "
                                "VALUES (%s, %s, %s, %s, %s, %s)"
                            ).format(self._table("dead_letters")),
                            [
                                (d.received, d.kind, d.reason, d.source, d.device, d.payload.replace("\x00", "\ufffd"))
                                for d in dead_letters
                            ],
                        )
        return stored

    def get(self, alert_id: str) -> Alert | None:
        """The alert with this id, or None."""
        with self._lock:
            return self._fetch(self._connection(), str(alert_id))

    def add_verdict(
        self,
        alert_id: str,
        verdict: str,
        note: str = "",
        user: str = "",
        *,
        time: datetime | None = None,
    ) -> Alert:
        """Record a verdict or note; ``confirmed`` and ``false_positive`` set the status."""
        if verdict not in VERDICTS:
            msg = f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}"
            raise InvalidInputError(msg)
        for name, value in (("note", note), ("user", user)):
            if not isinstance(value, str):
                msg = f"{name} must be a string, got {type(value).__name__}"
                raise InvalidInputError(msg)
        moment = datetime.now(UTC) if time is None else parse_time(time, "time")
        with self._lock:
            conn = self._connection()
            with conn.transaction():
                alert = self._fetch(conn, str(alert_id), lock=True)
                if alert is None:
                    msg = f"no alert with id {alert_id!r} in the alert store"
                    raise InvalidInputError(msg)
                alert.feedback.append({"time": format_time(moment), "verdict": verdict, "note": note, "user": user})
                if verdict != "note":
                    alert.status = verdict
                conn.execute(
                    sql.SQL("UPDATE {} SET status = %s, feedback = %s WHERE id = %s").format(self._table("alerts")),
                    (alert.status, Jsonb(alert.feedback), alert.id),
                )
        return alert

    def count(
        self,
        device: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        """Count the alerts that :meth:`list` would return without a limit."""
        where, params = self._where(device, status, since, until)
        with self._lock:
            query = sql.SQL("SELECT COUNT(*) FROM {}").format(self._table("alerts")) + where
            return int(self._connection().execute(query, params).fetchone()[0])

    def list(
        self,
        device: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> builtins.list[Alert]:
        """Alerts overlapping ``[since, until)``, newest start first (as AlertStore.list)."""
        self._check_paging(limit, offset)
        where, params = self._where(device, status, since, until)
        query = (
            sql.SQL("SELECT {} FROM {}").format(
                sql.SQL(", ").join(map(sql.Identifier, _COLUMNS)), self._table("alerts")
            )
            + where
            + sql.SQL(" ORDER BY start_time DESC, id DESC LIMIT %s OFFSET %s")
        )
        with self._lock:
            rows = self._connection().execute(query, [*params, limit, offset]).fetchall()
        return [self._row_to_alert(row) for row in rows]

    def add_dead_letters(self, dead_letters: Sequence[DeadLetter]) -> None:
        """Store refused messages with their reasons."""
        self.upsert_many([], dead_letters)

    def list_dead_letters(
        self, kind: str | None = None, limit: int | None = 100, offset: int = 0
    ) -> builtins.list[DeadLetter]:
        """Dead letters, newest first, optionally of one ``kind``."""
        self._check_paging(limit, offset)
        where, params = self._kind_where(kind)
        query = (
            sql.SQL("SELECT id, received, kind, reason, source, device, payload FROM {}").format(
                self._table("dead_letters")
            )
            + where
            + sql.SQL(" ORDER BY id DESC LIMIT %s OFFSET %s")
        )
        with self._lock:
            rows = self._connection().execute(query, [*params, limit, offset]).fetchall()
        return [
            DeadLetter(id=r[0], received=r[1], kind=r[2], reason=r[3], source=r[4], device=r[5], payload=r[6])
            for r in rows
        ]

    def count_dead_letters(self, kind: str | None = None) -> int:
        """Count the stored dead letters (of one ``kind`` if given)."""
        where, params = self._kind_where(kind)
        query = sql.SQL("SELECT COUNT(*) FROM {}").format(self._table("dead_letters")) + where
        with self._lock:
            return int(self._connection().execute(query, params).fetchone()[0])

    @staticmethod
    def _kind_where(kind: str | None) -> tuple[Any, builtins.list[Any]]:
        if kind is None:
            return sql.SQL(""), []
        if kind not in DEAD_LETTER_KINDS:
            msg = f"kind must be one of {', '.join(DEAD_LETTER_KINDS)}, got {kind!r}"
            raise InvalidInputError(msg)
        return sql.SQL(" WHERE kind = %s"), [kind]

    def drop_schema(self) -> None:
        """Delete the schema and everything in it (for tests and tear-down)."""
        with self._lock:
            self._connection().execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(self._schema))

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the connection; calling it again does nothing."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PostgresAlertStore({_redact(self.url)!r}, schema={self.schema!r})"
