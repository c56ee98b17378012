"""When a stored plan may be applied: same job, same decision-shaping config, young enough,
not applied before."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from syncd.config import Schedule
from syncd.reconcile.binding import PLAN_SETTINGS, PlanFacts, config_hash, refusal
from tests.integration.reconcile.harness import make_job

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
JOB = make_job(7)


def facts(**overrides: object) -> PlanFacts:
    values: dict[str, object] = {
        "id": 1,
        "job": JOB.name,
        "created_at": NOW - timedelta(hours=1),
        "config_hash": config_hash(JOB),
        "applied_run": None,
    }
    values.update(overrides)
    return PlanFacts(**values)  # type: ignore[arg-type]


def test_a_fresh_plan_of_the_same_config_applies() -> None:
    assert refusal(facts(), JOB, NOW) is None


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("list_id", 8),
        ("table", "public.other"),
        ("match", "phone"),
        ("fields", {"email": "email"}),
        ("writeback", {}),
        ("remote_only", "import"),
        ("delete_mode", "exclude"),
        ("opt_out_column", None),
        ("max_deletes", 1),
        ("max_delete_fraction", 0.5),
        ("quarantine_after", 9),
    ],
)
def test_a_change_of_any_decision_shaping_setting_refuses_the_plan(
    setting: str, value: object
) -> None:
    assert setting in PLAN_SETTINGS
    changed = dataclasses.replace(JOB, **{setting: value})
    reason = refusal(facts(), changed, NOW)
    assert reason is not None
    assert "another configuration" in reason


def test_operational_settings_may_change() -> None:
    changed = dataclasses.replace(
        JOB, schedule=Schedule(text="every 1h", interval_seconds=3600), batch_size=10
    )
    assert refusal(facts(), changed, NOW) is None


def test_a_stale_a_foreign_or_an_applied_plan_is_refused() -> None:
    old = facts(created_at=NOW - timedelta(hours=25))
    assert "older than plan_max_age" in (refusal(old, JOB, NOW) or "")
    assert "not" in (refusal(facts(job="other"), JOB, NOW) or "")
    assert "already applied" in (refusal(facts(applied_run=5), JOB, NOW) or "")


@pytest.mark.parametrize(
    ("status", "applicable"),
    [
        ("running", False),
        ("succeeded", False),
        ("blocked", False),
        ("failed", True),
        ("interrupted", True),
        (None, False),  # the applying run's row is gone: it counts as applied
    ],
)
def test_only_a_failed_or_interrupted_apply_leaves_the_plan_applicable(
    status: str | None, applicable: bool
) -> None:
    reason = refusal(facts(applied_run=5, applied_status=status), JOB, NOW)
    assert (reason is None) is applicable, reason
