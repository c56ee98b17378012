"""The decision: given what syncd knows of one contact (its local row, Selzy's last export, the
ledger's history) and the job's configuration, what happens to it in this run, and why.

This is the only place the rules of PRODUCT.md "Diff", "Consent" and "Safety" (per contact)
live. `decide` is pure and total over `Facts`; sql/queries/decide.sql is the same table as one
SQL expression for a million rows at once, and tests/unit/reconcile/test_decision_table.py walks
every cell of the state space through both (with the consent rules asserted as properties).

Every outcome is a `Reason`: a stable code `action:why` whose action part is what the run does.
The codes and their sentences are the vocabulary of the run log, `--dry-run` and `explain`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

from syncd.config import DeleteMode, RemoteOnly

LocalState: TypeAlias = Literal[
    "absent",  # no local row has this key
    "present",  # one local row (or the winner of a duplicate group) has it
    "duplicate_loser",  # a local row shadowed by another with the same key (reported)
    "invalid_key",  # a local row whose key is not a usable email/phone (reported)
]
Membership: TypeAlias = Literal[
    "none",  # not in the job's list on the match channel (or not in the export at all)
    "subscribed",  # in the list
    "unsubscribed",  # in the list, unsubscribed from it
]

# Statuses a channel can have (selzy-api.md §2.2, §2.3).
EMAIL_STATUSES = ("new", "active", "inactive", "unsubscribed", "blocked", "invited",
                  "activation_requested")  # fmt: skip
PHONE_STATUSES = ("new", "active", "inactive", "unsubscribed", "blocked")
# Account-level statuses that are a suppression: only the person can undo them.
SUPPRESSING_STATUSES = frozenset({"unsubscribed", "blocked"})
# Statuses Selzy lets importContacts change (to `unsubscribed`, for an opt-out).
CHANGEABLE_STATUSES = frozenset({"active", "inactive"})


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the decision reads about one contact of one job, as plain values."""

    local: LocalState
    opted_out: bool = False  # the local opt-out column is true (for a present contact)
    changed: bool = False  # the local values differ from what Selzy last accepted from syncd
    membership: Membership = "none"
    status: str | None = None  # the match channel's status in the export (None: not exported)
    other_status: str | None = None  # the other channel's status (None: no such address)
    unsubscribed_elsewhere: bool = False  # unsubscribed from another list, on either channel
    suppressed_before: bool = False  # the ledger remembers a suppression of this list
    pushed: bool = False  # Selzy accepted syncd's values for this contact
    in_flight: bool = False  # a push whose answer was never recorded: it may have been applied
    quarantined: bool = False  # these very values were rejected `quarantine_after` runs running
    delete_mode: DeleteMode = "delete"
    remote_only: RemoteOnly = "keep"

    @property
    def in_list(self) -> bool:
        return self.membership != "none"

    @property
    def ours(self) -> bool:
        """syncd put (or may have put) this contact in Selzy."""
        return self.pushed or self.in_flight

    @property
    def suppression(self) -> bool:
        """A suppression record on any channel or list: never erased with `delete=1`."""
        return (
            self.status in SUPPRESSING_STATUSES
            or self.other_status in SUPPRESSING_STATUSES
            or self.membership == "unsubscribed"
            or self.unsubscribed_elsewhere
            or self.suppressed_before
        )

    @property
    def mailable(self) -> bool:
        """Could receive this list's mail now or later without the person acting again."""
        return self.membership == "subscribed" and self.status not in SUPPRESSING_STATUSES


@dataclass(frozen=True, slots=True)
class Reason:
    code: str  # `action:why`, stable
    sentence: str

    @property
    def action(self) -> str:
        return self.code.split(":", 1)[0]


def _r(code: str, sentence: str) -> Reason:
    return Reason(code, sentence)


