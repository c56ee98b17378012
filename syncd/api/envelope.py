"""One HTTP answer (status + body) -> the Selzy `result`, or the error it stands for.

Pure: decides, never does I/O. The rules (selzy-api.md §1.4, §1.5, §8, §10.13):

    HTTP 5xx                               -> TransportError(status)       retried
    HTTP 4xx/3xx with a JSON error envelope -> that envelope's SelzyError  (per its code)
    HTTP 429 without one                   -> RateLimited(code="http_429") retried, long back-off
    other non-2xx                          -> ProtocolError                not retried
    2xx, body not a JSON object            -> ProtocolError                not retried (see below)
    2xx, {"error": ..., "code": ...}       -> errors.selzy_error(message, code)
    2xx, {"result": ...}                   -> Envelope(result, warnings)

A 2xx answer that is not JSON is not retried: it means something between us and Selzy (a proxy,
a captive portal) answers instead of Selzy, which repeating the call will not fix, and for
importContacts the call may well have been applied. A body cut short by a dropped connection is a
TransportError raised by the transport before this module sees it, and that one is retried.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from syncd.api.messages import scrub
from syncd.errors import ProtocolError, RateLimited, TransportError, selzy_error

SNIPPET_CHARS = 80  # how much of an unexpected body goes into a ProtocolError message


@dataclass(frozen=True, slots=True)
class Envelope:
    """A successful answer: the method-specific `result` and Selzy's `warnings` texts."""

    result: object
    warnings: tuple[str, ...] = ()


def interpret(status: int, body: bytes, *, method: str, secrets: Sequence[str] = ()) -> Envelope:
    """The Envelope of a successful answer; raises the ApiError the answer stands for otherwise."""
    if status >= 500:
        raise TransportError(f"{method}: HTTP {status} from Selzy", method=method, status=status)
    document = _json_or_none(body)
    if not 200 <= status < 300:
        if isinstance(document, dict) and _has_error(document):
            raise _error_from(document, method=method, secrets=secrets)
        if status == 429:
            raise RateLimited(f"{method}: HTTP 429 from Selzy", code="http_429", method=method)
        raise ProtocolError(
            f"{method}: HTTP {status} without a Selzy error envelope ({_describe(body, secrets)})",
            method=method,
        )
    if not isinstance(document, dict):
        what = "not JSON" if document is None else "JSON but not an object"
        raise ProtocolError(
            f"{method}: answer is {what} ({_describe(body, secrets)})", method=method
        )
    if _has_error(document):
        raise _error_from(document, method=method, secrets=secrets)
    if "result" not in document:
        raise ProtocolError(f"{method}: answer has neither result nor error", method=method)
    return Envelope(document["result"], _warnings(document.get("warnings")))


def _json_or_none(body: bytes) -> object:
    try:
        return json.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        return None


def _has_error(document: dict[str, object]) -> bool:
    return document.get("error") not in (None, "")


def _error_from(document: dict[str, object], *, method: str, secrets: Sequence[str]) -> Exception:
    code = document.get("code")
    if not isinstance(code, str) or not code:
        code = "unspecified"  # §8.1: untyped errors come with `unspecified` or no code at all
    message = scrub(f"{method}: {document['error']}", secrets)
    return selzy_error(message, code, method=method)


def _warnings(value: object) -> tuple[str, ...]:
    """Selzy's `warnings` texts; informational, so a malformed list is tolerated, not an error."""
    if not isinstance(value, list):
        return ()
    texts = (item.get("warning", item) if isinstance(item, dict) else item for item in value)
    return tuple(str(text) for text in texts)


def _describe(body: bytes, secrets: Sequence[str]) -> str:
    # Mask before cutting, so that a secret straddling the cut cannot leak in part.
    head = body[:4096].decode("utf-8", errors="replace")
    snippet = scrub(head, secrets, limit=SNIPPET_CHARS)
    return f"{len(body)} bytes, starts {snippet!r}"
