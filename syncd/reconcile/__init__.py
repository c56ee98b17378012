"""Reconciliation: what to do with each contact (the plan SQL, batches.py, guards.py) and the
runner that does it (runner.py, the one place the database and the Selzy API meet).
"""

from syncd.reconcile.outcome import (
    Binding,
    CallbackSlot,
    ExportCallbacks,
    RunOutcome,
    RunServices,
    RunStatus,
)
from syncd.reconcile.runner import run_job

__all__ = [
    "Binding",
    "CallbackSlot",
    "ExportCallbacks",
    "RunOutcome",
    "RunServices",
    "RunStatus",
    "run_job",
]
