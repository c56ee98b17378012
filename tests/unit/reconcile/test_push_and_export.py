"""Pure parts of pushing and export waiting: result splitting, bisect classification, delays."""

from __future__ import annotations

import itertools

import pytest

from syncd.api import ImportLogEntry, ImportResult
from syncd.db.plan import PlanRow
from syncd.errors import (
    AuthError,
    InvalidArgument,
    ProtocolError,
    RateLimited,
    RetryLater,
    SelzyError,
    TransportError,
)
from syncd.reconcile.export import poll_delays
from syncd.reconcile.push import is_row_refusal, split_result

ROWS = [PlanRow(seq=i, key=f"k{i}", vals=(), fingerprint=i) for i in range(4)]


def _result(*log: tuple[int, str]) -> ImportResult:
    entries = tuple(ImportLogEntry(index=i, code=c, message=f"m{i}") for i, c in log)
    return ImportResult(
        total=4, inserted=0, updated=0, deleted=0, new_emails=0, invalid=len(log), log=entries
    )


def test_rows_without_log_entry_are_accepted_with_their_fingerprint() -> None:
    accepted, rejected = split_result(ROWS, _result())
    assert [a.key for a in accepted] == ["k0", "k1", "k2", "k3"]
    assert accepted[2].fingerprint == 2
    assert rejected == []


def test_every_log_entry_rejects_its_row_first_entry_wins() -> None:
    accepted, rejected = split_result(ROWS, _result((1, "role_address"), (3, "x"), (1, "later")))
    assert [a.key for a in accepted] == ["k0", "k2"]
    assert [(r.key, r.code, r.message) for r in rejected] == [
        ("k1", "role_address", "m1"),
        ("k3", "x", "m3"),
    ]


@pytest.mark.parametrize(
    ("exc", "bisect"),
    [
        (InvalidArgument("bad", code="invalid_arg"), True),
        (SelzyError("owned by different subscribers", code="unspecified"), True),
        (AuthError("no", code="invalid_api_key"), False),
        (RetryLater("later", code="retry_later"), False),
        (RateLimited("slow", code="api_call_limit_exceeded_for_api_key"), False),
        (TransportError("down"), False),
        (ProtocolError("garbage"), False),
    ],
)
def test_only_non_retryable_selzy_refusals_are_bisected(exc: Exception, bisect: bool) -> None:
    assert is_row_refusal(exc) is bisect


def test_poll_delays_grow_to_the_cap() -> None:
    delays = list(itertools.islice(poll_delays(2.0, 10.0), 7))
    assert delays[0] == 2.0
    assert delays == sorted(delays)
    assert delays[-1] == 10.0
    assert all(d <= 10.0 for d in delays)
