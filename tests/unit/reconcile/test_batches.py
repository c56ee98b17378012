"""What a row may carry per action: the consent rules in batches.py, table-driven, and the
check that refuses a batch that would break them."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from syncd.config import JobConfig, Schedule
from syncd.errors import ConfigError, ConsentViolation
from syncd.reconcile.actions import PUSH_ORDER, PushAction
from syncd.reconcile.batches import (
    build_row,
    check_batch,
    check_mapping,
    field_names,
    mapping_problems,
    profile_fields,
)

PROFILE = ("Name", "City")
VALS = ("Ann", "Oslo")


@pytest.mark.parametrize(
    ("action", "match", "names", "row"),
    [
        ("add", "email", ("email", "Name", "City", "email_list_ids"), ("k", "Ann", "Oslo", "7")),
        ("update", "email", ("email", "Name", "City"), ("k", "Ann", "Oslo")),
        # opt-outs carry no profile data: nothing Selzy could refuse them for
        ("optout_status", "email", ("email", "email_status"), ("k", "unsubscribed")),
        ("optout_list", "email", ("email", "email_unsubscribed_list_ids"), ("k", "7")),
        ("delete", "email", ("email", "delete"), ("k", "1")),
        ("exclude", "email", ("email", "email_excluded_list_ids"), ("k", "7")),
        ("add", "phone", ("phone", "Name", "City", "phone_list_ids"), ("k", "Ann", "Oslo", "7")),
        ("optout_status", "phone", ("phone", "phone_status"), ("k", "unsubscribed")),
        ("exclude", "phone", ("phone", "phone_excluded_list_ids"), ("k", "7")),
    ],
)
def test_shape_of_each_action(
    action: PushAction, match: str, names: tuple[str, ...], row: tuple[str, ...]
) -> None:
    assert field_names(action, match=match, profile=PROFILE) == names  # type: ignore[arg-type]
    assert build_row(action, key="k", vals=VALS, list_id=7) == row
    check_batch(action, names, [row], match=match, list_id=7)  # type: ignore[arg-type]


@pytest.mark.parametrize("action", PUSH_ORDER)
def test_only_the_opt_out_carries_a_status_and_only_unsubscribed(action: PushAction) -> None:
    names = field_names(action, match="email", profile=PROFILE)
    assert ("email_status" in names) is (action == "optout_status")
    assert ("email_list_ids" in names) is (action == "add")


@pytest.mark.parametrize(
    ("action", "names", "row", "why"),
    [
        ("update", ("email", "email_status"), ("k", "unsubscribed"), "status on an update"),
        ("add", ("email", "email_list_ids", "email_status"), ("k", "7", "active"), "status on add"),
        ("optout_status", ("email", "email_status"), ("k", "active"), "re-activating status"),
        ("optout_status", ("email", "email_status"), ("k", "new"), "status new"),
        ("update", ("email", "email_list_ids"), ("k", "7"), "re-subscribe on update"),
        ("optout_list", ("email", "email_list_ids"), ("k", "7"), "subscribe on opt-out"),
        ("add", ("email", "email_list_ids"), ("k", "8"), "another list"),
        ("delete", ("email", "delete"), ("k", "0"), "delete flag other than 1"),
        ("update", ("email", "delete"), ("k", "1"), "delete on update"),
        ("exclude", ("email", "delete"), ("k", "1"), "delete on exclude"),
        ("update", ("email", "Name", "phone_status"), ("k", "A", "active"), "phone status"),
        ("update", ("Name", "email"), ("A", "k"), "key not first"),
        ("update", ("email", "Name"), ("k",), "ragged row"),
        ("optout_status", ("email", "email_availability"), ("k", "available"), "availability"),
    ],
)
def test_check_batch_refuses_rows_that_break_consent(
    action: PushAction, names: Sequence[str], row: Sequence[str], why: str
) -> None:
    with pytest.raises(ConsentViolation):
        check_batch(action, names, [row], match="email", list_id=7)


def _job(**overrides: object) -> JobConfig:
    values: dict[str, object] = {
        "name": "j",
        "list_id": 1,
        "table": "t",
        "match": "email",
        "schedule": Schedule(text="every 1m", interval_seconds=60),
        "fields": {"email": "email", "Name": "name", "phone": "phone"},
    }
    values.update(overrides)
    return JobConfig(**values)  # type: ignore[arg-type]


def test_profile_fields_are_the_mapped_fields_except_the_key_in_config_order() -> None:
    assert profile_fields(_job()) == ("Name", "phone")
    assert profile_fields(_job(match="phone")) == ("email", "Name")


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"fields": {"Name": "name"}}, "match key 'email'"),
        ({"fields": {"email": "email", "email_status": "s"}}, "fields.email_status"),
        ({"fields": {"email": "email", "email_list_ids": "l"}}, "fields.email_list_ids"),
        ({"fields": {"email": "email", "delete": "d"}}, "fields.delete"),
        ({"writeback": {"email_status": "name"}}, "writeback.email_status"),
        ({"opt_out_column": "name"}, "opt_out_column"),
        ({"opt_out_column": "o", "writeback": {"list_status": "o"}}, "writeback.list_status"),
    ],
)
def test_mapping_problems(overrides: dict[str, object], fragment: str) -> None:
    job = _job(**overrides)
    problems = mapping_problems(job)
    assert any(fragment in p for p in problems), problems
    with pytest.raises(ConfigError):
        check_mapping(job)


def test_a_sane_mapping_has_no_problems() -> None:
    assert mapping_problems(_job(writeback={"email_status": "st"}, opt_out_column="o")) == []
