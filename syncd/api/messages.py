"""Makes text safe to put in an exception message or a log value: secrets masked, query strings
and credentials stripped from URLs, length bounded. Pure; the client passes its secrets in.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

MAX_MESSAGE_CHARS = 300  # Selzy messages are short; anything longer is a page of HTML
MASK = "***"


def scrub(text: str, secrets: Iterable[str] = (), *, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text` with every secret masked, cut to `limit` characters."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def safe_url(url: str) -> str:
    """`url` without its query string, fragment and user:password — fit for a message or a log."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparseable url>"
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