# The whole vocabulary, in one place (explain and the docs list it; the SQL returns the codes).
REASONS: dict[str, Reason] = {
    r.code: r
    for r in (
        _r("add:new", "in the local table and not in the list: subscribed to it"),
        _r("update:changed", "its mapped values differ from what Selzy last accepted"),
        _r("update:adopt", "already in the list but never pushed by syncd: its values are sent"),
        _r("update:unconfirmed", "a push of it may or may not have been applied: sent again"),
        _r("optout_status:opted_out",
           "opted out locally while mailable (active/inactive): email_status set unsubscribed"),
        _r("optout_list:opted_out",
           "opted out locally while mailable: unsubscribed from the list"),
        _r("delete:gone_locally", "pushed by syncd, gone from the local table: deleted"),
        _r("delete:remote_only", "in the list, never pushed, remote_only = delete: deleted"),
        _r("exclude:gone_locally",
           "pushed by syncd, gone from the local table: excluded (delete_mode = exclude)"),
        _r("exclude:suppressed",
           "gone from the local table but holds a suppression: excluded, never deleted"),
        _r("exclude:remote_only", "in the list, never pushed, remote_only = delete: excluded"),
        _r("keep:remote_only", "in the list, never pushed, absent locally: kept (remote_only)"),
        _r("keep:delete_off", "gone from the local table; delete_mode = off removes nobody"),
        _r("import:remote_only",
           "in the list, never pushed, absent locally: inserted (remote_only = import)"),
        _r("suppressed:status",
           "unsubscribed or blocked in Selzy: never added to the list again"),
        _r("suppressed:remembered",
           "was unsubscribed or blocked before: never added to the list again"),
        _r("suppressed:opted_out", "opted out locally: not added to the list"),
        _r("quarantined:rejected", "these values were rejected on too many runs: not sent"),
        _r("duplicate:shadowed", "another local row has the same key and is the one synced"),
        _r("invalid_key:unusable", "its key is not a usable email address or phone number"),
        _r("none:in_step", "nothing to do: Selzy holds syncd's current values"),
        _r("none:unmailable", "opted out locally and already unmailable in the list"),
        _r("none:not_ours", "not in the local table and not in the list"),
    )
}  # fmt: skip

# The actions a run can take, and which of them are importContacts pushes.
ACTIONS = tuple(dict.fromkeys(r.action for r in REASONS.values()))


def decide(f: Facts) -> Reason:
    """What happens to the contact described by `f`. Total: every combination has an answer."""
    if f.local == "duplicate_loser":
        return REASONS["duplicate:shadowed"]
    if f.local == "invalid_key":
        return REASONS["invalid_key:unusable"]
    if f.local == "present":
        return _decide_local(f)
    return _decide_absent(f)


def _decide_opt_out(f: Facts) -> Reason:
    # Consent: an opt-out ends unmailable whatever else is true (never quarantined, never
    # waiting for profile data, which opt-out rows do not carry).
    if f.mailable:
        if f.status in CHANGEABLE_STATUSES:
            return REASONS["optout_status:opted_out"]
        return REASONS["optout_list:opted_out"]
    if not f.in_list:
        return REASONS["suppressed:opted_out"]
    return REASONS["none:unmailable"]


def _decide_local(f: Facts) -> Reason:
    if f.opted_out:
        return _decide_opt_out(f)
    if not f.in_list:
        if f.status in SUPPRESSING_STATUSES:
            return REASONS["suppressed:status"]
        if f.suppressed_before:
            return REASONS["suppressed:remembered"]
        if f.quarantined:
            return REASONS["quarantined:rejected"]
        return REASONS["add:new"]
    if f.quarantined:
        return REASONS["quarantined:rejected"]
    if f.in_flight:
        return REASONS["update:unconfirmed"]
    if not f.pushed:
        return REASONS["update:adopt"]
    if f.changed:
        return REASONS["update:changed"]
    return REASONS["none:in_step"]


def _decide_absent(f: Facts) -> Reason:
    if not f.in_list:
        return REASONS["none:not_ours"]
    if f.ours:
        if f.delete_mode == "off":
            return REASONS["keep:delete_off"]
        if f.suppression:
            return REASONS["exclude:suppressed"]
        if f.delete_mode == "exclude":
            return REASONS["exclude:gone_locally"]
        return REASONS["delete:gone_locally"]
    if f.remote_only == "keep":
        return REASONS["keep:remote_only"]
    if f.remote_only == "import":
        return REASONS["import:remote_only"]
    if f.delete_mode == "off":  # a configuration error too (config/jobs.py); never a deletion
        return REASONS["keep:delete_off"]
    if f.suppression or f.delete_mode == "exclude":
        return REASONS["exclude:remote_only"]
    return REASONS["delete:remote_only"]
