"""The daemon's HTTP side: notify_url callbacks (callbacks.py), Selzy's event webhook receiver
(events.py), the aiohttp listeners (server.py), /healthz (health.py) and Prometheus metrics
(metrics.py; the event webhook's families in event_metrics.py). Imports nothing from reconcile/
or api/.
"""

from syncd.web.callbacks import CallbackRegistry, Slot, Verdict
from syncd.web.health import JobRuns, evaluate, fetch_job_runs, max_success_age
from syncd.web.metrics import RunStats, render
from syncd.web.server import Listener, WebServer, callback_prefix, parse_listen

__all__ = [
    "CallbackRegistry",
    "JobRuns",
    "Listener",
    "RunStats",
    "Slot",
    "Verdict",
    "WebServer",
    "callback_prefix",
    "evaluate",
    "fetch_job_runs",
    "max_success_age",
    "parse_listen",
    "render",
]
