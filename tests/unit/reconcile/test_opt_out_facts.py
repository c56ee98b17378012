"""The fast opt-out pass's decision: Facts built from the ledger's remembered view of Selzy, then
decide() — and only its opt-out pushes kept. Walks every remembered state a candidate can have:
a pass pushes exactly when the contact is mailable in the list, and never anything else."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime

import pytest

from syncd.config import JobConfig, Schedule
from syncd.db import OptOutCandidate
from syncd.reconcile.decision import EMAIL_STATUSES, PHONE_STATUSES
from syncd.reconcile.optouts import facts_of, opt_out_pushes

LIST_ID = 12


def job(match: str = "email") -> JobConfig:
    return JobConfig(
        name="news",
        list_id=LIST_ID,
        table="public.contacts",
        match=match,  # type: ignore[arg-type]
        schedule=Schedule("every 15m", interval_seconds=900),
        fields={match: match},
        opt_out_column="opted_out",
        opt_out_latency=30.0,
    )


def candidate(**values: object) -> OptOutCandidate:
    base: dict[str, object] = {
        "key": "ann@example.com",
        "fingerprint": 7,
        "pushed_fp": 3,
        "intent_action": None,
        "suppressed_reason": None,
        "quarantined_at": None,
        "rejected_fp": None,
        "list_status": "subscribed",
        "email_status": "active",
        "phone_status": None,
        "email_unsubscribed_list_ids": None,
        "phone_unsubscribed_list_ids": None,
        "decision": "none:in_step",
    }
    base.update(values)
    return OptOutCandidate(**base)  # type: ignore[arg-type]


def test_an_active_subscribed_contact_gets_its_status_unsubscribed() -> None:
    [(_, reason)] = opt_out_pushes([candidate()], job())
    assert reason.code == "optout_status:opted_out"


def test_a_new_contact_is_unsubscribed_from_the_list() -> None:
    [(_, reason)] = opt_out_pushes([candidate(email_status="new")], job())
    assert reason.code == "optout_list:opted_out"


def test_facts_read_the_match_channel_and_the_other_one() -> None:
    facts = facts_of(
        candidate(
            email_status="blocked",
            phone_status="active",
            phone_unsubscribed_list_ids="12, 40",
            quarantined_at=datetime(2025, 1, 1, tzinfo=UTC),
            rejected_fp=7,
            intent_action="update",
            suppressed_reason="list_status=unsubscribed",
        ),
        job("phone"),
    )
    assert (facts.status, facts.other_status) == ("active", "blocked")
    assert facts.unsubscribed_elsewhere  # list 40 on the match channel
    assert (facts.quarantined, facts.in_flight, facts.suppressed_before) == (True, True, True)
    assert (facts.pushed, facts.changed, facts.opted_out) == (True, True, True)
    assert facts.local == "present"
    own_list_only = facts_of(candidate(email_unsubscribed_list_ids="12"), job())
    assert not own_list_only.unsubscribed_elsewhere


STATES = list(
    itertools.product(
        ("subscribed", "unsubscribed", "absent"),
        (None, *EMAIL_STATUSES),
        (None, *PHONE_STATUSES),
        (None, 3, 7),  # pushed_fp: never, other values, these values
        (None, "optout_status"),  # intent in flight
        (None, "email_status=unsubscribed"),  # suppression remembered
    )
)


@pytest.mark.parametrize("match", ["email", "phone"])
def test_a_pass_pushes_exactly_the_mailable_and_only_opt_outs(match: str) -> None:
    the_job = job(match)
    for list_status, email_status, phone_status, pushed, intent, suppressed in STATES:
        c = candidate(
            list_status=list_status,
            email_status=email_status,
            phone_status=phone_status,
            pushed_fp=pushed,
            intent_action=intent,
            suppressed_reason=suppressed,
        )
        pushes = opt_out_pushes([c], the_job)
        status = email_status if match == "email" else phone_status
        mailable = list_status == "subscribed" and status not in ("unsubscribed", "blocked")
        assert bool(pushes) == mailable, c
        for _, reason in pushes:
            assert reason.action in ("optout_status", "optout_list")
            changeable = status in ("active", "inactive")
            assert (reason.action == "optout_status") == changeable, c


def test_whatever_the_job_does_with_deletions_a_pass_only_opts_out() -> None:
    for delete_mode, remote_only in itertools.product(
        ("delete", "exclude", "off"), ("keep", "delete", "import")
    ):
        the_job = dataclasses.replace(job(), delete_mode=delete_mode, remote_only=remote_only)
        for c in (candidate(), candidate(list_status="absent"), candidate(pushed_fp=None)):
            for _, reason in opt_out_pushes([c], the_job):
                assert reason.action in ("optout_status", "optout_list")
