"""User-field types (createField, §5.4 of selzy-api.md) and the check of a value against its type.

Pure functions. An empty value is always allowed (it clears the field); the callers decide what a
refused value means (a per-row log entry in importContacts, an error in subscribe).
"""

from __future__ import annotations

import re
from datetime import date

FIELD_TYPES = ("string", "text", "number", "date", "bool")

_NUMBER = re.compile(r"^[+-]?[0-9]+(\.[0-9]+)?$")
_DAY_FIRST = re.compile(r"^([0-9]{2})([.-])([0-9]{2})\2([0-9]{4})$")  # DD.MM.YYYY, DD-MM-YYYY
_YEAR_FIRST = re.compile(r"^([0-9]{4})([.-])([0-9]{2})\2([0-9]{2})$")  # YYYY.MM.DD, YYYY-MM-DD
_BOOLS = frozenset({"1", "0", "yes", "no"})


def _is_date(text: str) -> bool:
    if match := _DAY_FIRST.match(text):
        day, month, year = match.group(1), match.group(3), match.group(4)
    elif match := _YEAR_FIRST.match(text):
        year, month, day = match.group(1), match.group(3), match.group(4)
    else:
        return False
    try:
        date(int(year), int(month), int(day))
    except ValueError:  # 31.02.2024 has the right shape but is no day
        return False
    return True


def value_problem(field_type: str, value: str) -> str | None:
    """Why `value` cannot be stored in a field of `field_type`, or None when it can."""
    text = value.strip()
    if text == "" or field_type in ("string", "text"):
        return None
    if field_type == "number" and not _NUMBER.match(text):
        return "an integer or a decimal number is expected"
    if field_type == "date" and not _is_date(text):
        return "a date DD.MM.YYYY, DD-MM-YYYY, YYYY.MM.DD or YYYY-MM-DD is expected"
    if field_type == "bool" and text.lower() not in _BOOLS:
        return "1, 0, yes or no is expected"
    return None
