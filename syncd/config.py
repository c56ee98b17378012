"""TOML configuration -> frozen, typed objects. Owns validation (every problem reported at once,
each naming its key path) and the Secret type; it must not touch the network or the database.

The dataclasses below are the contract every other module codes against.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, cast
from urllib.parse import urlsplit

from syncd.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/syncd/config.toml")
DEFAULT_BASE_URL = "https://api.selzy.com/en/api"

MatchKey = Literal["email", "phone"]
RemoteOnly = Literal["keep", "delete", "import"]
DeleteMode = Literal["delete", "exclude", "off"]
# Selzy attributes that may be written back into local columns.
WRITEBACK_KEYS = ("email_status", "phone_status", "email_availability", "list_status")


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
    export_deadline: float = 3600.0  # seconds to wait for an export task to complete
    poll_interval: float = 2.0  # first getTaskResult poll delay; grows to poll_interval_max
    poll_interval_max: float = 30.0


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    dsn: Secret | None = None  # None: libpq PG* environment variables apply
    pool_size: int = 4
    connect_timeout: float = 10.0
    statement_timeout: float = 0.0  # seconds, 0 = server default


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"  # auto: console on a terminal, else JSON


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    listen: str = "127.0.0.1:8089"  # host:port the daemon serves the callback on
    public_url: str = ""  # the URL Selzy can reach; per-task tokens are appended to it
    max_body_bytes: int = 65536


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


@dataclass(frozen=True, slots=True)
class Config:
    selzy: SelzyConfig = field(default_factory=SelzyConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    log: LogConfig = field(default_factory=LogConfig)
    webhook: WebhookConfig | None = None
    metrics: MetricsConfig | None = None
    jobs: tuple[JobConfig, ...] = ()
    path: Path | None = None  # where it was loaded from


# ---------------------------------------------------------------------------------------------
# Loading: TOML -> Config. Every getter records its problem and carries on with a default, so
# one pass reports everything; the Config is built only when nothing was wrong.
# ---------------------------------------------------------------------------------------------

SYSTEM_FIELDS = ("email", "phone")
# System names importContacts gives a meaning to; mapping a local column onto them would let local
# data change status, membership, tags or delete contacts. (selzy-api.md §3.3, §4.1)
RESERVED_FIELDS = frozenset(
    {
        "id",
        "delete",
        "tags",
        "double_optin",
        "platform",
        "lang",
        *(
            f"{channel}_{suffix}"
            for channel in ("email", "phone")
            for suffix in (
                "status",
                "availability",
                "list_ids",
                "subscribe_times",
                "unsubscribed_list_ids",
                "excluded_list_ids",
                "add_time",
                "request_ip",
                "confirm_time",
                "confirm_ip",
                "last_delivered_at",
                "last_read_at",
                "last_clicked_at",
            )
        ),
    }
)
NO_API_KEY = "no API key: set $SELZY_API_KEY or selzy.api_key_file"
_API_KEY_IN_FILE = (
    "the API key is never read from the config file: set $SELZY_API_KEY or selzy.api_key_file"
)
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")  # TOML keys that need no quotes
_USER_FIELD = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_JOB_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_EVERY = re.compile(r"every\s+([0-9]+)\s*([smh])", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, lowest, highest, names numbered from `lowest`)
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_CRON_ITEM = re.compile(r"(\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/([0-9]+))?")
_MAX_IDENTIFIER_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1; longer names are silently truncated

_REQUIRED: Any = object()
T = TypeVar("T")


def load_config(path: Path | None = None, *, environ: Mapping[str, str] = os.environ) -> Config:
    """Read and validate the configuration; raise ConfigError listing every problem found.

    The path comes from the argument, else $SYNCD_CONFIG, else /etc/syncd/config.toml. The API
    key comes from $SELZY_API_KEY, else from the file named by selzy.api_key_file; a missing key
    is not an error here (see `require_api_key`).
    """
    if path is None:
        path = Path(environ["SYNCD_CONFIG"]) if environ.get("SYNCD_CONFIG") else DEFAULT_CONFIG_PATH
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: not UTF-8 (byte {exc.start})") from exc
    return parse_config(data, path=path, environ=environ)


def parse_config(
    data: Mapping[str, Any], *, path: Path | None = None, environ: Mapping[str, str] = os.environ
) -> Config:
    """Validate an already-parsed TOML document (see `load_config`)."""
    problems: list[str] = []
    root = _Table(problems, data, "")
    if "api_key" in data:
        root.reject("api_key", _API_KEY_IN_FILE)
    selzy = _read_selzy(root.table("selzy"), path, environ)
    database = _read_database(root.table("database"))
    log = _read_log(root.table("log"))
    webhook = _read_webhook(root.table("webhook")) if "webhook" in data else None
    metrics = _read_metrics(root.table("metrics")) if "metrics" in data else None
    jobs = _read_jobs(root)
    root.finish()
    if problems:
        raise ConfigError(problems)
    return Config(
        selzy=selzy,
        database=database,
        log=log,
        webhook=webhook,
        metrics=metrics,
        jobs=jobs,
        path=path,
    )


def require_api_key(cfg: Config) -> Secret:
    """The Selzy API key, or ConfigError for commands that cannot work without one."""
    if not cfg.selzy.api_key:
        raise ConfigError(NO_API_KEY)
    return cfg.selzy.api_key


def parse_schedule(text: str) -> Schedule:
    """`every N s|m|h` or a syntactically valid 5-field cron expression; ValueError otherwise.

    Cron semantics (impossible dates, the day-of-week numbering) are the scheduler's business.
    """
    text = text.strip()
    if every := _EVERY.fullmatch(text):
        count = int(every.group(1))
        if count < 1:
            raise ValueError("the interval must be at least 1")
        return Schedule(text, interval_seconds=count * _UNIT_SECONDS[every.group(2).lower()])
    parts = text.split()
    if len(parts) != len(_CRON_FIELDS):
        raise ValueError(f"expected 'every N' + s|m|h or a 5-field cron expression, got {text!r}")
    for part, spec in zip(parts, _CRON_FIELDS, strict=True):
        for item in part.lower().split(","):
            problem = _cron_item_problem(item, *spec)
            if problem:
                raise ValueError(f"cron {spec[0]} field {part!r}: {problem}")
    return Schedule(text, cron=" ".join(parts))


def _cron_item_problem(item: str, _name: str, low: int, high: int, names: tuple[str, ...]) -> str:
    match = _CRON_ITEM.fullmatch(item)
    if not match:
        return f"cannot read {item!r}"
    span, step = match.groups()
    if step is not None and int(step) < 1:
        return "a step must be at least 1"
    if span == "*":
        return ""
    bounds = []
    for bound in span.split("-"):
        if bound.isdigit():
            number = int(bound)
        elif bound in names:
            number = names.index(bound) + low
        else:
            return f"{bound!r} is not a number" + (" or a name" if names else "")
        if not low <= number <= high:
            return f"{number} is outside {low}-{high}"
        bounds.append(number)
    if len(bounds) == 2 and bounds[0] > bounds[1]:
        return f"range {span!r} runs backwards"
    return ""


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, list):
        return "array"
    return "date/time"


class _Table:
    """One TOML table being read: typed getters record problems under the key path, and `finish`
    reports every key nobody asked for, suggesting the closest known one."""

    def __init__(self, problems: list[str], data: Mapping[str, Any], path: str) -> None:
        self.problems = problems
        self.data = data
        self.path = path
        self.known: list[str] = []

    def key_path(self, key: str) -> str:
        shown = key if _BARE_KEY.fullmatch(key) else '"' + key.replace('"', '\\"') + '"'
        return f"{self.path}.{shown}" if self.path else shown

    def add(self, key: str, message: str) -> None:
        self.problems.append(f"{self.key_path(key)}: {message}")

    def reject(self, key: str, message: str) -> None:
        self.known.append(key)
        self.add(key, message)

    def _get(self, key: str, expected: str, ok: Callable[[object], bool], default: Any) -> Any:
        self.known.append(key)
        if key not in self.data:
            if default is _REQUIRED:
                self.add(key, "missing (required)")
                return None
            return default
        value = self.data[key]
        if not ok(value):
            self.add(key, f"expected {expected}, got {_type_name(value)}")
            return None if default is _REQUIRED else default
        return value

    def text(self, key: str, default: T, *, choices: tuple[str, ...] = ()) -> str | T:
        value = self._get(key, "a string", lambda v: isinstance(v, str), default)
        if choices and isinstance(value, str) and value not in choices:
            self.add(key, f"expected one of {', '.join(choices)}, got {value!r}")
            return default
        return cast("str | T", value)

    def integer(
        self, key: str, default: T, *, low: int | None = None, high: int | None = None
    ) -> int | T:
        def ok(v: object) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        value = self._get(key, "an integer", ok, default)
        if isinstance(value, int) and not _in_range(self, key, value, low, high):
            return default
        return cast("int | T", value)

    def number(
        self,
        key: str,
        default: float,
        *,
        low: float | None = None,
        high: float | None = None,
        above: float | None = None,
    ) -> float:
        def ok(v: object) -> bool:
            return isinstance(v, int | float) and not isinstance(v, bool)

        value = self._get(key, "a number", ok, default)
        if above is not None and value <= above:
            self.add(key, f"must be greater than {above:g}, got {value:g}")
            return default
        if not _in_range(self, key, value, low, high):
            return default
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        return cast(bool, self._get(key, "a boolean", lambda v: isinstance(v, bool), default))

    def table(self, key: str, *, required: bool = False) -> _Table:
        data = self._get(
            key, "a table", lambda v: isinstance(v, dict), _REQUIRED if required else {}
        )
        return _Table(self.problems, data or {}, self.key_path(key))

    def finish(self) -> None:
        for key in self.data:
            if key not in self.known:
                close = difflib.get_close_matches(key, self.known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.add(key, f"unknown key{hint}")


def _in_range(table: _Table, key: str, value: float, low: float | None, high: float | None) -> bool:
    if (low is not None and value < low) or (high is not None and value > high):
        if high is None:
            table.add(key, f"must be at least {low:g}, got {value:g}")
        elif low is None:
            table.add(key, f"must be at most {high:g}, got {value:g}")
        else:
            table.add(key, f"must be between {low:g} and {high:g}, got {value:g}")
        return False
    return True


def _defaults(cls: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _url_problem(url: str, *, query_allowed: bool) -> str:
    """Never echoes the URL: it may hold a credential the user pasted by mistake."""
    if "api_key" in url.lower():
        return "must not contain an API key: set $SELZY_API_KEY or selzy.api_key_file"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "expected an http:// or https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return "must not contain credentials"
    if parts.query and not query_allowed:
        return "must not contain a query string"
    if parts.fragment:
        return "must not contain a fragment"
    return ""


def _listen_problem(listen: str) -> str:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        return f"expected host:port (port 0-65535), got {listen!r}"
    return ""


def _identifier_problem(name: str, what: str) -> str:
    if not name:
        return f"{what} is empty"
    if "\x00" in name:
        return f"{what} contains a NUL character"
    if len(name.encode()) > _MAX_IDENTIFIER_BYTES:
        return f"{what} is longer than {_MAX_IDENTIFIER_BYTES} bytes"
    return ""


def _table_problem(name: str) -> str:
    parts = name.split(".")
    if len(parts) > 2:
        return f'expected "table" or "schema.table", got {name!r}'
    for part, what in zip(
        parts, ("the schema name", "the table name")[2 - len(parts) :], strict=True
    ):
        if problem := _identifier_problem(part, what):
            return problem
    return ""


def _read_selzy(t: _Table, path: Path | None, environ: Mapping[str, str]) -> SelzyConfig:
    d = _defaults(SelzyConfig)
    if "api_key" in t.data:
        t.reject("api_key", _API_KEY_IN_FILE)
    base_url = t.text("base_url", d["base_url"])
    if problem := _url_problem(base_url, query_allowed=False):
        t.add("base_url", problem)
    key_file_text = t.text("api_key_file", None)
    key_file = Path(key_file_text) if key_file_text else None
    if key_file_text == "":
        t.add("api_key_file", "is empty")
    if key_file is not None and not key_file.is_absolute() and path is not None:
        key_file = path.parent / key_file
    interval = t.number("poll_interval", d["poll_interval"], above=0)
    interval_max = t.number("poll_interval_max", d["poll_interval_max"], above=0)
    if interval_max < interval:
        t.add("poll_interval_max", "must be at least selzy.poll_interval")
    selzy = SelzyConfig(
        base_url=base_url.rstrip("/"),
        api_key=_api_key(t, key_file, environ),
        api_key_file=key_file,
        timeout=t.number("timeout", d["timeout"], above=0),
        max_attempts=t.integer("max_attempts", d["max_attempts"], low=1, high=100),
        rate_limit_per_minute=t.integer("rate_limit_per_minute", d["rate_limit_per_minute"], low=1),
        export_rate_limit_per_minute=t.integer(
            "export_rate_limit_per_minute", d["export_rate_limit_per_minute"], low=1
        ),
        export_deadline=t.number("export_deadline", d["export_deadline"], above=0),
        poll_interval=interval,
        poll_interval_max=interval_max,
    )
    t.finish()
    return selzy


def _api_key(t: _Table, key_file: Path | None, environ: Mapping[str, str]) -> Secret | None:
    from_env = environ.get("SELZY_API_KEY", "").strip()
    if from_env:
        return Secret(from_env)
    if key_file is None:
        return None
    try:
        text = key_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        t.add("api_key_file", f"cannot read {key_file}: {reason or exc}")
        return None
    if not text:
        t.add("api_key_file", f"{key_file} is empty")
        return None
    return Secret(text)


def _read_database(t: _Table) -> DatabaseConfig:
    d = _defaults(DatabaseConfig)
    dsn = t.text("dsn", None)
    if dsn is not None and not dsn.strip():
        t.add("dsn", "is empty (omit it to use the libpq PG* environment variables)")
    elif dsn is not None and "://" in dsn and not dsn.startswith(("postgresql://", "postgres://")):
        t.add("dsn", "expected a postgresql:// URL or a libpq keyword string")
    database = DatabaseConfig(
        dsn=Secret(dsn) if dsn else None,
        pool_size=t.integer("pool_size", d["pool_size"], low=1, high=100),
        connect_timeout=t.number("connect_timeout", d["connect_timeout"], above=0),
        statement_timeout=t.number("statement_timeout", d["statement_timeout"], low=0),
    )
    t.finish()
    return database


def _read_log(t: _Table) -> LogConfig:
    level = t.text("level", "info", choices=("debug", "info", "warning", "error"))
    fmt = t.text("format", "auto", choices=("auto", "json", "console"))
    t.finish()
    return LogConfig(level=cast(Any, level), format=cast(Any, fmt))


def _read_webhook(t: _Table) -> WebhookConfig:
    d = _defaults(WebhookConfig)
    listen = t.text("listen", d["listen"])
    if problem := _listen_problem(listen):
        t.add("listen", problem)
    public_url = t.text("public_url", _REQUIRED) or ""
    if public_url and (problem := _url_problem(public_url, query_allowed=True)):
        t.add("public_url", problem)
    webhook = WebhookConfig(
        listen=listen,
        public_url=public_url,
        max_body_bytes=t.integer("max_body_bytes", d["max_body_bytes"], low=1024),
    )
    t.finish()
    return webhook


def _read_metrics(t: _Table) -> MetricsConfig:
    listen = t.text("listen", MetricsConfig().listen)
    if problem := _listen_problem(listen):
        t.add("listen", problem)
    t.finish()
    return MetricsConfig(listen=listen)


def _read_jobs(root: _Table) -> tuple[JobConfig, ...]:
    if not root.data.get("jobs", []):
        root.reject("jobs", "at least one [[jobs]] table is required")
        return ()
    raw = root._get(
        "jobs",
        "an array of tables ([[jobs]])",
        lambda v: isinstance(v, list) and all(isinstance(j, dict) for j in v),
        [],
    )
    jobs = []
    names: set[str] = set()
    for index, data in enumerate(raw):
        t = _Table(root.problems, data, f"jobs[{index}]")
        job = _read_job(t)
        t.finish()
        name = data.get("name")
        if isinstance(name, str) and name in names:
            t.add("name", f"duplicate job name {name!r}")
        names.add(name if isinstance(name, str) else "")
        if job is not None:
            jobs.append(job)
    return tuple(jobs)


def _read_job(t: _Table) -> JobConfig | None:
    d = _defaults(JobConfig)
    name = t.text("name", _REQUIRED)
    if name is not None and not _JOB_NAME.fullmatch(name):
        t.add("name", f"expected letters, digits, '_', '.', '-', got {name!r}")
    list_id = t.integer("list_id", _REQUIRED, low=1)
    table = t.text("table", _REQUIRED)
    if table is not None and (problem := _table_problem(table)):
        t.add("table", problem)
    match = t.text("match", "email", choices=SYSTEM_FIELDS)
    schedule_text = t.text("schedule", "every 15m")
    schedule = None
    try:
        schedule = parse_schedule(schedule_text)
    except ValueError as exc:
        t.add("schedule", str(exc))
    opt_out = t.text("opt_out_column", None)
    if opt_out is not None and (problem := _identifier_problem(opt_out, "the column name")):
        t.add("opt_out_column", problem)
    fields_table = t.table("fields", required=True)
    fields = _read_fields(fields_table)
    if "fields" in t.data and match not in fields_table.data:
        t.add("fields", f"must map the match key {match!r} to a column")
    writeback = _read_writeback(t.table("writeback"), fields, opt_out)
    job: dict[str, Any] = {
        "remote_only": t.text(
            "remote_only", d["remote_only"], choices=("keep", "delete", "import")
        ),
        "delete_mode": t.text(
            "delete_mode", d["delete_mode"], choices=("delete", "exclude", "off")
        ),
        "max_deletes": t.integer("max_deletes", d["max_deletes"], low=0),
        "max_delete_fraction": t.number(
            "max_delete_fraction", d["max_delete_fraction"], low=0, high=1
        ),
        "batch_size": t.integer("batch_size", d["batch_size"], low=1, high=500),
        "max_in_flight": t.integer("max_in_flight", d["max_in_flight"], low=1, high=8),
        "quarantine_after": t.integer("quarantine_after", d["quarantine_after"], low=1),
        "run_timeout": t.number("run_timeout", d["run_timeout"], above=0),
        "run_at_start": t.boolean("run_at_start", d["run_at_start"]),
    }
    if name is None or list_id is None or table is None or schedule is None:
        return None
    return JobConfig(
        name=name,
        list_id=list_id,
        table=table,
        match=cast(MatchKey, match),
        schedule=schedule,
        fields=fields,
        writeback=writeback,
        opt_out_column=opt_out,
        **job,
    )


def _read_fields(t: _Table) -> dict[str, str]:
    fields: dict[str, str] = {}
    for selzy_name in t.data:
        column = t.text(selzy_name, None)
        if selzy_name in RESERVED_FIELDS:
            t.add(
                selzy_name, "is a Selzy system field that syncd manages itself; it cannot be mapped"
            )
        elif selzy_name not in SYSTEM_FIELDS and not _USER_FIELD.fullmatch(selzy_name):
            t.add(selzy_name, "a Selzy user field name is a letter then letters, digits or '_'")
        elif column is not None:
            if problem := _identifier_problem(column, "the column name"):
                t.add(selzy_name, problem)
            else:
                fields[selzy_name] = column
    return fields


def _read_writeback(t: _Table, fields: Mapping[str, str], opt_out: str | None) -> dict[str, str]:
    writeback: dict[str, str] = {}
    taken = {column: f"fields.{name}" for name, column in fields.items()}
    if opt_out:
        taken[opt_out] = "opt_out_column"
    for key in t.data:
        column = t.text(key, None)
        if key not in WRITEBACK_KEYS:
            close = difflib.get_close_matches(key, WRITEBACK_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            t.add(key, f"unknown writeback key{hint}; expected one of {', '.join(WRITEBACK_KEYS)}")
        elif column is not None:
            if problem := _identifier_problem(column, "the column name"):
                t.add(key, problem)
            elif column in taken:
                t.add(key, f"column {column!r} is already used by {taken[column]}")
            else:
                taken[column] = f"writeback.{key}"
                writeback[key] = column
    return writeback
