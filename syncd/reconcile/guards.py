"""The mass-deletion guards (PRODUCT.md "Safety"): a pure decision over the plan's numbers.

Stateless on purpose: every run re-evaluates, so a blocked job keeps blocking until the cause
goes away or an operator passes --allow-mass-delete for one run. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class GuardVerdict:
    """`blocked`: send no delete/exclude batch. `reason` names every tripped guard with its
    numbers (also set when the operator overrode it, for the log)."""

    blocked: bool
    reason: str | None
    overridden: bool = False


def evaluate_guards(
    *,
    deletions: int,
    remote_count: int,
    local_valid: int,
    max_deletes: int,
    max_delete_fraction: float,
    allow_mass_delete: bool,
) -> GuardVerdict:
    """Decide whether this run's deletions (delete + exclude actions) may go out.

    - more than `max_deletes` deletions;
    - more than `max_delete_fraction` of the list (`remote_count` members) deletions;
    - an empty local source (no valid key) while the list is not empty.
    """
    reasons: list[str] = []
    if deletions > max_deletes:
        reasons.append(f"{deletions} deletions exceed max_deletes={max_deletes}")
    if remote_count > 0 and deletions > max_delete_fraction * remote_count:
        reasons.append(
            f"{deletions} deletions exceed max_delete_fraction={max_delete_fraction:g} "
            f"of {remote_count} contacts in the list"
        )
    if local_valid == 0 and remote_count > 0:
        reasons.append(
            f"the local source has no contact with a valid key "
            f"while the list has {remote_count} contacts"
        )
    if not reasons:
        return GuardVerdict(blocked=False, reason=None)
    reason = "; ".join(reasons)
    if allow_mass_delete:
        return GuardVerdict(blocked=False, reason=reason, overridden=True)
    return GuardVerdict(blocked=True, reason=reason)
