"""Alerts on change: one alert per job state change (failing, blocked, recovered, quarantine or
rejected share past a threshold and back, stale and fresh again), never one per run, to an
incoming webhook and/or a command. Never carries contact data or a secret; never fails a run.

    model      pure: JobSnapshot, transitions, stale, the Alert and its text
    delivery   the channels (webhook POST, command) and retries with back-off; never raises
    engine     AlertEngine: history from syncd.runs -> model -> channels, in the background
"""

from syncd.alerts.delivery import CommandChannel, WebhookChannel, build_channels, deliver
from syncd.alerts.engine import CLOSE_DEADLINE, AlertEngine
from syncd.alerts.model import (
    REJECTED_MIN_ROWS,
    STALE_PERIODS,
    Alert,
    JobSnapshot,
    error_type,
    fold,
    snapshot,
    stale,
    transitions,
)

__all__ = [
    "CLOSE_DEADLINE",
    "REJECTED_MIN_ROWS",
    "STALE_PERIODS",
    "Alert",
    "AlertEngine",
    "CommandChannel",
    "JobSnapshot",
    "WebhookChannel",
    "build_channels",
    "deliver",
    "error_type",
    "fold",
    "snapshot",
    "stale",
    "transitions",
]
