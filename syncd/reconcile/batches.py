"""What an importContacts row may carry, per action: the one place the consent rules of
PRODUCT.md are turned into columns. Pure; no I/O.

- add:           key + profile fields + `<channel>_list_ids` = the list        (no status column)
- update:        key + profile fields                                          (no status, no list)
- optout_status: key + `<channel>_status` = "unsubscribed"                  (no profile data)
- optout_list:   key + `<channel>_unsubscribed_list_ids` = the list         (no profile data)
- delete:        key + `delete` = "1"
- exclude:       key + `<channel>_excluded_list_ids` = the list

`check_batch` re-checks every row against these rules right before it is sent, so no later edit
can slip a status or a list column into the wrong action unnoticed. Opt-out rows carry the key
and the unsubscribe only: an opt-out never depends on profile data Selzy might refuse.
"""

from __future__ import annotations

from collections.abc import Sequence

from syncd.config import RESERVED_FIELDS, JobConfig, MatchKey
from syncd.errors import ConfigError, ConsentViolation
from syncd.reconcile.actions import PushAction

# Selzy system columns that steer subscription or existence: only syncd's rules may send them.
# One list for the config loader and this bug guard (a JobConfig may also be built in code).
MANAGED_FIELDS: frozenset[str] = RESERVED_FIELDS

UNSUBSCRIBED = "unsubscribed"
OPT_OUTS = frozenset({"optout_status", "optout_list"})


def profile_fields(job: JobConfig) -> tuple[str, ...]:
    """The Selzy field names a row carries besides the key, in config order.

    The local source's `vals` array is built in exactly this order (syncd/db/local.py).
    """
    return tuple(name for name in job.fields if name != job.match)


def mapping_problems(job: JobConfig) -> list[str]:
    """Configuration problems of the field mapping, each naming its key (empty: fine)."""
    problems: list[str] = []
    prefix = f"jobs.{job.name}"
    if job.match not in job.fields:
        problems.append(
            f"{prefix}.fields: the match key {job.match!r} must be mapped to a local column"
        )
    for name in job.fields:
        if name in MANAGED_FIELDS:
            problems.append(
                f"{prefix}.fields.{name}: a Selzy system field that syncd manages "
                "(subscription state belongs to Selzy) cannot be mapped"
            )
    if job.remote_only == "delete" and job.delete_mode == "off":
        problems.append(
            f'{prefix}.remote_only: "delete" cannot be honoured with delete_mode = "off" '
            '(which removes nobody from the list); use remote_only = "keep" or another '
            "delete_mode"
        )
    mapped_columns = set(job.fields.values())
    for key, column in job.writeback.items():
        if column in mapped_columns:
            problems.append(
                f"{prefix}.writeback.{key}: column {column!r} is also a mapped field; "
                "writeback columns must not be pushed"
            )
        if column == job.opt_out_column:
            problems.append(f"{prefix}.writeback.{key}: column {column!r} is the opt-out column")
    if job.opt_out_column is not None and job.opt_out_column in mapped_columns:
        problems.append(
            f"{prefix}.opt_out_column: column {job.opt_out_column!r} is also a mapped field"
        )
    return problems


def check_mapping(job: JobConfig) -> None:
    problems = mapping_problems(job)
    if problems:
        raise ConfigError(problems)


def field_names(action: PushAction, *, match: MatchKey, profile: Sequence[str]) -> tuple[str, ...]:
    """The `field_names` of an importContacts call carrying rows of `action`."""
    if action == "add":
        return (match, *profile, f"{match}_list_ids")
    if action == "update":
        return (match, *profile)
    if action == "optout_status":
        return (match, f"{match}_status")
    if action == "optout_list":
        return (match, f"{match}_unsubscribed_list_ids")
    if action == "delete":
        return (match, "delete")
    if action == "exclude":
        return (match, f"{match}_excluded_list_ids")
    raise ValueError(f"not a push action: {action!r}")


def build_row(
    action: PushAction, *, key: str, vals: Sequence[str] | None, list_id: int
) -> tuple[str, ...]:
    """One `data` row for `action`, aligned with `field_names(action, ...)`."""
    profile = tuple(vals or ())
    if action == "add":
        return (key, *profile, str(list_id))
    if action == "update":
        return (key, *profile)
    if action == "optout_status":
        return (key, UNSUBSCRIBED)
    if action == "optout_list":
        return (key, str(list_id))
    if action == "delete":
        return (key, "1")
    if action == "exclude":
        return (key, str(list_id))
    raise ValueError(f"not a push action: {action!r}")


# Which managed column each action may carry, and the only value it may hold.
def _allowed(action: PushAction, match: MatchKey, list_id: int) -> dict[str, str]:
    allowed: dict[PushAction, dict[str, str]] = {
        "add": {f"{match}_list_ids": str(list_id)},
        "update": {},
        "optout_status": {f"{match}_status": UNSUBSCRIBED},
        "optout_list": {f"{match}_unsubscribed_list_ids": str(list_id)},
        "delete": {"delete": "1"},
        "exclude": {f"{match}_excluded_list_ids": str(list_id)},
    }
    return allowed[action]


def check_batch(
    action: PushAction,
    names: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    match: MatchKey,
    list_id: int,
) -> None:
    """Raise ConsentViolation unless every row obeys the consent rules for `action`."""
    if not names or names[0] != match:
        raise ConsentViolation(f"{action}: the first column must be the key {match!r}")
    if action in OPT_OUTS and len(names) != 2:
        raise ConsentViolation(f"{action}: opt-out rows carry the key and the unsubscribe only")
    allowed = _allowed(action, match, list_id)
    managed: list[tuple[int, str]] = []
    for index, name in enumerate(names):
        if name in MANAGED_FIELDS:
            if name not in allowed:
                raise ConsentViolation(f"{action}: rows may not carry the column {name!r}")
            managed.append((index, allowed[name]))
    for row in rows:
        if len(row) != len(names):
            raise ConsentViolation(f"{action}: a row has {len(row)} cells for {len(names)} columns")
        for index, value in managed:
            if row[index] != value:
                raise ConsentViolation(
                    f"{action}: column {names[index]!r} may only hold {value!r}, not {row[index]!r}"
                )
