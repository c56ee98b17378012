"""Loading: the TOML file and the API key -> a validated Config, or one ConfigError listing every
problem found; the Config is built only when nothing was wrong. No network, no database.
"""

from __future__ import annotations

import os
import shlex
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from syncd.config.jobs import read_jobs
from syncd.config.model import (
    DEFAULT_CONFIG_PATH,
    AlertsConfig,
    Config,
    DatabaseConfig,
    LogConfig,
    MetricsConfig,
    Secret,
    SelzyConfig,
    WebhookConfig,
)
from syncd.config.table import REQUIRED, Table, field_defaults
from syncd.errors import ConfigError

NO_API_KEY = "no API key: set $SELZY_API_KEY or selzy.api_key_file"
_API_KEY_IN_FILE = (
    "the API key is never read from the config file: set $SELZY_API_KEY or selzy.api_key_file"
)


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
    root = Table(problems, data, "")
    if "api_key" in data:
        root.reject("api_key", _API_KEY_IN_FILE)
    selzy = _read_selzy(root.table("selzy"), path, environ)
    database = _read_database(root.table("database"))
    log = _read_log(root.table("log"))
    webhook = _read_webhook(root.table("webhook")) if "webhook" in data else None
    metrics = _read_metrics(root.table("metrics")) if "metrics" in data else None
    alerts = _read_alerts(root.table("alerts")) if "alerts" in data else None
    jobs = read_jobs(root)
    root.finish()
    if problems:
        raise ConfigError(problems)
    return Config(
        selzy=selzy,
        database=database,
        log=log,
        webhook=webhook,
        metrics=metrics,
        alerts=alerts,
        jobs=jobs,
        path=path,
    )


def require_api_key(cfg: Config) -> Secret:
    """The Selzy API key, or ConfigError for commands that cannot work without one."""
    if not cfg.selzy.api_key:
        raise ConfigError(NO_API_KEY)
    return cfg.selzy.api_key


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


def _read_selzy(t: Table, path: Path | None, environ: Mapping[str, str]) -> SelzyConfig:
    d = field_defaults(SelzyConfig)
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
        rate_limit_margin=t.number("rate_limit_margin", d["rate_limit_margin"], low=0, high=0.9),
        export_deadline=t.number("export_deadline", d["export_deadline"], above=0),
        poll_interval=interval,
        poll_interval_max=interval_max,
    )
    t.finish()
    return selzy


def _api_key(t: Table, key_file: Path | None, environ: Mapping[str, str]) -> Secret | None:
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


def _read_database(t: Table) -> DatabaseConfig:
    d = field_defaults(DatabaseConfig)
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
        acquire_timeout=t.number("acquire_timeout", d["acquire_timeout"], above=0),
        lock_timeout=t.number("lock_timeout", d["lock_timeout"], low=0),
    )
    t.finish()
    return database


def _read_log(t: Table) -> LogConfig:
    level = t.text("level", "info", choices=("debug", "info", "warning", "error"))
    fmt = t.text("format", "auto", choices=("auto", "json", "console"))
    t.finish()
    return LogConfig(level=cast(Any, level), format=cast(Any, fmt))


def _read_webhook(t: Table) -> WebhookConfig:
    d = field_defaults(WebhookConfig)
    listen = t.text("listen", d["listen"])
    if problem := _listen_problem(listen):
        t.add("listen", problem)
    public_url = t.text("public_url", REQUIRED) or ""
    if public_url and (problem := _url_problem(public_url, query_allowed=True)):
        t.add("public_url", problem)
    webhook = WebhookConfig(
        listen=listen,
        public_url=public_url,
        max_body_bytes=t.integer("max_body_bytes", d["max_body_bytes"], low=1024),
        events=t.boolean("events", d["events"]),
        max_event_body_bytes=t.integer("max_event_body_bytes", d["max_event_body_bytes"], low=1024),
        hook_check_interval=_hook_check_interval(t, d["hook_check_interval"]),
    )
    t.finish()
    return webhook


MIN_HOOK_CHECK_INTERVAL = 1.0  # seconds


def _hook_check_interval(t: Table, default: float) -> float:
    """`hook_check_interval`: a duration of at least MIN_HOOK_CHECK_INTERVAL."""
    interval: float = t.duration("hook_check_interval", default)
    if interval < MIN_HOOK_CHECK_INTERVAL:
        t.add(
            "hook_check_interval",
            f"must be at least {MIN_HOOK_CHECK_INTERVAL:g} second, got {interval:g}",
        )
        return default
    return interval


def _read_metrics(t: Table) -> MetricsConfig:
    listen = t.text("listen", MetricsConfig().listen)
    if problem := _listen_problem(listen):
        t.add("listen", problem)
    t.finish()
    return MetricsConfig(listen=listen)


def _read_alerts(t: Table) -> AlertsConfig:
    """[alerts]: a webhook URL and/or a command. Problems never echo the URL (it holds a token)."""
    d = field_defaults(AlertsConfig)
    url = t.text("webhook_url", None)
    if url is not None and (problem := _webhook_url_problem(url)):
        t.add("webhook_url", problem)
    command = t.text("command", None)
    if command is not None and (problem := _command_problem(command)):
        t.add("command", problem)
    if "webhook_url" not in t.data and "command" not in t.data:
        t.problems.append(f"{t.path}: no channel: set webhook_url, command or both")
    alerts = AlertsConfig(
        webhook_url=Secret(url) if url else None,
        command=command or None,
        quarantine_alert=t.integer("quarantine_alert", d["quarantine_alert"], low=1),
        rejected_alert_fraction=t.number(
            "rejected_alert_fraction", d["rejected_alert_fraction"], above=0, high=1
        ),
        timeout=t.number("timeout", d["timeout"], above=0, high=300),
        attempts=t.integer("attempts", d["attempts"], low=1, high=20),
    )
    t.finish()
    return alerts


def _webhook_url_problem(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        host = None
    if host is None or parts.scheme not in ("http", "https"):
        return "expected an http:// or https:// URL with a host"
    if parts.fragment:
        return "must not contain a fragment"
    return ""


def _command_problem(command: str) -> str:
    try:
        words = shlex.split(command)
    except ValueError as exc:  # unbalanced quotes; the message names no part of the command
        return f"cannot be split into words like a shell would: {exc}"
    return "" if words else "is empty (omit it to send no alert to a command)"
