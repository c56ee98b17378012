"""What a SIGHUP reload changes: pure comparisons of the running and the new configuration.
It must not load, validate or apply anything (lifecycle.py does), only say what differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from syncd.config import Config, JobConfig

# Sections the daemon built its long-lived objects from: a change takes effect after a restart.
RESTART_SECTIONS = ("selzy", "database", "webhook", "metrics", "log")


@dataclass(frozen=True, slots=True)
class JobChanges:
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


def diff_jobs(old: Sequence[JobConfig], new: Sequence[JobConfig]) -> JobChanges:
    """Jobs by name: added, removed, and changed (any setting differs), each in config order."""
    before = {job.name: job for job in old}
    after = {job.name: job for job in new}
    return JobChanges(
        added=tuple(name for name in after if name not in before),
        removed=tuple(name for name in before if name not in after),
        changed=tuple(
            name for name, job in after.items() if name in before and before[name] != job
        ),
    )


def restart_required(old: Config, new: Config) -> list[str]:
    """Sections that differ but cannot be swapped into a running daemon."""
    return [name for name in RESTART_SECTIONS if getattr(old, name) != getattr(new, name)]
