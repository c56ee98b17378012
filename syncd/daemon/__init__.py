"""`syncd run`: the composition root of the long-running daemon. Builds pool -> Selzy client ->
callbacks and web -> scheduler, serves until SIGTERM/SIGINT, tears down in reverse.

Modules: lifecycle (start/stop/signals/reload/heartbeat), jobs (one run as the daemon does it),
supervisor (named background tasks), reload (what a new config changes). Timing lives in
syncd.scheduler, HTTP in syncd.web, sd_notify in syncd.systemd.
"""

from __future__ import annotations

from pathlib import Path

from syncd.config import Config

__all__ = ["run_daemon"]


async def run_daemon(
    config: Config, config_path: Path | None, *, shutdown_deadline: float | None = None
) -> int:
    """Run until stopped; returns the exit status (0 clean stop, 1 a supervised task died).

    Start-up problems raise: ConfigError (exit 78: bad schedule, missing table or column,
    unusable listen address), SchemaError (not migrated), DatabaseError/ApiError (exit 1).
    """
    from syncd.daemon.lifecycle import (
        SHUTDOWN_DEADLINE,
        Daemon,
    )  # keeps `import syncd.daemon.x` light

    deadline = SHUTDOWN_DEADLINE if shutdown_deadline is None else shutdown_deadline
    return await Daemon(config, config_path, shutdown_deadline=deadline).run()
