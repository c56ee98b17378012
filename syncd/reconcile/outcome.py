"""The reconcile package's public values: what a run needs (RunServices), what it returns
(RunOutcome), and the notify_url callback protocols the daemon implements. No behaviour here.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeAlias

from syncd.api import SelzyClient
from syncd.config import Config
from syncd.db import Pool

RunStatus: TypeAlias = Literal["succeeded", "failed", "blocked", "interrupted", "busy"]


class CallbackSlot(Protocol):
    """One export's notify_url: bound to the task once it exists, waited on while polling."""

    url: str

    def bind(self, task_uuid: str) -> None: ...

    async def wait(self, timeout: float) -> str | None:  # noqa: ASYNC109 - the daemon's contract
        """file_to_download once the callback came, or None when nothing came in time."""
        ...

    def close(self) -> None: ...


class ExportCallbacks(Protocol):
    def open_slot(self) -> CallbackSlot: ...


@dataclass(frozen=True, slots=True)
class RunServices:
    """Long-lived things a run uses; owned (opened and closed) by the caller. A run reaches the
    pool through syncd.db.Database and opens its own connection as a syncd.db.RunSession."""

    config: Config
    pool: Pool
    client: SelzyClient
    callbacks: ExportCallbacks | None = None


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a run ended. `counts` are the syncd.runs counts, `planned` the plan per action;
    `plan_sample` holds up to 5 keys per action (printed by --dry-run); `api_errors` counts the
    run's failed Selzy attempts by error code (retried ones included)."""

    job: str
    run_id: int | None
    status: RunStatus
    counts: Mapping[str, int]
    planned: Mapping[str, int]
    error: str | None
    duration_s: float
    plan_sample: Mapping[str, Sequence[str]] = field(default_factory=dict)
    blocked_reason: str | None = None
    dry_run: bool = False
    api_errors: Mapping[str, int] = field(default_factory=dict)
    plan_id: int | None = None  # `syncd plan`: the plan stored; `syncd apply`: the plan applied
    drift_sample: Sequence[str] = ()  # `syncd apply`: keys of contacts skipped as drift


@dataclass(frozen=True, slots=True)
class Binding:
    """A run bound to a stored plan: `plan` stores the dry run's plan; `apply` executes plan
    `plan_id` (made with `allow_mass_delete`, which then lets its reviewed deletions pass)."""

    kind: Literal["plan", "apply"]
    plan_id: int | None = None
    allow_mass_delete: bool = False


@contextlib.contextmanager
def phase_timer(timings: MutableMapping[str, float], phase: str) -> Iterator[None]:
    """Add the block's wall seconds to `timings[phase]` (a run's, a pass's `timings`), however
    the block ends."""
    started = time.monotonic()
    try:
        yield
    finally:
        timings[phase] = timings.get(phase, 0.0) + time.monotonic() - started
