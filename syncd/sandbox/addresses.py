"""Address rules: email/phone normalisation, syntax checks and the role/spam-trap filter.

Pure functions; the import and subscribe methods decide what to do with the verdicts.
"""

from __future__ import annotations

import re

EMAIL_STATUSES = (
    "new",
    "invited",
    "active",
    "inactive",
    "unsubscribed",
    "blocked",
    "activation_requested",
)
PHONE_STATUSES = ("new", "active", "inactive", "unsubscribed", "blocked")
IMPORTABLE_STATUSES = ("new", "active", "inactive", "unsubscribed")
CHANGEABLE_FROM = ("active", "inactive")  # an existing address's status changes only from these
AVAILABILITIES = (
    "available",
    "unreachable",
    "temp_unreachable",
    "mailbox_full",
    "spam_rejected",
    "spam_folder",
)

ROLE_LOCAL_PARTS = frozenset(
    {
        "info",
        "sales",
        "no-reply",
        "noreply",
        "all",
        "admin",
        "postmaster",
        "abuse",
        "webmaster",
        "support",
    }
)
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_PHONE_JUNK = re.compile(r"[\s\-().]")


def normalize_email(value: str) -> str:
    return value.strip().lower()


def email_problem(email: str) -> tuple[str, str] | None:
    """(code, message) when the address must not be imported, else None."""
    local, _, domain = email.partition("@")
    if (
        len(email) > 254
        or not _EMAIL.match(email)
        or len(local) > 64
        or local.startswith(".")
        or local.endswith(".")
        or ".." in email
    ):
        return "invalid_email", f'Invalid email address "{email}"'
    if local.split("+", 1)[0] in ROLE_LOCAL_PARTS:
        return "role_address", f'Role-based address "{email}" is not imported'
    if (
        domain.endswith(".spamtrap")
        or domain == "spamtrap.example"
        or domain.endswith(".spamtrap.example")
    ):
        return "role_address", f'Spam-trap address "{email}" is not imported'
    return None


def normalize_phone(value: str) -> str | None:
    """`+` and digits (7-15 of them), or None when it is not a phone number."""
    text = _PHONE_JUNK.sub("", value.strip())
    digits = text[1:] if text.startswith("+") else text
    if not digits.isdigit() or not 7 <= len(digits) <= 15 or not digits.isascii():
        return None
    return "+" + digits
