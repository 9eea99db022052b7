"""The decision stage between a score and an alarm: adaptive set levels with guards, and annunciation rules."""

from vigil.alarms.policy import AlarmPolicy
from vigil.alarms.stage import AlarmRun, AlarmStage, AlarmState

__all__ = ["AlarmPolicy", "AlarmRun", "AlarmStage", "AlarmState"]
