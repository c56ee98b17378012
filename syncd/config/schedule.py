"""Job schedules: `every N s|m|h` or a 5-field cron expression, checked for syntax only.

What a cron expression means (impossible dates, day-of-week numbering) is the scheduler's business.
"""

from __future__ import annotations

import re

from syncd.config.model import Schedule

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
