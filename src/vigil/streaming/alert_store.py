"""The embedded alert and feedback store: one SQLite file in WAL mode.

Every alert the tracker reports is upserted by its deterministic id, so replaying a stream updates rows
instead of duplicating them, and an operator's verdict (``confirmed`` / ``false_positive``) and notes are
appended to the alert's feedback history. Vigil's real deployments use PostgreSQL; this store keeps the
same records for a single process and for tests.

Durability: the file runs in WAL mode with ``synchronous=FULL``. ``NORMAL`` would survive a crash of the
process but can lose the last commits on power loss, and operators' verdicts cannot be replayed from the
telemetry the way alerts can. Writes happen per alert event and per verdict, not per telemetry point, so
an fsync per commit is affordable.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from vigil.errors import InvalidInputError, VigilError
from vigil.streaming.alerts import STATUSES, VERDICTS, Alert, format_time, parse_time
from vigil.streaming.dead_letters import DEAD_LETTER_KINDS, DeadLetter

__all__ = ["SCHEMA_VERSION", "AlertStore", "merge_alert"]

#: Version of the table layout, kept in ``PRAGMA user_version``.
SCHEMA_VERSION = 1

#: ``PRAGMA application_id`` of a Vigil alert store ("VIGL"), so a foreign SQLite file is recognised.
APPLICATION_ID = 0x5649474C

_VERDICT_STATUSES = ("confirmed", "false_positive")

_COLUMNS = (
    "id",
    "device",
    "start_time",
    "end_time",
    "peak_time",
    "score",
    "threshold",
    "model_version",
    "top_features",
    "incident_type",
    "status",
    "n_points",
    "feedback",
    "explanation",
)

_SCHEMA = f"""
CREATE TABLE alerts (
    id            TEXT PRIMARY KEY,
    device        TEXT NOT NULL,
    start_time    TEXT NOT NULL,  -- ISO 8601 UTC with microseconds: sorts as text in time order
    end_time      TEXT NOT NULL,
    peak_time     TEXT NOT NULL,
    score         REAL NOT NULL,
    threshold     REAL NOT NULL,
    model_version TEXT NOT NULL,
    top_features  TEXT NOT NULL,  -- JSON [[feature, share], ...], largest first
    incident_type TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ({", ".join(f"'{s}'" for s in STATUSES)})),
    n_points      INTEGER NOT NULL,
    feedback      TEXT NOT NULL,  -- JSON [{{"time", "verdict", "note", "user"}}, ...], oldest first
    explanation   TEXT NOT NULL
);
CREATE INDEX alerts_start ON alerts (start_time);
CREATE INDEX alerts_device_start ON alerts (device, start_time);
CREATE INDEX alerts_status_start ON alerts (status, start_time);
"""

# Added beside the alerts without a schema version bump: the table is independent of them, a file of
# version 1 gains it when opened, and an older Vigil opening a newer file just never reads it.
_DEAD_LETTER_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    received  TEXT NOT NULL,  -- ISO 8601 UTC with microseconds
    kind      TEXT NOT NULL,
    reason    TEXT NOT NULL,
    source    TEXT NOT NULL,
    device    TEXT,
    payload   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_received ON dead_letters (received)
"""


