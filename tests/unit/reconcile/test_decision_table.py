"""The decision table, cell by cell: `decide` answers every combination of local state, Selzy
state, history and configuration, and PRODUCT.md's consent and safety rules hold in each cell
(asserted as properties over all of them, not as examples)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import pytest

from syncd.reconcile.batches import build_row, field_names
from syncd.reconcile.decision import (
    ACTIONS,
    CHANGEABLE_STATUSES,
    REASONS,
    SUPPRESSING_STATUSES,
    Facts,
    decide,
)
from tests.unit.reconcile.cells import Cell, all_cells

CELLS = list(all_cells())
# A duplicate cell is two local rows: the winner is decided as a present contact, the loser
# is reported; both are in the table.
FACTS = [(cell, cell.facts()) for cell in CELLS] + [
    (cell, dataclasses.replace(cell.facts(), local="duplicate_loser"))
    for cell in CELLS
    if cell.local == "duplicate"
]
DECIDED = [(cell, facts, decide(facts)) for cell, facts in FACTS]
PUSHES = ("add", "update", "optout_status", "optout_list", "delete", "exclude")


def test_the_table_has_every_cell_and_every_answer_is_a_known_reason() -> None:
    assert len(CELLS) == len(set(CELLS)) > 200_000
    seen = Counter(reason.code for _, _, reason in DECIDED)
    assert set(seen) <= set(REASONS)
    # every rule of the vocabulary is reached by some cell (no dead rule, none missing)
    assert set(seen) == set(REASONS), set(REASONS) - set(seen)
    assert {REASONS[code].action for code in seen} == set(ACTIONS)


def test_no_add_to_a_list_the_address_left_and_no_add_of_a_suppressed_or_opted_out_address() -> (
    None
):
    for cell, f, reason in DECIDED:
        if reason.action == "add":
            assert f.membership == "none", cell
            assert f.status not in SUPPRESSING_STATUSES, cell
            assert not f.suppressed_before, cell
            assert not f.opted_out, cell


def test_a_status_is_only_ever_sent_by_an_opt_out_from_a_changeable_status() -> None:
    for cell, f, reason in DECIDED:
        if reason.action == "optout_status":
            assert f.opted_out, cell
            assert f.status in CHANGEABLE_STATUSES, cell
        if reason.action in PUSHES:
            names = field_names(reason.action, match=cell.match, profile=("Name", "City"))  # type: ignore[arg-type]
            row = build_row(reason.action, key="k", vals=("v1", "v2"), list_id=7)  # type: ignore[arg-type]
            statuses = {n: v for n, v in zip(names, row, strict=True) if n.endswith("_status")}
            assert statuses in ({}, {f"{cell.match}_status": "unsubscribed"}), cell


def test_no_delete_for_anyone_holding_a_suppression_on_any_channel_or_list() -> None:
    for cell, f, reason in DECIDED:
        if reason.action == "delete":
            assert f.status not in SUPPRESSING_STATUSES, cell
            assert f.other_status not in SUPPRESSING_STATUSES, cell
            assert f.membership != "unsubscribed", cell
            assert not f.unsubscribed_elsewhere, cell
            assert not f.suppressed_before, cell


def test_an_opt_out_always_ends_unmailable_whatever_its_history_or_values() -> None:
    for cell, f, reason in DECIDED:
        if f.local == "present" and f.opted_out:
            if f.mailable:
                assert reason.action in ("optout_status", "optout_list"), cell
            else:
                assert reason.action in ("none", "suppressed"), cell


def test_opt_out_rows_carry_no_profile_data() -> None:
    for action in ("optout_status", "optout_list"):
        for match in ("email", "phone"):
            names = field_names(action, match=match, profile=("Name", "City", "phone"))
            row = build_row(action, key="k", vals=("Ann", "Oslo", "+4712345678"), list_id=7)
            assert len(names) == len(row) == 2
            assert "Ann" not in row
            assert "Oslo" not in row


def test_delete_mode_off_removes_nobody() -> None:
    for cell, _, reason in DECIDED:
        if cell.delete_mode == "off":
            assert reason.action not in ("delete", "exclude"), cell


def test_only_contacts_absent_locally_are_removed_and_only_ones_never_pushed_are_imported() -> None:
    for cell, f, reason in DECIDED:
        if reason.action in ("delete", "exclude", "import", "keep"):
            assert f.local == "absent", cell
            assert f.in_list, cell
        if reason.action == "import":
            assert not f.ours, cell
            assert cell.remote_only == "import", cell
        if reason.code.endswith(":remote_only"):
            assert not f.ours, cell


def test_a_push_that_may_have_been_applied_still_counts_as_syncds_own() -> None:
    """A crash between Selzy applying a batch and syncd recording it: the contact is in the
    list, and when it is gone locally it is deleted like any contact syncd pushed."""
    for cell, f, reason in DECIDED:
        if f.local == "absent" and f.in_flight and f.in_list:
            assert not reason.code.endswith(":remote_only"), cell
            if cell.delete_mode != "off" and not f.suppression:
                assert reason.action == ("exclude" if cell.delete_mode == "exclude" else "delete")


def test_quarantine_never_holds_back_an_opt_out_and_only_holds_adds_and_updates() -> None:
    for cell, f, reason in DECIDED:
        if reason.action == "quarantined":
            assert f.quarantined, cell
            assert not f.opted_out, cell
            assert f.local == "present", cell


@pytest.mark.parametrize(
    ("facts", "code"),
    [
        (Facts(local="present"), "add:new"),
        (Facts(local="present", membership="subscribed", pushed=True), "none:in_step"),
        (Facts(local="present", membership="subscribed", pushed=True, changed=True),
         "update:changed"),
        (Facts(local="present", opted_out=True, membership="subscribed", status="new"),
         "optout_list:opted_out"),
        (Facts(local="absent", membership="subscribed", pushed=True, other_status="blocked"),
         "exclude:suppressed"),
        (Facts(local="absent", membership="subscribed", remote_only="delete", delete_mode="off"),
         "keep:delete_off"),
    ],
)  # fmt: skip
def test_examples_read_as_the_product_describes(facts: Facts, code: str) -> None:
    assert decide(facts).code == code


def test_cells_derive_facts_consistently() -> None:
    """The enumeration itself: a contact not in the export has no status; one in the list on
    the other channel only has an address of the match channel."""
    for cell in CELLS[:5000]:
        assert isinstance(cell, Cell)
        if cell.membership == "absent":
            assert cell.status is None
            assert cell.other_status is None
            assert not cell.elsewhere
        else:
            assert cell.status is not None


def test_the_documentation_lists_every_reason_code() -> None:
    """The operator's table of reason codes (README or docs/) is the decision's vocabulary."""
    root = Path(__file__).resolve().parents[3]
    text = "\n".join(
        p.read_text(encoding="utf-8") for p in [root / "README.md", *root.glob("docs/**/*.md")]
    )
    missing = [code for code in REASONS if f"`{code}`" not in text]
    assert missing == []
