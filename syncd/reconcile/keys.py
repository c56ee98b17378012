"""Canonical contact keys (PRODUCT.md "Diff"), in Python: what `syncd explain` looks up and what
the tests hold the SQL functions (syncd.email_key, syncd.phone_key in sql/) equal to. Pure.

- email: trimmed of every Unicode whitespace character at both ends (no-break and zero-width
  spaces included), then lower-cased;
- phone: `+` followed by its digits, whether or not the value starts with `+` ('' when it has
  no digit).
"""

from __future__ import annotations

import re

from syncd.config import MatchKey

# Unicode White_Space plus the zero-width characters people paste with addresses. The SQL
# functions trim exactly this set (a test compares them character by character).
TRIMMED = (
    " \t\n\r\x0b\x0c\x85\xa0\u1680\u180e"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u200b\u200c\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff"
)
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE = re.compile(r"\+[0-9]{7,15}")
_NOT_DIGIT = re.compile(r"[^0-9]")


def email_key(raw: str | None) -> str:
    return (raw or "").strip(TRIMMED).lower()


def phone_key(raw: str | None) -> str:
    digits = _NOT_DIGIT.sub("", raw or "")
    return "+" + digits if digits else ""


def canonical_key(channel: MatchKey, raw: str | None) -> str:
    return email_key(raw) if channel == "email" else phone_key(raw)


def key_valid(channel: MatchKey, key: str) -> bool:
    """Whether a canonical key is usable for `channel` (pg_temp.syncd_key_valid's test)."""
    pattern = _EMAIL if channel == "email" else _PHONE
    return pattern.fullmatch(key) is not None


def guess_channel(raw: str) -> MatchKey:
    """`explain`'s reading of what the operator typed: an address with `@` is an email."""
    return "email" if "@" in raw else "phone"
