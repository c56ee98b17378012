"""Logging setup and secret redaction. Owns the structlog configuration (JSON lines, or a console
renderer on a terminal), the routing of stdlib loggers (aiohttp, asyncpg, apscheduler) through the
same processors, and the redaction every line passes through last. Only cli.py calls
`configure_logging`; everyone else just does `structlog.get_logger(__name__)`.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Mapping
from typing import Any, TextIO
from urllib.parse import unquote

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "***"
# Shorter registered values are ignored: replacing every "ab" in every line would destroy the
# log and hide nothing (pattern-based redaction below still covers DSN passwords of any length).
MIN_SECRET_LENGTH = 4
# Keys whose value is always replaced, whatever it is.
SENSITIVE_KEYS = frozenset(
    {"api_key", "password", "passwd", "dsn", "secret", "token", "authorization"}
)

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_secret_pattern: re.Pattern[str] | None = None

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # api_key=KEY in a URL, a query string or a form body; "api_key": "KEY" in JSON; api_key%3DKEY
    (
        re.compile(r"""(?i)(api_key(?:%3D|\s*=\s*["']?|["']\s*:\s*["']))[^&\s"',;}<>)\]]+"""),
        r"\g<1>" + REDACTED,
    ),
    # scheme://user:PASSWORD@host (postgresql://, and any other URL with credentials)
    (
        re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/?#@\s]*:)[^@\s/]*(@)"),
        r"\g<1>" + REDACTED + r"\g<2>",
    ),
    # libpq keyword DSN: password=secret / password='se cret' ; also PGPASSWORD=...
    (
        re.compile(
            r"""(?i)\b((?:pg)?password\s*=\s*)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s&,;]+)"""
        ),
        r"\g<1>" + REDACTED,
    ),
)
# postgresql://user:pass@host -> "pass"; user:pass as keyword DSN handled by the pattern above
_DSN_URL = re.compile(r"(?i)^postgres(?:ql)?://")
_KEYWORD_DSN = re.compile(r"(?i)\b(?:host|hostaddr|port|dbname|user|password|sslmode)\s*=")
_DSN_PASSWORD = re.compile(r"(?i)^[a-z][a-z0-9+.-]*://[^:/?#@\s]*:([^@\s/]+)@")
_KEYWORD_PASSWORD = re.compile(r"""(?i)\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|[^\s]+)""")

_handler: logging.Handler | None = None


def register_secret(value: str) -> None:
    """Remove `value` from every future log line. For a DSN only its password is a secret: the
    host and database stay readable (and a DSN without a password registers nothing)."""
    global _secret_pattern
    candidates = {value}
    if _DSN_URL.match(value) or _KEYWORD_DSN.search(value):
        candidates = set()
        for pattern in (_DSN_PASSWORD, _KEYWORD_PASSWORD):
            if match := pattern.search(value):
                password = match.group(1).strip("'")
                candidates.update((password, unquote(password)))  # as written and decoded
    with _secrets_lock:
        _secrets.update(c for c in candidates if len(c) >= MIN_SECRET_LENGTH)
        ordered = sorted(_secrets, key=len, reverse=True)  # longest first: no partial leftovers
        _secret_pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None


def redact(text: str) -> str:
    """`text` with every registered secret, `api_key=...` value and DSN password replaced."""
    pattern = _secret_pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    for regex, replacement in _PATTERNS:
        text = regex.sub(replacement, text)
    return text


def redact_value(value: Any) -> Any:
    """Walk strings, mappings and sequences; anything else is rendered to text and redacted."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {
            k: REDACTED
            if isinstance(k, str) and k.lower() in SENSITIVE_KEYS and value[k] is not None
            else redact_value(value[k])
            for k in value
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v) for v in value]
    if isinstance(value, BaseException):
        return redact(f"{type(value).__name__}: {value}")
    return redact(str(value))


def redact_event(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: the last word before rendering, for every line from every logger."""
    return {
        key: REDACTED
        if key.lower() in SENSITIVE_KEYS and value is not None
        else redact_value(value)
        for key, value in event_dict.items()
    }


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        structlog.processors.StackInfoRenderer(),
    ]


def _order_keys(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """timestamp, level, event, logger first: easier to read in `journalctl -o cat`."""
    head = ("timestamp", "level", "event", "logger")
    ordered = {k: event_dict[k] for k in head if k in event_dict}
    ordered.update((k, v) for k, v in event_dict.items() if k not in ordered)
    return ordered


def configure_logging(
    level: str = "info", fmt: str = "auto", *, stream: TextIO | None = None
) -> None:
    """Send structlog and stdlib logging to `stream` (default stdout), redacted, one format.

    fmt: "json" (one object per line), "console" (readable), or "auto" (console when the stream
    is a terminal, else JSON). Calling it again replaces the previous setup.
    """
    global _handler
    stream = stream if stream is not None else sys.stdout
    if fmt == "auto":
        fmt = "console" if _isatty(stream) else "json"
    renderer: Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(default=str)
    elif fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=_isatty(stream))
    else:
        raise ValueError(f"unknown log format {fmt!r}")

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,  # the traceback becomes text, then is redacted
            redact_event,
            _order_keys,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    root.setLevel(level.upper())
    _handler = handler

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # not cached: loggers made at import time must follow a later reconfiguration
        cache_logger_on_first_use=False,
    )


def reset_logging() -> None:
    """Undo `configure_logging` (for tests): structlog defaults, our handler removed."""
    global _handler
    if _handler is not None:
        logging.getLogger().removeHandler(_handler)
        _handler = None
    logging.getLogger().setLevel(logging.WARNING)  # the stdlib default
    structlog.reset_defaults()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
