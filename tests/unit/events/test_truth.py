"""getContact's answer -> the ledger's email-channel view for one job's list, in an export's
shapes (so that the next run sees no difference where there is none)."""

from __future__ import annotations

import pytest

from syncd.api import ContactInfo, ContactList
from syncd.db.events import ContactView
from syncd.events.truth import Unreadable, view_of

LIST = 7


def contact(*lists: tuple[int, str], status: str = "active") -> ContactInfo:
    return ContactInfo(
        email="Ann@Example.com",
        status=status,
        availability="available",
        lists=tuple(ContactList(i, s) for i, s in lists),
        fields={},
    )


@pytest.mark.parametrize(
    ("lists", "list_status", "subscribed", "unsubscribed"),
    [
        (((LIST, "active"),), "subscribed", "7", None),
        (((LIST, "new"), (3, "active")), "subscribed", "3,7", None),
        (((LIST, "unsubscribed"), (3, "active")), "unsubscribed", "3", "7"),
        (((9, "unsubscribed"), (3, "active")), "absent", "3", "9"),
        ((), "absent", None, None),
    ],
)
def test_the_job_list_status_and_the_list_ids(
    lists: tuple[tuple[int, str], ...],
    list_status: str,
    subscribed: str | None,
    unsubscribed: str | None,
) -> None:
    assert view_of(contact(*lists), key="ann@example.com", list_id=LIST) == ContactView(
        key="ann@example.com",
        email="Ann@Example.com",
        email_status="active",
        email_availability="available",
        email_list_ids=subscribed,
        email_unsubscribed_list_ids=unsubscribed,
        list_status=list_status,
    )


def test_the_address_status_is_kept_apart_from_the_list_status() -> None:
    view = view_of(contact((LIST, "active"), status="unsubscribed"), key="k", list_id=LIST)
    assert isinstance(view, ContactView)
    assert (view.email_status, view.list_status) == ("unsubscribed", "subscribed")


def test_a_per_list_status_nobody_documented_is_not_guessed() -> None:
    assert view_of(contact((LIST, "excluded")), key="k", list_id=LIST) == Unreadable(
        "list_status:excluded"
    )
