"""The vocabulary of a plan: every action a contact can get in a run, the order pushes happen in,
and the run counts each action feeds. Pure data; the decision itself is decision.py (and its SQL
form, sql/queries/decide.sql) and the shape of what is sent is batches.py.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

from syncd.db import COUNT_COLUMNS

Action: TypeAlias = Literal[
    "add",  # local contact not in the list: subscribe it (no status column)
    "update",  # in the list, mapped fields differ from what syncd last pushed
    "optout_status",  # opt-out column set, contact active/inactive: email_status=unsubscribed
    "optout_list",  # opt-out column set, any other mailable status: unsubscribe from the list
    "delete",  # pushed earlier, gone locally: importContacts delete=1
    "exclude",  # pushed earlier, gone locally: removed from the list only
    "import",  # remote-only contact inserted into the local table
    "keep",  # remote-only contact left alone (counted)
    "suppressed",  # an add withheld: unsubscribed/blocked before, or opted out locally
    "quarantined",  # rejected on N consecutive runs with these very values: not sent
    "duplicate",  # a local row shadowed by another with the same normalised key
    "invalid_key",  # a local row whose key is not a usable email/phone
    "none",  # nothing to do (only bookkeeping: the ledger, writeback)
]

PushAction: TypeAlias = Literal[
    "add", "update", "optout_status", "optout_list", "delete", "exclude"
]

# Consent first: opt-outs go out before anything else. Deletions (when the guards let them) go
# before adds, so that an address that moved to a new contact (an edited email on a row with a
# phone) is free when the new contact is added, instead of "owned by different subscribers".
PUSH_ORDER: tuple[PushAction, ...] = (
    "optout_status",
    "optout_list",
    "update",
    "exclude",
    "delete",
    "add",
)
DELETIONS: frozenset[str] = frozenset({"delete", "exclude"})

# syncd.runs count fed by each action that Selzy accepted.
ACCEPTED_COUNT: dict[PushAction, str] = {
    "add": "added",
    "update": "updated",
    "optout_status": "opted_out",
    "optout_list": "opted_out",
    "delete": "deleted",
    "exclude": "excluded",
}

# syncd.runs counts, in the order the summary shows them (the run table's count columns).
COUNT_NAMES: tuple[str, ...] = COUNT_COLUMNS

# Counts a plan already knows before anything is pushed (reported actions, not pushes).
PLANNED_COUNT: dict[str, str] = {
    "quarantined": "quarantined",
    "duplicate": "duplicates",
    "suppressed": "suppressed",
    "invalid_key": "rejected",
}

# The export asks for key and status fields only: exactly what the rules read.
EXPORT_FIELDS: tuple[str, ...] = (
    "email",
    "email_status",
    "email_availability",
    "email_list_ids",
    "email_unsubscribed_list_ids",
    "phone",
    "phone_status",
    "phone_list_ids",
    "phone_unsubscribed_list_ids",
)


def empty_counts() -> dict[str, int]:
    return dict.fromkeys(COUNT_NAMES, 0)
