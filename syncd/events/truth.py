"""What getContact's answer says of one contact for one job's list (selzy-api.md §6.1): the
email-channel view the ledger keeps, in the shapes an export gives (comma-separated list ids),
so that the next run sees no difference where there is none. Pure; the event worker calls it.

A per-list status nobody documented is not guessed at: the contact is left to the export.
"""

from __future__ import annotations

from dataclasses import dataclass

from syncd.api import ContactInfo
from syncd.db.events import ContactView

MEMBER_STATUSES = frozenset({"active", "new"})  # getContact lists[].status of a subscribed member
UNSUBSCRIBED = "unsubscribed"


@dataclass(frozen=True, slots=True)
class Unreadable:
    """getContact answered with something this code cannot map; why, for the log."""

    reason: str


def view_of(contact: ContactInfo, *, key: str, list_id: int) -> ContactView | Unreadable:
    """The ledger's view of `contact` for the job whose list is `list_id`."""
    subscribed: list[int] = []
    unsubscribed: list[int] = []
    for membership in contact.lists:
        if membership.status == UNSUBSCRIBED:
            unsubscribed.append(membership.id)
        elif membership.status in MEMBER_STATUSES:
            subscribed.append(membership.id)
        else:
            return Unreadable(f"list_status:{membership.status}")
    if list_id in unsubscribed:
        list_status = "unsubscribed"
    elif list_id in subscribed:
        list_status = "subscribed"
    else:
        list_status = "absent"
    return ContactView(
        key=key,
        email=contact.email,
        email_status=contact.status,
        email_availability=contact.availability,
        email_list_ids=_ids(subscribed),
        email_unsubscribed_list_ids=_ids(unsubscribed),
        list_status=list_status,
    )


def _ids(ids: list[int]) -> str | None:
    """`1,5` in ascending order, as the export writes them; None for none (an empty cell)."""
    return ",".join(str(i) for i in sorted(set(ids))) or None
