"""Injected faults: what the admin API asked for, matched to calls in order and consumed.

A fault is matched by method name (`"*"` any API method, `"download"` file downloads, `"hook"`
webhook POSTs); `times` counts down, -1 means until cleared. This module only keeps the book;
app.py, files.py and delivery.py act.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

API_KINDS = frozenset(
    {
        "error",
        "http_status",
        "latency",
        "hang",
        "drop",
        "drop_after",  # the call is applied, then the connection closes: the answer is lost
        "bad_json",
        "export_never_finishes",
    }
)
DOWNLOAD_KINDS = frozenset(
    {
        "error",
        "http_status",
        "latency",
        "hang",
        "drop",
        "bad_json",
        "truncate",
        "garbage",
        "bad_encoding",
    }
)
HOOK = "hook"  # the method name of webhook faults
HOOK_KINDS = frozenset(
    {
        "duplicate",  # each POST is sent twice
        "out_of_order",  # one dispatch round goes out in reverse order (bodies and events)
        "slow",  # waits `delay` seconds before a POST
    }
)
SPECIAL_METHODS = ("download", HOOK)  # never matched by "*"
DEFAULT_HANG = 3600.0
DEFAULT_SLOW = 1.0


@dataclass
class Fault:
    method: str
    kind: str
    code: str = "retry_later"
    message: str = "Temporary failure, please retry later"
    status: int = 503
    delay: float = 0.0
    times: int = 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_fault(spec: dict[str, Any]) -> Fault:
    """Validate an admin request body; raises ValueError naming the problem."""
    method = spec.get("method", "*")
    kind = spec.get("kind")
    if not isinstance(method, str) or not method:
        raise ValueError("method must be a non-empty string")
    known = {"download": DOWNLOAD_KINDS, HOOK: HOOK_KINDS}.get(method, API_KINDS)
    if kind not in known:
        raise ValueError(f"kind must be one of {sorted(known)} for method {method!r}")
    fault = Fault(method=method, kind=kind)
    for key in ("code", "message"):
        if key in spec:
            if not isinstance(spec[key], str):
                raise ValueError(f"{key} must be a string")
            setattr(fault, key, spec[key])
    for key, typ in (("status", int), ("delay", float), ("times", int)):
        if key in spec:
            value = spec[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{key} must be a number")
            setattr(fault, key, typ(value))
    if kind == "hang" and "delay" not in spec:
        fault.delay = DEFAULT_HANG
    if kind == "slow" and "delay" not in spec:
        fault.delay = DEFAULT_SLOW
    if fault.times == 0 or fault.times < -1:
        raise ValueError("times must be positive or -1")
    return fault


class FaultBook:
    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        self._faults.append(fault)

    def clear(self) -> None:
        self._faults.clear()

    def listing(self) -> list[dict[str, Any]]:
        return [f.as_dict() for f in self._faults]

    def take(self, method: str, kind: str | None = None) -> Fault | None:
        """The first fault for `method` (or `*` for API methods), of `kind` if given, consumed
        once."""
        for fault in self._faults:
            if fault.method == method or (fault.method == "*" and method not in SPECIAL_METHODS):
                if fault.kind == "export_never_finishes" and method != "async/exportContacts":
                    continue
                if kind is not None and fault.kind != kind:
                    continue
                if fault.times > 0:
                    fault.times -= 1
                    if fault.times == 0:
                        self._faults.remove(fault)
                return fault
        return None
