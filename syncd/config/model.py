"""The configuration contract: the frozen dataclasses every other module codes against, the Secret
type whose repr is masked, and the defaults and vocabularies they are built from. No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

DEFAULT_CONFIG_PATH = Path("/etc/syncd/config.toml")
DEFAULT_BASE_URL = "https://api.selzy.com/en/api"
MIN_OPT_OUT_LATENCY = 1.0  # seconds: a pass every half of it; faster only loads PostgreSQL

MatchKey = Literal["email", "phone"]
RemoteOnly = Literal["keep", "delete", "import"]
DeleteMode = Literal["delete", "exclude", "off"]
# Selzy attributes that may be written back into local columns.
WRITEBACK_KEYS = ("email_status", "phone_status", "email_availability", "list_status")
# The match keys: Selzy system fields that identify a contact.
SYSTEM_FIELDS = ("email", "phone")


class Secret:
    """A string that never shows itself in repr/str/format; `.reveal()` is the only way in."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True, slots=True)
class SelzyConfig:
    base_url: str = DEFAULT_BASE_URL
    api_key: Secret | None = None  # from $SELZY_API_KEY or api_key_file, never the file itself
    api_key_file: Path | None = None
    timeout: float = 30.0  # seconds per call
    max_attempts: int = 5  # per call, including the first
    rate_limit_per_minute: int = 1200  # all calls on this key, shared by all jobs
    export_rate_limit_per_minute: int = 20  # async/exportContacts on this key
    rate_limit_margin: float = 0.1  # fraction of both limits left unused (other clients, per-IP)
    export_deadline: float = 3600.0  # seconds to wait for an export task to complete
    poll_interval: float = 2.0  # first getTaskResult poll delay; grows to poll_interval_max
    poll_interval_max: float = 30.0


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    dsn: Secret | None = None  # None: libpq PG* environment variables apply
    pool_size: int = 4
    connect_timeout: float = 10.0  # seconds to open a connection
    statement_timeout: float = 0.0  # seconds, 0 = server default
    acquire_timeout: float = 10.0  # seconds to wait for a connection of the pool
    lock_timeout: float = 30.0  # seconds a statement waits for a lock (row, table); 0 = no limit


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"  # auto: console on a terminal, else JSON


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    listen: str = "127.0.0.1:8089"  # host:port the daemon serves the callback on
    public_url: str = ""  # the URL Selzy can reach; per-task tokens are appended to it
    max_body_bytes: int = 65536
    events: bool = False  # register with setHook and apply Selzy's unsubscribe/subscribe events
    max_event_body_bytes: int = 4 * 1024 * 1024  # an event POST may batch many events
    hook_check_interval: float = 3600.0  # seconds between two listHooks checks of the handler


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    """[alerts]: where an alert goes (at least one channel) and when a count is worth one."""

    webhook_url: Secret | None = None  # POSTs {"text": ...}; a secret: such URLs carry a token
    command: str | None = None  # run with the alert as JSON on stdin (split like a shell)
    quarantine_alert: int = 100  # alert when a run finds this many quarantined contacts
    rejected_alert_fraction: float = 0.05  # alert when a run's rejected rows exceed this share
    timeout: float = 10.0  # seconds per delivery attempt
    attempts: int = 5  # delivery attempts per alert and channel, including the first


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    listen: str = "127.0.0.1:9108"  # serves /metrics and /healthz


@dataclass(frozen=True, slots=True)
class Schedule:
    """`every N s|m|h` (interval_seconds set) or a 5-field cron expression (cron set)."""

    text: str
    interval_seconds: int | None = None
    cron: str | None = None


@dataclass(frozen=True, slots=True)
class JobConfig:
    name: str
    list_id: int
    table: str  # "schema.table" or "table"; a table or a view
    match: MatchKey
    schedule: Schedule
    fields: Mapping[str, str]  # Selzy field name -> local column, in config order
    writeback: Mapping[str, str] = field(default_factory=dict)  # WRITEBACK_KEYS -> local column
    remote_only: RemoteOnly = "keep"
    delete_mode: DeleteMode = "delete"
    max_deletes: int = 1000
    max_delete_fraction: float = 0.05
    opt_out_column: str | None = None
    batch_size: int = 500  # rows per importContacts call, 1..500
    max_in_flight: int = 2  # importContacts calls in flight at once
    quarantine_after: int = 3  # consecutive rejected runs before a contact is quarantined
    run_timeout: float = 3600.0  # seconds; a run that takes longer is cancelled and marked failed
    run_at_start: bool = False  # the daemon runs the job once when it starts
    history_days: int = 400  # syncd.history rows of the job are kept this long
    plan_max_age: float = 86400.0  # seconds: `syncd apply` refuses an older plan
    event_backlog_run: int = 500  # queued event contacts past which an early run is asked for
    # seconds (daemon only): push local opt-outs this soon, between runs; None = at the next run
    opt_out_latency: float | None = None


@dataclass(frozen=True, slots=True)
class Config:
    selzy: SelzyConfig = field(default_factory=SelzyConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    log: LogConfig = field(default_factory=LogConfig)
    webhook: WebhookConfig | None = None
    metrics: MetricsConfig | None = None
    alerts: AlertsConfig | None = None
    jobs: tuple[JobConfig, ...] = ()
    path: Path | None = None  # where it was loaded from
