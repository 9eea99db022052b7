"""Named alarm rules, and building a stage from a rule plus overrides (what the command line calls).

``plain``: a bare static threshold; every flagged reading is an alarm (what Vigil did before the alarm
stage; benchmark tables use it unless they say otherwise, so they compare with published per-point
thresholds). ``recommended``: a stated plant policy (3 of 5 on-delay, 10-reading off-delay) with the adaptive
set level and the bypass level ``benchmarks/alarm_dev.py`` chose under it on normal development runs with
synthetic faults (never a benchmark's test rows); ``vigil fit`` deploys it.
"""

from __future__ import annotations

from typing import Any

from vigil.alarms.policy import AlarmPolicy
from vigil.alarms.stage import AlarmStage
from vigil.calibration.online import make_online_threshold
from vigil.errors import InvalidInputError

__all__ = ["ALARM_RULES", "make_alarm_stage", "parse_on_delay"]

ALARM_RULES: dict[str, dict[str, Any]] = {
    "plain": {"policy": {}, "adapt": "fixed", "params": {}, "guard": 0.2},
    # The plant policy (3 of 5 on-delay, 10-reading off-delay) is stated; the adaptive set level under it
    # was chosen by benchmarks/alarm_dev.py on development runs (benchmarks/results/alarms/dev.json), and
    # the bypass (one reading above 2 × the set level alarms at once) by its --bypass study
    # (benchmarks/results/alarms/dev-bypass.json: the most sensitive level within 6 false-alarm events/h).
    "recommended": {
        "policy": {"on_delay": 3, "window": 5, "off_delay": 10, "bypass": 2.0},
        "adapt": "baseline",
        "params": {"memory": 1200},
        "guard": 0.2,
    },
}


def parse_on_delay(text: str) -> tuple[int, int]:
    """``"K/N"`` (K of the last N readings) or ``"K"`` (K in a row) → ``(K, N)``."""
    try:
        k_text, _, n_text = text.partition("/")
        k = int(k_text)
        n = int(n_text) if n_text else k
    except ValueError as exc:
        msg = f"on-delay {text!r} must be K/N (K of the last N readings) or K"
        raise InvalidInputError(msg) from exc
    return k, n


def make_alarm_stage(
    rule: str = "plain",
    *,
    on_delay: tuple[int, int] | None = None,
    off_delay: int | None = None,
    deadband: float | None = None,
    holdoff: int | None = None,
    bypass: float | None = None,
    adapt: str | None = None,
    adapt_params: dict[str, Any] | None = None,
    guard: float | None = None,
) -> AlarmStage:
    """An unfitted stage: the named ``rule`` with any of its parts overridden.

    Examples
    --------
    >>> make_alarm_stage("plain", on_delay=(3, 5), off_delay=10).policy
    AlarmPolicy(on_delay=3, window=5, off_delay=10, deadband=0.0, holdoff=0, bypass=None)
    >>> make_alarm_stage("recommended").threshold
    RollingBaselineThreshold(memory=1200, floor=0.01)
    """
    if rule not in ALARM_RULES:
        msg = f"unknown alarm rule {rule!r}; choose one of {', '.join(ALARM_RULES)}"
        raise InvalidInputError(msg)
    base = ALARM_RULES[rule]
    policy = dict(base["policy"])
    if on_delay is not None:
        policy["on_delay"], policy["window"] = on_delay
    for name, value in (("off_delay", off_delay), ("deadband", deadband), ("holdoff", holdoff), ("bypass", bypass)):
        if value is not None:
            policy[name] = value
    kind = adapt if adapt is not None else base["adapt"]
    params = dict(base["params"]) if adapt is None or adapt == base["adapt"] else {}
    params.update(adapt_params or {})
    return AlarmStage(
        threshold=make_online_threshold(kind, **params),
        policy=AlarmPolicy(**policy),
        guard=base["guard"] if guard is None else guard,
    )
