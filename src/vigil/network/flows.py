"""Flow (connection) records: NSL-KDD files, generic CSV flow tables and Zeek ``conn.log``.

Every reader returns a :class:`FlowTable`: the raw feature columns (numbers as float64, categorical fields
such as protocol, service and flags as stripped strings), plus the label and attack category when the file
has them. Encoding the categorical fields is a separate, fitted step (:mod:`vigil.network.encoding`), so
the categories are learned from training rows only.

Bad input is reported with the file, the 1-based line and the column; nothing is filled silently. The one
documented repair is Zeek's unset marker ``-`` in a numeric field, which becomes 0 with a companion
``<field>_unset`` indicator column of 1, because Zeek writes ``-`` for fields that do not exist for that
connection (no payload, no reply), which is information rather than a gap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from vigil.data.tables import to_numeric_frame
from vigil.errors import DatasetNotFoundError, InvalidInputError, SchemaError

__all__ = [
    "NSL_KDD_ATTACK_CATEGORIES",
    "NSL_KDD_COLUMNS",
    "NSL_KDD_SCHEMA",
    "ZEEK_CONN_SCHEMA",
    "FlowSchema",
    "FlowTable",
    "attack_category",
    "read_flow_csv",
    "read_nsl_kdd",
    "read_zeek_conn",
]


@dataclass(frozen=True)
class FlowSchema:
    """Which columns of a flow table are numeric, which categorical, and which hold the label.

    Parameters
    ----------
    numeric : tuple of str
        Columns read as finite numbers.
    categorical : tuple of str
        Columns read as text categories (protocol, service, flags, ...).
    label : str or None
        Column holding the attack name (``normal`` or another value) or a 0/1 label; None if absent.
    normal_values : tuple of str
        Label values that mean normal traffic (compared lower-cased).

    Examples
    --------
    >>> schema = FlowSchema(numeric=("bytes",), categorical=("proto",), label="label")
    >>> schema.feature_columns
    ('bytes', 'proto')
    """

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    label: str | None = None
    normal_values: tuple[str, ...] = ("normal", "benign", "0")

    @property
    def feature_columns(self) -> tuple[str, ...]:
        """Numeric then categorical columns, in that order."""
        return self.numeric + self.categorical


@dataclass(frozen=True, eq=False)
class FlowTable:
    """Flow records read from a file.

    Attributes
    ----------
    features : pandas.DataFrame
        Numeric columns as float64 (finite) and categorical columns as str, RangeIndex.
    schema : FlowSchema
        The columns' roles.
    label : numpy.ndarray of str or None
        The raw label of each row (an attack name, or ``"normal"``).
    y : numpy.ndarray of bool or None
        True for attack rows.
    category : numpy.ndarray of str or None
        The attack category of each row (``"normal"``, ``"DoS"``, ...), where the data set defines one.
    source : str
        The file name, for messages.

    Examples
    --------
    >>> t = FlowTable(pd.DataFrame({"bytes": [1.0]}), FlowSchema(("bytes",), ()), source="demo.csv")
    >>> len(t), t.y is None
    (1, True)
    """

    features: pd.DataFrame
    schema: FlowSchema
    label: NDArray[np.object_] | None = None
    y: NDArray[np.bool_] | None = None
    category: NDArray[np.object_] | None = None
    source: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.features)


NSL_KDD_COLUMNS = (
    "duration", "protocol_type", "service", "flag", "src_bytes", "dst_bytes", "land", "wrong_fragment", "urgent",
    "hot", "num_failed_logins", "logged_in", "num_compromised", "root_shell", "su_attempted", "num_root",
    "num_file_creations", "num_shells", "num_access_files", "num_outbound_cmds", "is_host_login", "is_guest_login",
    "count", "srv_count", "serror_rate", "srv_serror_rate", "rerror_rate", "srv_rerror_rate", "same_srv_rate",
    "diff_srv_rate", "srv_diff_host_rate", "dst_host_count", "dst_host_srv_count", "dst_host_same_srv_rate",
    "dst_host_diff_srv_rate", "dst_host_same_src_port_rate", "dst_host_srv_diff_host_rate", "dst_host_serror_rate",
    "dst_host_srv_serror_rate", "dst_host_rerror_rate", "dst_host_srv_rerror_rate",
)  # fmt: skip
"""The 41 NSL-KDD features in file order (the label and the difficulty follow them)."""

_NSL_CATEGORICAL = ("protocol_type", "service", "flag")
NSL_KDD_SCHEMA = FlowSchema(
    numeric=tuple(c for c in NSL_KDD_COLUMNS if c not in _NSL_CATEGORICAL),
    categorical=_NSL_CATEGORICAL,
    label="label",
)

NSL_KDD_ATTACK_CATEGORIES: Mapping[str, str] = {
    **dict.fromkeys(
        ("back", "land", "neptune", "pod", "smurf", "teardrop", "apache2", "udpstorm", "processtable", "worm",
         "mailbomb"), "DoS"),
    **dict.fromkeys(("satan", "ipsweep", "nmap", "portsweep", "mscan", "saint"), "Probe"),
    **dict.fromkeys(
        ("guess_passwd", "ftp_write", "imap", "phf", "multihop", "warezmaster", "warezclient", "spy", "xlock",
         "xsnoop", "snmpguess", "snmpgetattack", "httptunnel", "sendmail", "named"), "R2L"),
    **dict.fromkeys(("buffer_overflow", "loadmodule", "rootkit", "perl", "sqlattack", "xterm", "ps"), "U2R"),
}  # fmt: skip
"""Attack name → category (DoS, Probe, R2L, U2R), the map used with NSL-KDD since Tavallaee et al. 2009."""


def attack_category(names: Sequence[str] | NDArray[np.object_]) -> NDArray[np.object_]:
    """Map NSL-KDD label names to ``normal``/``DoS``/``Probe``/``R2L``/``U2R`` (``unknown`` if unmapped).

    Examples
    --------
    >>> attack_category(["normal", "neptune", "snmpguess", "pwned"]).tolist()
    ['normal', 'DoS', 'R2L', 'unknown']
    """
    out = [("normal" if n == "normal" else NSL_KDD_ATTACK_CATEGORIES.get(n, "unknown")) for n in names]
    return np.asarray(out, dtype=object)


def _check_file(path: str | PathLike[str]) -> Path:
    p = Path(path)
    if not p.is_file():
        msg = f"flow file not found: {p}"
        raise DatasetNotFoundError(msg)
    return p


def _categorical(raw: pd.DataFrame, columns: Sequence[str], *, source: str, lines: NDArray[np.int64]) -> pd.DataFrame:
    out = {}
    for col in columns:
        values = raw[col].astype(str).str.strip()
        empty = (values == "").to_numpy()
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            msg = f"{source}: line {lines[i]}, column {col!r} is empty (a categorical field needs a value)"
            raise InvalidInputError(msg)
        out[col] = values.to_numpy(dtype=object)
    return pd.DataFrame(out, index=raw.index)


def _assemble(
    raw: pd.DataFrame, schema: FlowSchema, *, source: str, lines: NDArray[np.int64]
) -> tuple[pd.DataFrame, NDArray[np.object_] | None, NDArray[np.bool_] | None]:
    missing = [c for c in (*schema.feature_columns, *([schema.label] if schema.label else [])) if c not in raw]
    if missing:
        msg = f"{source}: missing columns {missing}; the file has {list(raw.columns)}"
        raise SchemaError(msg)
    numeric = to_numeric_frame(raw[list(schema.numeric)], source=source, lines=lines)
    categorical = _categorical(raw, schema.categorical, source=source, lines=lines)
    features = pd.concat([numeric, categorical], axis=1).reset_index(drop=True)
    if schema.label is None:
        return features, None, None
    label = raw[schema.label].astype(str).str.strip().to_numpy(dtype=object)
    empty = label == ""
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        msg = f"{source}: line {lines[i]}, column {schema.label!r} (the label) is empty"
        raise InvalidInputError(msg)
    normal = {v.lower() for v in schema.normal_values}
    y = np.array([v.lower() not in normal for v in label], dtype=bool)
    return features, label, y


def read_nsl_kdd(path: str | PathLike[str]) -> FlowTable:
    """Read an NSL-KDD file (``KDDTrain+.txt``, ``KDDTest+.txt``, ``KDDTest-21.txt``, ...).

    The files have no header and 43 comma-separated columns: the 41 features of :data:`NSL_KDD_COLUMNS`, the
    attack name and the difficulty level. The difficulty (how many of 21 reference classifiers got the row
    right) is kept in ``extra["difficulty"]`` and never used as a feature.

    Raises
    ------
    DatasetNotFoundError
        The file does not exist.
    InvalidInputError
        A line has the wrong number of fields or a malformed cell (the message names line and column).
    """
    p = _check_file(path)
    names = [*NSL_KDD_COLUMNS, "label", "difficulty"]
    try:
        raw = pd.read_csv(p, header=None, dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.ParserError as exc:
        msg = f"{p.name}: not a 43-column NSL-KDD file: {exc}"
        raise InvalidInputError(msg) from exc
    if raw.shape[1] != len(names):
        msg = f"{p.name}: line 1 has {raw.shape[1]} fields; NSL-KDD rows have {len(names)} (41 features, label, level)"
        raise SchemaError(msg)
    raw.columns = names
    lines = np.arange(1, len(raw) + 1, dtype=np.int64)
    features, label, y = _assemble(raw, NSL_KDD_SCHEMA, source=p.name, lines=lines)
    difficulty = to_numeric_frame(raw[["difficulty"]], source=p.name, lines=lines)["difficulty"].to_numpy()
    assert label is not None
    return FlowTable(
        features=features,
        schema=NSL_KDD_SCHEMA,
        label=label,
        y=y,
        category=attack_category(label),
        source=p.name,
        extra={"difficulty": difficulty.astype(np.int64)},
    )


def read_flow_csv(path: str | PathLike[str], schema: FlowSchema, *, sep: str = ",") -> FlowTable:
    """Read a CSV of flows with a header, using ``schema`` to say which columns are what.

    Columns not named by the schema are ignored. The label column, if any, may hold attack names
    (``schema.normal_values`` mean normal) or 0/1.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "flows.csv"
    >>> _ = path.write_text("proto,bytes,label\\ntcp,10,normal\\nudp,5,ddos\\n")
    >>> t = read_flow_csv(path, FlowSchema(numeric=("bytes",), categorical=("proto",), label="label"))
    >>> t.features["proto"].tolist(), t.y.tolist()
    (['tcp', 'udp'], [False, True])
    """
    p = _check_file(path)
    raw = pd.read_csv(p, sep=sep, dtype=str, keep_default_na=False, na_filter=False, skipinitialspace=True)
    raw.columns = [str(c).strip() for c in raw.columns]
    lines = np.arange(2, len(raw) + 2, dtype=np.int64)
    features, label, y = _assemble(raw, schema, source=p.name, lines=lines)
    return FlowTable(features=features, schema=schema, label=label, y=y, source=p.name)


_ZEEK_NUMERIC = (
    "duration", "orig_bytes", "resp_bytes", "missed_bytes", "orig_pkts", "orig_ip_bytes", "resp_pkts",
    "resp_ip_bytes",
)  # fmt: skip
ZEEK_CONN_SCHEMA = FlowSchema(
    numeric=(*_ZEEK_NUMERIC, *(f"{c}_unset" for c in ("duration", "orig_bytes", "resp_bytes"))),
    categorical=("proto", "service", "conn_state", "history"),
    label=None,
)
"""Features of a Zeek ``conn.log``; ``*_unset`` flags mark Zeek's ``-`` (field absent) in the numeric fields."""


