"""The mass-deletion guards, table-driven."""

from __future__ import annotations

import pytest

from syncd.reconcile.guards import evaluate_guards

BASE = {"max_deletes": 100, "max_delete_fraction": 0.05, "allow_mass_delete": False}


@pytest.mark.parametrize(
    ("deletions", "remote", "local", "limits", "blocked", "words"),
    [
        (0, 0, 0, {}, False, []),  # first run on two empty sides
        (0, 1000, 1000, {}, False, []),
        (50, 1000, 950, {}, False, []),  # exactly 5%: allowed
        (51, 1000, 949, {}, True, ["max_delete_fraction=0.05", "51 deletions", "1000"]),
        (101, 1_000_000, 10, {}, True, ["max_deletes=100"]),
        (100, 1_000_000, 10, {}, False, []),  # exactly max_deletes: allowed
        (0, 10, 0, {}, True, ["no contact with a valid key", "10 contacts"]),  # empty source
        (0, 0, 0, {"max_deletes": 0}, False, []),
        (1, 10, 9, {"max_deletes": 0}, True, ["max_deletes=0"]),
        (10, 10, 0, {"max_delete_fraction": 1.0}, True, ["no contact with a valid key"]),
        (5, 0, 0, {"max_delete_fraction": 0.0}, False, []),  # no list: the fraction is moot
    ],
)
def test_guards(
    deletions: int,
    remote: int,
    local: int,
    limits: dict[str, float],
    blocked: bool,
    words: list[str],
) -> None:
    verdict = evaluate_guards(
        deletions=deletions, remote_count=remote, local_valid=local, **{**BASE, **limits}
    )
    assert verdict.blocked is blocked
    assert verdict.overridden is False
    if blocked:
        assert verdict.reason is not None
        for word in words:
            assert word in verdict.reason
    else:
        assert verdict.reason is None


def test_every_tripped_guard_is_named() -> None:
    verdict = evaluate_guards(deletions=500, remote_count=500, local_valid=0, **BASE)
    assert verdict.blocked
    assert verdict.reason is not None
    assert "max_deletes" in verdict.reason
    assert "max_delete_fraction" in verdict.reason
    assert "no contact with a valid key" in verdict.reason


def test_allow_mass_delete_overrides_but_keeps_the_reason_for_the_log() -> None:
    verdict = evaluate_guards(
        deletions=500, remote_count=500, local_valid=0, **{**BASE, "allow_mass_delete": True}
    )
    assert not verdict.blocked
    assert verdict.overridden
    assert verdict.reason is not None
    assert "max_deletes" in verdict.reason
