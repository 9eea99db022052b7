"""What the runtime does with a partial record: a null, Bad-quality, out-of-range or numeric-string reading.

Each sensor of a model may have a :class:`SensorPolicy` (from the plant file's ``[asset_types.T.sensors.S]``).
A record's readings are checked against it before the model sees them, and nothing is ever repaired in
silence — every outcome is a dead letter with its reason, or a scored decision whose ``note`` says what was
accepted, and both are counted:

``on_missing`` — a ``null`` reading (the source's reason, such as an OPC UA ``Bad`` status, is in the
record's ``quality``):

- ``"reject"`` (default): the record becomes a ``missing_value`` dead letter naming the sensor and reason;
- ``"score_without"``: the record is scored with its other sensors (and so is a record that leaves the
  sensor out) when the model can score a row without some of its sensors against the same threshold
  (:attr:`vigil.pipeline.Pipeline.scores_without_features`: ``mahalanobis`` and ``online-zscore``, each row
  on its own); the decision's note names the sensors scored without and why. With any other model the
  record is a ``missing_value`` dead letter that says so.

``on_out_of_range`` — a number outside the sensor's ``[low, high]`` valid range:

- ``"reject"`` (default): an ``out_of_range`` dead letter naming the sensor, value and range;
- ``"missing"``: treated as a missing reading (``on_missing`` applies, with the range as its reason);
- ``"score"``: scored as it is, and the decision's note names the sensor, value and range.

``numeric_strings`` — a reading sent as text, such as ``"29.8"``: refused as ``wrong_type`` unless this
is true, in which case a text that is a plain decimal number is read as that number (and the decision's
note says so); any other text is still refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vigil.errors import InvalidInputError

__all__ = ["MISSING_POLICIES", "OUT_OF_RANGE_POLICIES", "PolicyResult", "SensorPolicy", "apply_policies"]

#: What ``on_missing`` may be.
MISSING_POLICIES: tuple[str, ...] = ("reject", "score_without")
#: What ``on_out_of_range`` may be.
OUT_OF_RANGE_POLICIES: tuple[str, ...] = ("reject", "missing", "score")

# A plain decimal number: what a PLC or a gateway writes; no hex, no "nan", no "1_000", no spaces.
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


@dataclass(frozen=True)
class SensorPolicy:
    """One sensor's unit, valid range and partial-record policy (see the module docstring).

    Examples
    --------
    >>> SensorPolicy(unit="degC", low=0, high=150).check(180.0)
    'above its valid range [0, 150] degC'
    >>> SensorPolicy(on_missing="guess")
    Traceback (most recent call last):
    ...
    vigil.errors.InvalidInputError: on_missing must be one of 'reject', 'score_without', got 'guess'
    """

    unit: str | None = None
    low: float | None = None
    high: float | None = None
    on_missing: str = "reject"
    on_out_of_range: str = "reject"
    numeric_strings: bool = False

    def __post_init__(self) -> None:
        if self.on_missing not in MISSING_POLICIES:
            msg = f"on_missing must be one of {', '.join(map(repr, MISSING_POLICIES))}, got {self.on_missing!r}"
            raise InvalidInputError(msg)
        if self.on_out_of_range not in OUT_OF_RANGE_POLICIES:
            choices = ", ".join(map(repr, OUT_OF_RANGE_POLICIES))
            msg = f"on_out_of_range must be one of {choices}, got {self.on_out_of_range!r}"
            raise InvalidInputError(msg)

    def check(self, value: float) -> str | None:
        """Why ``value`` is outside the valid range, or None when it is inside (or no range is set)."""
        unit = f" {self.unit}" if self.unit else ""
        bounds = f"[{_num(self.low)}, {_num(self.high)}]{unit}"
        if self.low is not None and value < self.low:
            return f"below its valid range {bounds}"
        if self.high is not None and value > self.high:
            return f"above its valid range {bounds}"
        return None


def _num(value: float | None) -> str:
    if value is None:
        return "-inf"
    return f"{value:g}"


@dataclass(frozen=True)
class PolicyResult:
    """The readings after the policies, or the dead letter they call for.

    Attributes
    ----------
    values : dict
        The readings to score (numeric strings read as numbers); None when ``rejection`` is set.
    missing : dict
        Sensor -> reason, for the readings the record lacks and whose policy is ``score_without``.
    notes : list of str
        What was accepted that a plain record would not be (for the decision's note).
    rejection : (kind, reason) or None
    counts : dict
        ``missing``, ``out_of_range``, ``numeric_string``: how many readings of this record were each.
    """

    values: dict[str, Any] | None
    missing: dict[str, str]
    notes: list[str]
    rejection: tuple[str, str] | None
    counts: dict[str, int]


def apply_policies(
    values: Mapping[str, Any], quality: Mapping[str, str] | None, policies: Mapping[str, SensorPolicy]
) -> PolicyResult:
    """Apply each sensor's policy to one record's readings (sensors without a policy get the defaults).

    Examples
    --------
    >>> policies = {"t": SensorPolicy(low=0, high=100, on_out_of_range="score"), "p": SensorPolicy()}
    >>> apply_policies({"t": 120.0, "p": 1.0}, None, policies).notes
    ["'t' = 120 above its valid range [0, 100], scored as it is"]
    >>> apply_policies({"t": 20.0, "p": None}, {"p": "BadSensorFailure"}, policies).rejection
    ('missing_value', "no value for 'p' (BadSensorFailure)")
    """
    default = SensorPolicy()
    quality = quality or {}
    out: dict[str, Any] = {}
    missing: dict[str, str] = {}
    notes: list[str] = []
    refusals: dict[str, list[str]] = {"missing_value": [], "out_of_range": []}
    counts = {"missing": 0, "out_of_range": 0, "numeric_string": 0}
    for name, value in values.items():
        policy = policies.get(name, default)
        if isinstance(value, str) and policy.numeric_strings and _DECIMAL.fullmatch(value.strip()):
            number = float(value)
            if math.isfinite(number):
                counts["numeric_string"] += 1
                notes.append(f"{name!r} sent as text {value!r}, read as {number:g}")
                value = number
        reason = None
        if value is None:
            reason = quality.get(name, "null, no reason given")
        elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out_of_range = policy.check(float(value))
            if out_of_range is not None:
                counts["out_of_range"] += 1
                text = f"{name!r} = {value:g} {out_of_range}"
                if policy.on_out_of_range == "reject":
                    refusals["out_of_range"].append(text)
                elif policy.on_out_of_range == "score":
                    notes.append(f"{text}, scored as it is")
                else:
                    reason = f"{value:g} is {out_of_range}"
        if reason is None:
            out[name] = value
            continue
        counts["missing"] += 1
        if policy.on_missing == "reject":
            refusals["missing_value"].append(f"{name!r} ({reason})")
        else:
            missing[name] = reason
    for name, policy in policies.items():
        if name not in values and policy.on_missing == "score_without":
            counts["missing"] += 1
            missing[name] = "not in the record"
    for kind in ("out_of_range", "missing_value"):
        if refusals[kind]:
            prefix = "no value for " if kind == "missing_value" else ""
            return PolicyResult(None, missing, notes, (kind, prefix + ", ".join(refusals[kind])), counts)
    return PolicyResult(out, missing, notes, None, counts)