def read_zeek_conn(path: str | PathLike[str], *, label: str | None = None) -> FlowTable:
    """Read a Zeek ``conn.log`` in its TSV form (``#separator``, ``#fields`` header lines).

    Numeric fields written as ``-`` (unset: no reply, no payload) become 0, and for ``duration``,
    ``orig_bytes`` and ``resp_bytes`` an indicator column ``<field>_unset`` is 1. Categorical ``-`` and
    ``(empty)`` stay as those literal categories. ``id.orig_h``, ``id.resp_h`` and ``id.resp_p`` are kept in
    ``extra`` for incident evidence; ``ts`` in ``extra["ts"]`` (epoch seconds).

    Parameters
    ----------
    label : str, optional
        Name of an extra column holding a label (some labelled data sets append one, e.g. ``label``).

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "conn.log"
    >>> head = "#separator \\\\x09\\n#fields\\tts\\tuid\\tid.orig_h\\tid.orig_p\\tid.resp_h\\tid.resp_p\\tproto\\t"
    >>> head += "service\\tduration\\torig_bytes\\tresp_bytes\\tconn_state\\tmissed_bytes\\thistory\\torig_pkts\\t"
    >>> head += "orig_ip_bytes\\tresp_pkts\\tresp_ip_bytes\\n"
    >>> row = "1.5\\tC1\\t10.0.0.2\\t5555\\t10.0.0.1\\t22\\ttcp\\tssh\\t-\\t-\\t-\\tS0\\t0\\tS\\t1\\t60\\t0\\t0\\n"
    >>> _ = path.write_text(head + row)
    >>> t = read_zeek_conn(path)
    >>> t.features["duration"].tolist(), t.features["duration_unset"].tolist(), t.features["conn_state"].tolist()
    ([0.0], [1.0], ['S0'])
    """
    p = _check_file(path)
    fields: list[str] | None = None
    sep = "\t"
    rows: list[list[str]] = []
    lines: list[int] = []
    with p.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            if line.startswith("#"):
                if line.startswith("#separator"):
                    token = line.split(" ", 1)[1].strip() if " " in line else "\\x09"
                    sep = bytes(token, "ascii").decode("unicode_escape") if token.startswith("\\x") else token
                elif line.startswith("#fields"):
                    fields = line.split(sep)[1:]
                continue
            if fields is None:
                msg = f"{p.name}: line {number} has data before the '#fields' header: not a Zeek TSV log"
                raise SchemaError(msg)
            cells = line.split(sep)
            if len(cells) != len(fields):
                msg = f"{p.name}: line {number} has {len(cells)} fields, the '#fields' header names {len(fields)}"
                raise InvalidInputError(msg)
            rows.append(cells)
            lines.append(number)
    if fields is None:
        msg = f"{p.name}: no '#fields' header line: not a Zeek TSV log (JSON logs are not supported)"
        raise SchemaError(msg)
    raw = pd.DataFrame(rows, columns=fields, dtype=object)
    line_numbers = np.asarray(lines, dtype=np.int64)
    for col in ("duration", "orig_bytes", "resp_bytes"):
        if col in raw:
            raw[f"{col}_unset"] = (raw[col] == "-").astype(int).astype(str)
    for col in _ZEEK_NUMERIC:
        if col in raw:
            raw[col] = raw[col].where(raw[col] != "-", "0")
    schema = (
        ZEEK_CONN_SCHEMA
        if label is None
        else FlowSchema(ZEEK_CONN_SCHEMA.numeric, ZEEK_CONN_SCHEMA.categorical, label=label)
    )
    features, labels, y = _assemble(raw, schema, source=p.name, lines=line_numbers)
    extra: dict[str, object] = {}
    for col in ("ts", "id.orig_h", "id.resp_h", "id.resp_p"):
        if col in raw:
            extra[col] = raw[col].to_numpy(dtype=object)
    return FlowTable(features=features, schema=schema, label=labels, y=y, source=p.name, extra=extra)
