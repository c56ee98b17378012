"""Reading one TOML table: typed getters that record each problem under its key path and carry on
with a default, so a single pass reports everything. Knows nothing of syncd's sections.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")  # TOML keys that need no quotes

REQUIRED: Any = object()  # the default that makes a key mandatory
T = TypeVar("T")


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


class Table:
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
            if default is REQUIRED:
                self.add(key, "missing (required)")
                return None
            return default
        value = self.data[key]
        if not ok(value):
            self.add(key, f"expected {expected}, got {_type_name(value)}")
            return None if default is REQUIRED else default
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

    def duration(self, key: str, default: T, *, above: float = 0.0) -> float | T:
        """Seconds, given as a number or as "30s", "15m", "24h", "7d"."""

        def ok(v: object) -> bool:
            if isinstance(v, bool):
                return False
            return isinstance(v, int | float) or (
                isinstance(v, str) and _DURATION.fullmatch(v.strip()) is not None
            )

        value = self._get(key, 'a duration (seconds, or "30s", "15m", "24h", "7d")', ok, default)
        if value is None or value is default:
            return cast("float | T", value)
        if isinstance(value, str):
            match = _DURATION.fullmatch(value.strip())
            assert match is not None  # noqa: S101 - ok() matched it
            value = float(match[1]) * _UNITS[match[2].lower()]
        if value <= above:
            self.add(key, f"must be longer than {above:g} seconds, got {value:g}")
            return default
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        return cast(bool, self._get(key, "a boolean", lambda v: isinstance(v, bool), default))

    def table(self, key: str, *, required: bool = False) -> Table:
        data = self._get(
            key, "a table", lambda v: isinstance(v, dict), REQUIRED if required else {}
        )
        return Table(self.problems, data or {}, self.key_path(key))

    def finish(self) -> None:
        for key in self.data:
            if key not in self.known:
                close = difflib.get_close_matches(key, self.known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.add(key, f"unknown key{hint}")


_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([smhdSMHD])")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _in_range(table: Table, key: str, value: float, low: float | None, high: float | None) -> bool:
    if (low is not None and value < low) or (high is not None and value > high):
        if high is None:
            table.add(key, f"must be at least {low:g}, got {value:g}")
        elif low is None:
            table.add(key, f"must be at most {high:g}, got {value:g}")
        else:
            table.add(key, f"must be between {low:g} and {high:g}, got {value:g}")
        return False
    return True


def field_defaults(cls: type) -> dict[str, Any]:
    """The default of every field of dataclass `cls` that has one: what a getter falls back to."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out