def _feedback_key(entry: dict[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True)


def merge_alert(stored: Alert | None, incoming: Alert) -> Alert:
    """Return what to store when ``incoming`` replaces ``stored`` (the row with the same id, or None).

    The tracker knows nothing of verdicts: a stored ``confirmed`` or ``false_positive`` status survives an
    incoming ``open`` or ``closed`` one, and feedback entries missing from the incoming alert are kept.
    Every alert store applies this same rule.
    """
    if stored is None:
        return incoming
    seen = {_feedback_key(entry) for entry in stored.feedback}
    feedback = stored.feedback + [e for e in incoming.feedback if _feedback_key(e) not in seen]
    status = incoming.status
    if stored.status in _VERDICT_STATUSES and incoming.status not in _VERDICT_STATUSES:
        status = stored.status
    return Alert.from_dict({**incoming.to_dict(), "status": status, "feedback": feedback})


class AlertStore:
    """Alerts and their feedback in one SQLite database, safe to share between threads.

    Parameters
    ----------
    path : str or Path
        The database file (created if missing; its folder must exist), or ``":memory:"``.

    Attributes
    ----------
    path : str
        The database path as given.

    Raises
    ------
    InvalidInputError
        The file cannot be opened, is not a SQLite database, belongs to another application, or was
        written by a newer Vigil.

    Examples
    --------
    >>> from vigil.streaming.alerts import AlertTracker
    >>> tracker = AlertTracker(model_version="ae-3")
    >>> with AlertStore(":memory:") as store:
    ...     for event in tracker.update("pump2", 0.0, 4.2, 1.0, True, {"pump2.flow_m3h": 1.0}):
    ...         _ = store.upsert(event.alert)
    ...     alert = store.list(device="pump2")[0]
    ...     store.add_verdict(alert.id, "confirmed", note="seal leak", user="ana").status
    'confirmed'
    >>> alert.explanation
    'pump2.flow_m3h drove 100 % of the score (peak 4.2× threshold)'
    """

    def __init__(self, path: str | Path) -> None:
        if not isinstance(path, str | Path):
            msg = f"path must be a str or Path, got {type(path).__name__}"
            raise InvalidInputError(msg)
        self.path = str(path)
        self._lock = threading.Lock()
        try:
            # isolation_level=None: no implicit transactions; every write below opens its own.
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            msg = f"cannot open the alert store {self.path!r}: {exc}"
            raise InvalidInputError(msg) from exc
        self._conn: sqlite3.Connection | None = conn
        try:
            self._setup(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            self._conn = None
            msg = f"{self.path!r} is not a usable Vigil alert store: {exc}"
            raise InvalidInputError(msg) from exc
        except BaseException:
            conn.close()
            self._conn = None
            raise

    # -- setup --------------------------------------------------------------------------------------

    def _setup(self, conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA busy_timeout = 5000")
        if self.path != ":memory:":
            # WAL lets readers (the dashboard) run while the stream writes; it persists in the file.
            conn.execute("PRAGMA journal_mode = WAL").fetchone()
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            if version == 0 and app_id == 0:
                tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
                if tables:
                    names = ", ".join(sorted(name for (name,) in tables))
                    msg = f"{self.path!r} is a SQLite database of another application (tables: {names})"
                    raise InvalidInputError(msg)
                # executescript would commit on its own; run the statements inside this transaction.
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                self._create_dead_letters(conn)
            elif app_id != APPLICATION_ID:
                msg = f"{self.path!r} is a SQLite database of another application (application_id={app_id})"
                raise InvalidInputError(msg)
            elif version > SCHEMA_VERSION:
                msg = (
                    f"{self.path!r} has alert store schema version {version}; this Vigil reads versions up "
                    f"to {SCHEMA_VERSION}: upgrade Vigil to open it"
                )
                raise InvalidInputError(msg)
            else:
                self._create_dead_letters(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _create_dead_letters(conn: sqlite3.Connection) -> None:
        for statement in _DEAD_LETTER_SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)

    # -- plumbing -----------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            msg = f"the alert store {self.path!r} is closed"
            raise VigilError(msg)
        return self._conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock and a write transaction; IMMEDIATE also serialises other processes."""
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @staticmethod
    def _row_to_alert(row: tuple[Any, ...]) -> Alert:
        data = dict(zip(_COLUMNS, row, strict=True))
        return Alert(
            id=data["id"],
            device=data["device"],
            start=parse_time(data["start_time"], "start_time"),
            end=parse_time(data["end_time"], "end_time"),
            peak_time=parse_time(data["peak_time"], "peak_time"),
            score=float(data["score"]),
            threshold=float(data["threshold"]),
            model_version=data["model_version"],
            top_features=[(name, float(share)) for name, share in json.loads(data["top_features"])],
            incident_type=data["incident_type"],
            status=data["status"],
            n_points=int(data["n_points"]),
            feedback=json.loads(data["feedback"]),
            explanation=data["explanation"],
        )

    @staticmethod
    def _alert_to_row(alert: Alert) -> tuple[Any, ...]:
        record = alert.to_dict()
        try:
            top_features = json.dumps(record["top_features"], allow_nan=False)
            feedback = json.dumps(record["feedback"], allow_nan=False)
        except (TypeError, ValueError) as exc:
            msg = f"alert {alert.id!r} cannot be stored as JSON: {exc}"
            raise InvalidInputError(msg) from exc
        return (
            record["id"],
            record["device"],
            record["start"],
            record["end"],
            record["peak_time"],
            record["score"],
            record["threshold"],
            record["model_version"],
            top_features,
            record["incident_type"],
            record["status"],
            record["n_points"],
            feedback,
            record["explanation"],
        )

    @staticmethod
    def _fetch(conn: sqlite3.Connection, alert_id: str) -> Alert | None:
        row = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM alerts WHERE id = ?", (alert_id,)).fetchone()
        return None if row is None else AlertStore._row_to_alert(row)

    @staticmethod
    def _where(
        device: str | None, status: str | None, since: datetime | None, until: datetime | None
    ) -> tuple[str, list[Any]]:
        """Build a WHERE clause from fixed fragments; every value travels as a bound parameter."""
        clauses: list[str] = []
        params: list[Any] = []
        if device is not None:
            if not isinstance(device, str):
                msg = f"device must be a string, got {type(device).__name__}"
                raise InvalidInputError(msg)
            clauses.append("device = ?")
            params.append(device)
        if status is not None:
            if status not in STATUSES:
                msg = f"status must be one of {', '.join(STATUSES)}, got {status!r}"
                raise InvalidInputError(msg)
            clauses.append("status = ?")
            params.append(status)
        if since is not None:
            clauses.append("end_time >= ?")
            params.append(format_time(parse_time(since, "since")))
        if until is not None:
            clauses.append("start_time < ?")
            params.append(format_time(parse_time(until, "until")))
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    # -- public -------------------------------------------------------------------------------------

    def upsert(self, alert: Alert) -> Alert:
        """Insert the alert, or update the row with its id; return the alert as stored.

        Upserting the same alert again changes nothing. A verdict is never lost: when the stored alert
        is ``confirmed`` or ``false_positive`` and the incoming one is only ``open`` or ``closed`` (the
        tracker knows nothing of verdicts), the stored status stays, and feedback entries missing from
        the incoming alert are kept.

        Raises
        ------
        InvalidInputError
            ``alert`` is not an :class:`~vigil.streaming.alerts.Alert` or holds values JSON cannot store.
        """
        return self.upsert_many([alert])[0]

    def upsert_many(self, alerts: Sequence[Alert], dead_letters: Sequence[DeadLetter] = ()) -> builtins.list[Alert]:
        """Upsert several alerts, and add dead letters, in one transaction; return the alerts as stored.

        A streaming runtime calls this once per micro-batch, so a batch's alerts and refused records are
        committed together (one fsync) or not at all. Each alert follows :meth:`upsert`'s rules.

        Raises
        ------
        InvalidInputError
            An element is not an :class:`~vigil.streaming.alerts.Alert` (or a
            :class:`~vigil.streaming.dead_letters.DeadLetter`), or holds values JSON cannot store.
        """
        for alert in alerts:
            if not isinstance(alert, Alert):
                msg = f"upsert expects an Alert, got {type(alert).__name__}"
                raise InvalidInputError(msg)
        letters = self._dead_letter_rows(dead_letters)
        placeholders = ", ".join("?" for _ in _COLUMNS)
        updates = ", ".join(f"{name} = excluded.{name}" for name in _COLUMNS if name != "id")
        stored_alerts = []
        with self._transaction() as conn:
            for incoming in alerts:
                alert = merge_alert(self._fetch(conn, incoming.id), incoming)
                conn.execute(
                    f"INSERT INTO alerts ({', '.join(_COLUMNS)}) VALUES ({placeholders}) "
                    f"ON CONFLICT (id) DO UPDATE SET {updates}",
                    self._alert_to_row(alert),
                )
                stored_alerts.append(alert)
            if letters:
                conn.executemany(
                    "INSERT INTO dead_letters (received, kind, reason, source, device, payload) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    letters,
                )
        return stored_alerts

    @staticmethod
    def _dead_letter_rows(dead_letters: Sequence[DeadLetter]) -> builtins.list[tuple[Any, ...]]:
        rows = []
        for letter in dead_letters:
            if not isinstance(letter, DeadLetter):
                msg = f"expected a DeadLetter, got {type(letter).__name__}"
                raise InvalidInputError(msg)
            rows.append(
                (format_time(letter.received), letter.kind, letter.reason, letter.source, letter.device, letter.payload)
            )
        return rows

    def add_dead_letters(self, dead_letters: Sequence[DeadLetter]) -> None:
        """Store refused messages with their reasons (see :mod:`vigil.streaming.dead_letters`)."""
        self.upsert_many([], dead_letters)

    def list_dead_letters(
        self, kind: str | None = None, limit: int | None = 100, offset: int = 0
    ) -> builtins.list[DeadLetter]:
        """Return dead letters, newest first, optionally of one ``kind`` only."""
        self._check_paging(limit, offset)
        where, params = "", []
        if kind is not None:
            if kind not in DEAD_LETTER_KINDS:
                msg = f"kind must be one of {', '.join(DEAD_LETTER_KINDS)}, got {kind!r}"
                raise InvalidInputError(msg)
            where, params = " WHERE kind = ?", [kind]
        query = (
            "SELECT id, received, kind, reason, source, device, payload FROM dead_letters"
            f"{where} ORDER BY id DESC LIMIT ? OFFSET ?"
        )
        with self._lock:
            rows = self._connection().execute(query, [*params, -1 if limit is None else limit, offset]).fetchall()
        return [
            DeadLetter(id=r[0], received=r[1], kind=r[2], reason=r[3], source=r[4], device=r[5], payload=r[6])
            for r in rows
        ]

    def count_dead_letters(self, kind: str | None = None) -> int:
        """Count the stored dead letters (of one ``kind`` if given)."""
        if kind is None:
            query, params = "SELECT COUNT(*) FROM dead_letters", []
        else:
            query, params = "SELECT COUNT(*) FROM dead_letters WHERE kind = ?", [kind]
        with self._lock:
            return int(self._connection().execute(query, params).fetchone()[0])

    @staticmethod
    def _check_paging(limit: int | None, offset: int) -> None:
        for name, value in (("limit", limit), ("offset", offset)):
            if value is None and name == "limit":
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                msg = f"{name} must be an integer >= 0, got {value!r}"
                raise InvalidInputError(msg)

    def get(self, alert_id: str) -> Alert | None:
        """Return the alert with this id, or None."""
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
        with self._transaction() as conn:
            alert = self._fetch(conn, str(alert_id))
            if alert is None:
                msg = f"no alert with id {alert_id!r} in the alert store {self.path!r}"
                raise InvalidInputError(msg)
            alert.feedback.append({"time": format_time(moment), "verdict": verdict, "note": note, "user": user})
            if verdict != "note":
                alert.status = verdict
            conn.execute(
                "UPDATE alerts SET status = ?, feedback = ? WHERE id = ?",
                (alert.status, json.dumps(alert.feedback), alert.id),
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
            return int(self._connection().execute(f"SELECT COUNT(*) FROM alerts{where}", params).fetchone()[0])

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
        where, params = self._where(device, status, since, until)
        params += [-1 if limit is None else limit, offset]
        query = f"SELECT {', '.join(_COLUMNS)} FROM alerts{where} ORDER BY start_time DESC, id DESC LIMIT ? OFFSET ?"
        with self._lock:
            rows = self._connection().execute(query, params).fetchall()
        return [self._row_to_alert(row) for row in rows]

    @property
    def journal_mode(self) -> str:
        """The SQLite journal mode in force (``"wal"`` for a file, ``"memory"`` for ``":memory:"``)."""
        with self._lock:
            return str(self._connection().execute("PRAGMA journal_mode").fetchone()[0])

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._conn is None

    def close(self) -> None:
        """Close the connection; calling it again does nothing."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

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
        return f"AlertStore({self.path!r})"
