"""The state space of the decision: every combination of what a contact's local row, Selzy's
export, the ledger's history and the job's configuration can be (ISSUE: "a test enumerates
every cell"). Shared by the pure table test and the SQL agreement test.

local    absent, unchanged, changed, opted out, duplicate (winner and loser), invalid key
Selzy    absent; in the export with this list: none (the other channel's list only),
         subscribed, unsubscribed; unsubscribed from another list or not; every status of
         the match channel; no other address or every status of the other channel
history  never pushed, pushed, push in flight, rejected, quarantined; a suppression the
         ledger remembers or not
config   match x delete_mode x remote_only
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from syncd.reconcile.decision import EMAIL_STATUSES, PHONE_STATUSES, Facts, Membership

LocalCell = Literal["absent", "unchanged", "changed", "opted_out", "duplicate", "invalid_key"]
History = Literal["never", "pushed", "in_flight", "rejected", "quarantined"]
RemoteMembership = Literal["absent", "other_channel", "subscribed", "unsubscribed"]

LOCAL_CELLS: tuple[LocalCell, ...] = (
    "absent", "unchanged", "changed", "opted_out", "duplicate", "invalid_key",
)  # fmt: skip
HISTORIES: tuple[History, ...] = ("never", "pushed", "in_flight", "rejected", "quarantined")
MEMBERSHIPS: tuple[RemoteMembership, ...] = (
    "absent",
    "other_channel",
    "subscribed",
    "unsubscribed",
)
MATCHES = ("email", "phone")
DELETE_MODES = ("delete", "exclude", "off")
REMOTE_ONLY = ("keep", "delete", "import")


@dataclass(frozen=True)
class Cell:
    match: str
    delete_mode: str
    remote_only: str
    local: LocalCell
    membership: RemoteMembership
    status: str | None  # the match channel's status (None when not exported)
    other_status: str | None
    elsewhere: bool
    history: History
    remembered: bool  # the ledger remembers a suppression of this list (an earlier export)

    def facts(self) -> Facts:
        """The decision's input for this cell, as the plan SQL derives it from real rows (the
        winner of a duplicate group is the row the ledger's pushed values match)."""
        present = self.local in ("unchanged", "changed", "opted_out", "duplicate")
        membership: Membership = (
            self.membership if self.membership in ("subscribed", "unsubscribed") else "none"
        )
        pushed = self.history == "pushed"
        return Facts(
            local="present"
            if present
            else ("invalid_key" if self.local == "invalid_key" else "absent"),
            opted_out=self.local == "opted_out",
            changed=not (pushed and self.local in ("unchanged", "duplicate")),
            membership=membership,
            status=self.status,
            other_status=self.other_status,
            unsubscribed_elsewhere=self.elsewhere,
            suppressed_before=self.remembered,
            pushed=pushed,
            in_flight=self.history == "in_flight",
            quarantined=self.history == "quarantined" and present,
            delete_mode=self.delete_mode,  # type: ignore[arg-type]
            remote_only=self.remote_only,  # type: ignore[arg-type]
        )


def statuses(channel: str) -> tuple[str, ...]:
    return EMAIL_STATUSES if channel == "email" else PHONE_STATUSES


def remote_states(match: str) -> Iterator[tuple[RemoteMembership, str | None, str | None, bool]]:
    """(membership, status, other_status, unsubscribed elsewhere) that an export can show."""
    other = "phone" if match == "email" else "email"
    yield "absent", None, None, False
    for membership in MEMBERSHIPS[1:]:
        others: tuple[str | None, ...] = statuses(other)
        if membership != "other_channel":
            others = (None, *others)
        for status, other_status, elsewhere in itertools.product(
            statuses(match), others, (False, True)
        ):
            yield membership, status, other_status, elsewhere


def all_cells() -> Iterator[Cell]:
    for match, delete_mode, remote_only in itertools.product(MATCHES, DELETE_MODES, REMOTE_ONLY):
        for local, history, remembered in itertools.product(LOCAL_CELLS, HISTORIES, (False, True)):
            for membership, status, other_status, elsewhere in remote_states(match):
                yield Cell(
                    match, delete_mode, remote_only, local, membership, status, other_status,
                    elsewhere, history, remembered,
                )  # fmt: skip
